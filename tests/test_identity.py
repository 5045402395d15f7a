"""Identity learning on the tiny SDXL / SD 2.x pipelines: file format, conditioning, gradients, loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from storyface.identity.conditioning import add_time_ids, encode_prompts, token_ids, tokenize, unet_kwargs
from storyface.identity.prior import IdentityPrior, celeb_names, celeb_stats
from storyface.identity.tokens import Identity, load_identity, load_into_pipeline, save_identity
from storyface.identity.train import (
    TrainConfig,
    TrainingCancelled,
    TrainingRun,
    train_identities,
    train_identity,
)
from storyface.models import load_model
from storyface.random_models import build_tiny_pipeline

from subjects import synthetic_subject



@pytest.fixture(scope="module", params=["tiny", "tiny-sd2"])
def model(request):
    return load_model(request.param)


QUICK = TrainConfig(steps=3, bank_size=4, mlp_hidden=64, probe_samples=1)


def test_identity_file_round_trips_through_diffusers_loader(model, tmp_path):
    ident = train_identity(model, synthetic_subject("Grace Hopper", 0), QUICK)
    path = save_identity(ident, tmp_path / "grace.safetensors")
    loaded = load_identity(path)
    assert loaded.name == "Grace Hopper" and loaded.family == model.family
    assert loaded.metadata["face_encoder"] == "dlib" and loaded.metadata["steps"] == "3"
    for key, rows in ident.embeddings.items():
        assert rows.shape[0] == 2
        assert torch.equal(loaded.embeddings[key], rows)

    # A fresh pipeline reads the file with diffusers' own loader, as other tools would.
    fresh = build_tiny_pipeline(model.family)
    from safetensors.torch import load_file

    state = load_file(str(path))
    if model.family == "sdxl":
        pairs = [("clip_l", fresh.tokenizer, fresh.text_encoder), ("clip_g", fresh.tokenizer_2, fresh.text_encoder_2)]
        for key, tok, te in pairs:
            fresh.load_textual_inversion(state[key], token="<gh>", tokenizer=tok, text_encoder=te)
    else:
        fresh.load_textual_inversion(str(path), token="<gh>")
        pairs = [("emb_params", fresh.tokenizer, fresh.text_encoder)]
    for key, tok, te in pairs:
        ids = tok.convert_tokens_to_ids(["<gh>", "<gh>_1"])
        assert torch.equal(te.get_input_embeddings().weight[ids].detach(), ident.embeddings[key])


def test_trainer_conditioning_equals_pipeline_encode_prompt(model):
    emb = {s.key: torch.randn(2, s.dim) for s in model.encoders}
    token = load_into_pipeline(model, Identity("Ada Lovelace", model.family, emb))
    prompt = f"a watercolor painting of {token} reading a book"
    ref = model.pipe.encode_prompt(prompt, device=model.device, num_images_per_prompt=1, do_classifier_free_guidance=False)
    rows = {s.key: (token_ids(s, token, 2), emb[s.key]) for s in model.encoders}
    embeds, pooled = encode_prompts(model, tokenize(model, [prompt]), rows)
    assert torch.equal(embeds, ref[0])
    if model.family == "sdxl":
        assert torch.equal(pooled, ref[2])  # pooled embeds from encoder 2
        assert embeds.shape[-1] == sum(s.dim for s in model.encoders)  # both encoders, concatenated
    # and the rows really are what the embeds depend on
    moved = {k: (ids, v + 1) for k, (ids, v) in rows.items()}
    assert not torch.allclose(encode_prompts(model, tokenize(model, [prompt]), moved)[0], embeds)


def test_unet_sees_the_same_conditioning_in_training_and_inference(model):
    """Capture what the pipeline feeds the UNet and compare with what the trainer feeds it."""
    emb = {s.key: torch.randn(2, s.dim) for s in model.encoders}
    token = load_into_pipeline(model, Identity("Alan Turing", model.family, emb))
    prompt, res = f"a photo of {token}", 64
    seen = {}

    def grab(_module, args, kwargs):
        seen.setdefault("kwargs", kwargs)

    handle = model.pipe.unet.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        model.pipe(prompt, num_inference_steps=1, guidance_scale=1.0, height=res, width=res, output_type="latent")
    finally:
        handle.remove()
    rows = {s.key: (token_ids(s, token, 2), emb[s.key]) for s in model.encoders}
    embeds, pooled = encode_prompts(model, tokenize(model, [prompt]), rows)
    ours = unet_kwargs(embeds, pooled, add_time_ids(model, res, res, 1) if model.family == "sdxl" else None)
    theirs = seen["kwargs"]
    assert torch.equal(ours["encoder_hidden_states"], theirs["encoder_hidden_states"])
    if model.family == "sdxl":
        for key in ("text_embeds", "time_ids"):
            assert torch.equal(ours["added_cond_kwargs"][key], theirs["added_cond_kwargs"][key]), key


def test_gradients_reach_only_the_mlps(model):
    run = TrainingRun(model, [synthetic_subject("Marie Curie", 1)], QUICK)
    gen = torch.Generator(model.device).manual_seed(0)
    run.loss(gen).sum().backward()
    for name, p in run.priors[0].named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    frozen = [model.pipe.unet, model.pipe.vae, *[s.text_encoder for s in model.encoders]]
    assert all(p.grad is None and not p.requires_grad for m in frozen for p in m.parameters())


def test_probe_loss_goes_down_on_a_fixed_seed(model):
    cfg = TrainConfig(steps=40, lr=2e-3, bank_size=4, mlp_hidden=64, probe_samples=4, seed=3)
    ident = train_identity(model, synthetic_subject("Rosalind Franklin", 2), cfg)
    assert float(ident.metadata["probe_loss_end"]) < float(ident.metadata["probe_loss_start"])


def test_training_is_seeded_and_several_people_train_together(model):
    subjects = [synthetic_subject("Hugh Jackman", 4), synthetic_subject("Taylor Swift", 5)]
    first = train_identities(model, subjects, QUICK)
    again = train_identities(model, subjects, QUICK)
    for a, b in zip(first, again):
        assert all(torch.equal(a.embeddings[k], b.embeddings[k]) for k in a.embeddings)
    assert first[0].token != first[1].token
    assert not torch.equal(*(i.embeddings[model.encoders[0].key] for i in first))
    both = model.pipe.maybe_convert_prompt(f"{first[0].token} and {first[1].token}", model.encoders[0].tokenizer)
    assert len(model.encoders[0].tokenizer(both).input_ids) == 2 + 2 + 1 + 2  # bos, 2 rows, "and", 2 rows, eos


def test_adain_lands_outputs_on_celebrity_name_statistics(model):
    stats = {s.key: celeb_stats(s, celeb_names()) for s in model.encoders}
    prior = IdentityPrior(128, stats, hidden=32)
    seen = {}
    for key, mlp in prior.mlps.items():
        mlp.norm_out.register_forward_pre_hook(lambda m, args, key=key: seen.update({key: args[0].detach()}))
    out = prior(torch.randn(3, 128))
    for key, (mean, std) in stats.items():
        z = ((out[key] - mean) / std).flatten(1)  # [3, 2 * D]: normalised over both tokens together (official)
        h = seen[key]  # what the final LayerNorm got: (h - mean) / sqrt(biased var + 1e-5), weight 1, bias 0
        assert out[key].shape == (3, 2, mean.shape[1])
        assert torch.allclose(z, (h - h.mean(-1, keepdim=True)) / torch.sqrt(h.var(-1, unbiased=False, keepdim=True) + 1e-5), atol=1e-4)
        assert torch.allclose(z.mean(-1), torch.zeros(3), atol=1e-4)


def test_cancel_stops_training(model):
    calls = []
    with pytest.raises(TrainingCancelled, match="step 2"):
        train_identity(
            model, synthetic_subject("Nobody Special", 6), TrainConfig(steps=10, bank_size=2, mlp_hidden=16),
            progress=lambda s, n, loss: calls.append(loss), should_stop=lambda: len(calls) >= 2,
        )
    assert len(calls) == 2 and all(np.isfinite(calls))


def test_probe_loss_is_deterministic(model):
    run = TrainingRun(model, [synthetic_subject("Fixed Seed", 7)], QUICK)
    assert run.probe() == run.probe()


def test_mlp_input_follows_the_face_encoder(model, tmp_path):
    """A ViT face encoder (here a tiny random one, hidden size 48) drives the same trainer."""
    from transformers import ViTConfig, ViTModel

    from storyface.faces import get_face_encoder
    from storyface.faces.align import Headshot

    ViTModel(ViTConfig(hidden_size=48, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                       image_size=32, patch_size=8)).save_pretrained(tmp_path / "vit")
    from transformers import ViTImageProcessor

    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "vit")
    encoder = get_face_encoder("vit", model=str(tmp_path / "vit"))
    subject = synthetic_subject("Vit Person", 8)
    landmarks = np.tile(np.array([[128.0, 128.0]], np.float32), (68, 1)) + np.random.default_rng(0).normal(0, 30, (68, 2)).astype(np.float32)
    features = encoder.encode(Headshot(subject.image, subject.face_mask, subject.hair_mask, landmarks, (0, 0, 256, 256)))
    assert features.shape == (48,)
    subject.features, subject.face_encoder = features, encoder.name
    ident = train_identity(model, subject, QUICK)
    assert ident.metadata["face_encoder"] == encoder.name
    assert set(ident.dims()) == {s.key for s in model.encoders}


def test_loading_batches_new_tokens_and_replaces_rows_in_place(model):
    from storyface.errors import InputError
    from storyface.identity.tokens import load_identities

    def rows(n, shift=0.0):
        return {s.key: torch.randn(n, s.dim) + shift for s in model.encoders}

    def table_rows(token, n):
        slot = model.encoders[-1]
        ids = slot.tokenizer.convert_tokens_to_ids([token] + [f"{token}_{i}" for i in range(1, n)])
        return slot.text_encoder.get_input_embeddings().weight[ids]

    a, b = Identity("Load One", model.family, rows(2)), Identity("Load Two", model.family, rows(2))
    size = len(model.encoders[0].tokenizer)
    assert load_identities(model, [a, b]) == [a.token, b.token]
    assert len(model.encoders[0].tokenizer) == size + 4  # both tokens added in one go
    a2 = Identity("Load One", model.family, rows(2, 5.0))
    load_identities(model, [a2])
    assert len(model.encoders[0].tokenizer) == size + 4  # replaced in place, no new tokens
    assert torch.equal(table_rows(a.token, 2), a2.embeddings[model.encoders[-1].key])
    assert torch.equal(table_rows(b.token, 2), b.embeddings[model.encoders[-1].key])
    a3 = Identity("Load One", model.family, rows(3))  # another vector count: unloaded and loaded again
    load_identities(model, [a3])
    assert torch.equal(table_rows(a.token, 3), a3.embeddings[model.encoders[-1].key])
    with pytest.raises(InputError, match="share the trigger token"):
        load_identities(model, [Identity("Anne-Marie", model.family, rows(2)), Identity("Anne Marie", model.family, rows(2))])
