"""Where StoryFace matches the official StableIdentity code (qinghew/StableIdentity), point by point.

Each test pins one point against a hand-computed value or the official definition, so a drift that the
tiny model's noisy pictures could never show still fails a test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from storyface.identity.augment import augment_bank
from storyface.identity.loss import two_phase_loss
from storyface.identity.prior import LR_MUL, EqualLinear, IdentityMLP, celeb_names, celeb_stats, two_token_names
from storyface.identity.templates import TEMPLATES
from storyface.identity.tokens import Identity, load_into_pipeline
from storyface.models import build_tiny_pipeline, clip_tokenizer, load_model

EOS = 49407


# -- 1. the pooled embedding is taken at the end of the prompt, never at an identity token ---------


def _legacy_folder(tmp_path, family: str, legacy: bool):
    pipe = build_tiny_pipeline(family)
    if legacy:  # as in the published SDXL base / SD 2.x configs
        for te in [pipe.text_encoder] + ([pipe.text_encoder_2] if family == "sdxl" else []):
            te.config.eos_token_id = 2
    folder = tmp_path / f"{family}-{legacy}"
    pipe.save_pretrained(folder)
    return folder


def _pooled_and_states(model, prompt: str) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(pooled [D], the states it may be taken from [77, D], input ids) of the pooling encoder."""
    slot = model.encoders[-1]
    text = model.pipe.maybe_convert_prompt(prompt, slot.tokenizer)
    ids = slot.tokenizer(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        out = slot.text_encoder(ids, output_hidden_states=True)
    if model.family == "sdxl":  # CLIPTextModelWithProjection: text_embeds = projection(pooled states)
        states = slot.text_encoder.text_projection(out.last_hidden_state[0])  # [77, P]
        return out.text_embeds[0], states, ids[0].tolist()
    return out.pooler_output[0], out.last_hidden_state[0], ids[0].tolist()


@pytest.mark.parametrize("family", ["sdxl", "sd2"])
@pytest.mark.parametrize("legacy", [True, False])
def test_pooled_embedding_is_at_the_end_of_text_with_text_after_the_name(tmp_path, family, legacy):
    model = load_model(str(_legacy_folder(tmp_path, family, legacy)), device="cpu", dtype=torch.float32)
    emb = {s.key: torch.randn(2, s.dim) for s in model.encoders}
    token = load_into_pipeline(model, Identity("Grace Hopper", family, emb))
    pooled, states, ids = _pooled_and_states(model, f"a photo of {token} reading a book in the rain")
    eos_at = ids.index(EOS)
    name_at = ids.index(model.encoders[-1].tokenizer.convert_tokens_to_ids(f"{token}_1"))
    assert name_at < eos_at - 5  # text after the name, before the end
    assert torch.allclose(pooled, states[eos_at], atol=1e-5)
    assert not torch.allclose(pooled, states[name_at], atol=1e-3)


def test_the_legacy_config_really_pools_at_the_identity_token_without_the_fix(tmp_path):
    """The bug the fix above removes, shown on transformers directly (so the test above can fail)."""
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(_legacy_folder(tmp_path, "sdxl", True))
    te, tok = pipe.text_encoder_2, pipe.tokenizer_2
    pipe.load_textual_inversion(torch.randn(2, 64), token="<gh>", tokenizer=tok, text_encoder=te)
    ids = tok(pipe.maybe_convert_prompt("a photo of <gh> reading a book", tok), return_tensors="pt").input_ids
    with torch.no_grad():
        out = te(ids)
    states = te.text_projection(out.last_hidden_state[0])
    assert torch.allclose(out.text_embeds[0], states[ids[0].tolist().index(tok.convert_tokens_to_ids("<gh>_1"))], atol=1e-5)


# -- 2. the loss: the clean-latent phase in unscaled latents, means over every element ------------


def test_two_phase_loss_matches_a_hand_computed_value():
    # two samples, 1 channel, 2x2 pixels; sample 0 in the noise phase (t=900 > 0.5*1000), sample 1 not
    eps = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    noise = torch.tensor([[[[0.0, 2.0], [1.0, 4.0]]], [[[9.0, 9.0], [9.0, 9.0]]]])
    x0 = torch.tensor([[[[5.0, 5.0], [5.0, 5.0]]], [[[0.3, 0.1], [0.0, 0.2]]]])
    latents = torch.tensor([[[[0.0, 0.0], [0.0, 0.0]]], [[[0.1, 0.1], [0.1, 0.1]]]])
    weights = torch.tensor([[[[1.0, 0.1], [0.0, 1.0]]], [[[1.0, 1.0], [0.1, 0.0]]]])
    t = torch.tensor([900, 100])
    loss = two_phase_loss(eps, x0, noise, latents, t, weights, alpha=0.5, num_train_timesteps=1000, scaling_factor=0.5)
    # sample 0: errors (1, 0, 2, 0)^2 weighted (1, .1, 0, 1) -> 1 / 4 elements
    # sample 1: x0 errors (0.2, 0, -0.1, 0.1) / 0.5 = (0.4, 0, -0.2, 0.2), squared (.16, 0, .04, .04),
    #           weighted (1, 1, .1, 0) -> 0.16 + 0.004 = 0.164, over 4 elements
    assert torch.allclose(loss, torch.tensor([0.25, 0.041]), atol=1e-6)


def test_clean_latent_phase_weighs_one_over_the_scaling_factor_squared():
    """Same error in both phases: the clean-latent phase counts 1/sf^2 (~59 for SDXL's VAE) times more."""
    err = torch.full((1, 4, 8, 8), 0.3)
    zero, ones = torch.zeros_like(err), torch.ones(1, 1, 8, 8)
    sf = 0.13025
    noise_phase = two_phase_loss(err, zero, zero, zero, torch.tensor([999]), ones, 0.5, 1000, sf)
    clean_phase = two_phase_loss(zero, err, zero, zero, torch.tensor([0]), ones, 0.5, 1000, sf)
    assert math.isclose(float(clean_phase / noise_phase), 1 / sf**2, rel_tol=1e-5)
    assert 58 < 1 / sf**2 < 60


# -- 3. the mapping network: official architecture, initialisation, and it learns at 1e-5 ------------


def _stats(dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, dim, generator=g) * 0.01, torch.rand(2, dim, generator=g) * 0.02 + 0.005


def test_mapping_network_has_the_official_shape_and_initialisation():
    torch.manual_seed(0)
    mlp = IdentityMLP(128, *_stats(768))
    width = 2 * 768  # hidden = output = 2 x the embedding width
    assert (mlp.fc1.weight.shape, mlp.fc2.weight.shape) == ((width, 128), (width, width))
    assert mlp.norm1.normalized_shape == (width,) and mlp.norm_out.normalized_shape == (width,)
    assert mlp.norm_out.elementwise_affine and mlp.norm1.elementwise_affine
    for layer in (mlp.fc1, mlp.fc2):
        assert isinstance(layer, EqualLinear) and layer.lr_mul == LR_MUL == 0.1
        assert abs(float(layer.weight.detach().std()) - 0.02) < 0.001 and abs(float(layer.weight.detach().mean())) < 0.001
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
    x = torch.randn(3, 128)
    assert torch.allclose(mlp.fc1(x), x @ (0.1 * mlp.fc1.weight).T)  # the multiplier applies at run time
    # LeakyReLU slope 0.2 between fc1 and norm1, checked on the layer's own pre-activations
    features = torch.nn.functional.normalize(torch.randn(1, 128), dim=-1)
    pre = mlp.fc1(features * math.sqrt(128))
    hidden = torch.where(pre > 0, pre, 0.2 * pre)
    expected = mlp.mean + mlp.norm_out(mlp.fc2(mlp.norm1(hidden))).view(1, 2, 768) * mlp.std
    assert torch.allclose(mlp(features), expected, atol=1e-6)


def test_mapping_network_moves_away_from_its_start_at_the_seed_learning_rate():
    """A toy fit at lr 1e-5 for 500 AdamW steps: the rows travel most of the way to a target."""
    torch.manual_seed(1)
    mean, std = _stats(768)
    mlp = IdentityMLP(128, mean, std)
    features = torch.nn.functional.normalize(torch.randn(1, 128), dim=-1)
    target = mean + torch.randn(1, 2, 768) * std  # another "person" among the names
    opt = torch.optim.AdamW(mlp.parameters(), lr=1e-5, weight_decay=1e-2)
    with torch.no_grad():
        start = mlp(features).clone()
    first = None
    for _ in range(500):
        loss = (((mlp(features) - target) / std) ** 2).mean()
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = mlp(features)
    moved = float(((end - start) / std).norm() / ((target - start) / std).norm())
    assert float(loss) < 0.5 * first, (first, float(loss))
    assert moved > 0.3, moved


# -- 4. the editability prior: names of exactly two whole words -------------------------------------


def test_celebrity_statistics_use_only_names_of_exactly_two_word_final_tokens():
    names = celeb_names()
    first, second = clip_tokenizer(), clip_tokenizer(pad_token="!")
    kept = two_token_names(first, names)
    assert kept == two_token_names(second, names)  # SDXL's two tokenizers split alike
    assert 200 < len(kept) < len(names)
    for name in kept:
        pieces = first.convert_ids_to_tokens(first(name, add_special_tokens=False).input_ids)
        assert len(pieces) == 2 and all(p.endswith("</w>") for p in pieces), (name, pieces)
    dropped = set(names) - set(kept)
    assert any(len(first(n, add_special_tokens=False).input_ids) > 2 for n in dropped)
    model = load_model("tiny")
    slot = model.encoders[0]
    mean, std = celeb_stats(slot, names)
    table = slot.text_encoder.get_input_embeddings().weight
    rows = table[torch.tensor([first(n, add_special_tokens=False).input_ids for n in kept])].float()
    assert torch.allclose(mean, rows.mean(0)) and torch.allclose(std, rows.std(0))


# -- 5. augmentation and prompts as the reference ---------------------------------------------------


def test_every_view_is_shrunk_onto_a_black_background_with_its_masks():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(30, 255, (96, 96, 3), dtype=np.uint8))
    face = np.zeros((96, 96), np.float32)
    face[30:70, 30:66] = 1
    views, masks = augment_bank(image, face, face * 0, 64, 24, seed=3)
    heights = []
    for view, mask in zip(views, masks):
        rows = np.flatnonzero(view.max(axis=(1, 2)) > 0)  # the pasted picture is never pure black
        cols = np.flatnonzero(view.max(axis=(0, 2)) > 0)
        heights.append(len(rows) / 64)
        outside = np.ones((64, 64), bool)
        outside[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = False
        assert outside.any() and not view[outside].any() and not mask[:, outside].any()
        assert abs(len(cols) / len(rows) - 1) <= 0.12  # width = height x U(0.9, 1.1)
    assert 0.5 <= min(heights) and max(heights) < 1.0 and 0.65 < np.mean(heights) < 0.85


def test_templates_span_photos_illustrations_and_drawn_styles_with_an_article():
    assert 75 <= len(TEMPLATES) == len(set(TEMPLATES))
    kinds = ("photo", "illustration", "depiction", "render", "drawing", "painting", "comic")
    assert all(any(k in t for t in TEMPLATES) for k in kinds)
    for template in TEMPLATES:  # "a photo of a <v1> <v2>": a determiner in the phrase holding the name
        holder = template.split("{}")[0].split(" of ")[-1].split()
        assert template.count("{}") == 1 and holder and holder[0] in {"a", "an", "the", "my", "one"}, template


def test_gradients_are_clipped_per_person():
    from storyface.identity.train import Subject, TrainConfig, _prepare, eager_step

    model = load_model("tiny")
    rng = np.random.default_rng(0)
    subjects = [
        Subject(n, Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)), np.ones((64, 64), np.float32),
                np.zeros((64, 64), np.float32), rng.standard_normal(128).astype(np.float32))
        for n in ("Clip One", "Clip Two")
    ]  # fmt: skip
    cfg = TrainConfig(steps=1, bank_size=2, probe_samples=1, resolution=64, max_grad_norm=1e-4).resolved(model)
    priors, batch = _prepare(model, subjects, cfg)
    step, *_ = eager_step(model, priors, batch, cfg)
    step()
    for prior in priors:
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in prior.parameters()]))
        assert float(norm) <= 1e-4 * 1.001


def test_default_guidance_is_stable_identitys():
    from storyface.render.generate import RenderConfig

    assert RenderConfig().guidance == 8.5
