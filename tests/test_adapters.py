"""LoRAs on the tiny SDXL pipeline: random-weight LoRA files in each key format load, fuse to the
hand-computed weights, change the UNet's output, and unfuse back to the base weights.

Fused weight of a layer (the LoRA papers' and kohya's convention, which diffusers/PEFT implement):
``W + weight * (alpha / rank) * up @ down``; a file without alphas means alpha = rank.
Tolerances: fusing is one fp32 matmul and add, so 1e-6 absolute on weights of size ~0.1-1; unfusing
subtracts the same delta it added, so the base weights come back within fp32 rounding (1e-6).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from storyface.errors import InputError, ModelError
from storyface.identity.tokens import Identity, load_identities
from storyface.models import load_model
from storyface.render import RenderConfig, Renderer
from storyface.render.adapters import (
    LoadedLora,
    LoraFileError,
    LoraMismatchError,
    LoraSpec,
    apply_loras,
    loras_record,
    parse_lora_spec,
    remove_loras,
)
from storyface.render.quality import quality_preset

RANK = 4
WEIGHT_ATOL = 1e-6


@pytest.fixture(scope="module")
def model():
    return load_model("tiny", device="cpu")


@pytest.fixture
def base(model):
    """The model at its base weights; checks every test leaves it there."""
    before = weights(model)
    yield model
    remove_loras(model)
    assert_same_weights(weights(model), before)


def weights(model) -> dict[str, torch.Tensor]:
    pipe = model.pipe
    return {
        f"{c}.{k}": v.detach().clone()
        for c in ("unet", "text_encoder", "text_encoder_2")
        for k, v in getattr(pipe, c).state_dict().items()
    }


def assert_same_weights(now: dict, before: dict) -> None:
    assert now.keys() == before.keys()  # no PEFT layers left behind
    worst = max((now[k] - before[k]).abs().max().item() for k in before)
    assert worst <= WEIGHT_ATOL, worst


def linear_names(module: torch.nn.Module, inside: str) -> list[str]:
    return [n for n, m in module.named_modules() if isinstance(m, torch.nn.Linear) and inside in n]


def layer(model, component: str, name: str) -> torch.nn.Module:
    module = getattr(model.pipe, component).get_submodule(name)
    return getattr(module, "base_layer", module)  # under a PEFT wrapper while unfusable


def peft_lora(model, names: list[str], seed: int, component: str = "unet") -> dict[str, torch.Tensor]:
    """diffusers/PEFT keys: ``unet.<module>.lora_A.weight`` [r, in], ``lora_B.weight`` [out, r]."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for n in names:
        m = layer(model, component, n)
        sd[f"{component}.{n}.lora_A.weight"] = torch.randn(RANK, m.in_features, generator=g) * 0.1
        sd[f"{component}.{n}.lora_B.weight"] = torch.randn(m.out_features, RANK, generator=g) * 0.1
    return sd


def kohya_key(prefix: str, name: str) -> str:
    return f"{prefix}_{name.replace('.', '_')}"


def kohya_lora(shapes: dict[str, tuple[int, int]], seed: int, alpha: float = 2.0) -> dict[str, torch.Tensor]:
    """kohya keys: ``lora_unet_<module_with_underscores>.lora_down.weight`` [r, in], ``.lora_up.weight``
    [out, r] and ``.alpha``; ``shapes`` maps the kohya stem to (in, out)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for stem, (fan_in, fan_out) in shapes.items():
        sd[f"{stem}.lora_down.weight"] = torch.randn(RANK, fan_in, generator=g) * 0.1
        sd[f"{stem}.lora_up.weight"] = torch.randn(fan_out, RANK, generator=g) * 0.1
        sd[f"{stem}.alpha"] = torch.tensor(alpha)
    return sd


def write(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    save_file(tensors, str(path))
    return path


def unet_out(model) -> torch.Tensor:
    """The UNet's noise prediction for fixed inputs: [1, 4, 16, 16]."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 16, 16, generator=g)
    enc = torch.randn(1, 77, 96, generator=g)  # clip_l 32 + clip_g 64
    added = {"text_embeds": torch.randn(1, 32, generator=g), "time_ids": torch.tensor([[128.0, 128, 0, 0, 128, 128]])}
    with torch.no_grad():
        return model.pipe.unet(x, torch.tensor([500]), enc, added_cond_kwargs=added).sample


# --------------------------------------------------------------------------- formats


def test_peft_format_fuses_to_the_hand_computed_weights_and_unloads_to_the_base(base, tmp_path):
    names = linear_names(base.pipe.unet, "transformer_blocks")
    sd = peft_lora(base, names, seed=1)
    w0 = {n: layer(base, "unet", n).weight.detach().clone() for n in names}
    out0 = unet_out(base)
    [lora] = apply_loras(base, [LoraSpec(str(write(tmp_path / "peft.safetensors", sd)), weight=0.8)])
    assert lora.layers == len(names) and lora.components == ("unet",) and lora.kind == "style"
    for n in names:  # no alphas in the file: alpha = rank, so the scale is the weight alone
        expected = w0[n] + 0.8 * sd[f"unet.{n}.lora_B.weight"] @ sd[f"unet.{n}.lora_A.weight"]
        assert torch.allclose(layer(base, "unet", n).weight, expected, atol=WEIGHT_ATOL)
    assert (unet_out(base) - out0).abs().mean() > 1e-3 * out0.abs().mean()
    remove_loras(base)
    assert torch.equal(unet_out(base), out0) or torch.allclose(unet_out(base), out0, atol=1e-5)


def test_kohya_format_with_alpha_fuses_scaled_by_alpha_over_rank(base, tmp_path):
    names = linear_names(base.pipe.unet, "attn")
    shapes = {kohya_key("lora_unet", n): (layer(base, "unet", n).in_features, layer(base, "unet", n).out_features) for n in names}
    sd = kohya_lora(shapes, seed=2, alpha=2.0)
    w0 = {n: layer(base, "unet", n).weight.detach().clone() for n in names}
    out0 = unet_out(base)
    [lora] = apply_loras(base, [str(write(tmp_path / "kohya.safetensors", sd))])
    assert lora.layers == len(names)
    for n in names:
        stem = kohya_key("lora_unet", n)
        expected = w0[n] + (2.0 / RANK) * sd[f"{stem}.lora_up.weight"] @ sd[f"{stem}.lora_down.weight"]
        assert torch.allclose(layer(base, "unet", n).weight, expected, atol=WEIGHT_ATOL)
    assert (unet_out(base) - out0).abs().mean() > 1e-3 * out0.abs().mean()


def test_kohya_sgm_block_names_and_conv_layers_land_on_the_right_modules(base, tmp_path):
    """SDXL LoRAs from kohya/A1111 use the original (SGM) block numbers. For this UNet (1 layer per
    block): input_blocks.3 = down_blocks.1 (resnet 0, attention 1), middle_block.1 = the mid attention,
    output_blocks.0 = up_blocks.0 layer 0 (resnet 0, attention 1)."""
    unet = base.pipe.unet
    targets = {
        "lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q": "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
        "lora_unet_middle_block_1_transformer_blocks_0_attn2_to_k": "mid_block.attentions.0.transformer_blocks.0.attn2.to_k",
        "lora_unet_output_blocks_0_1_proj_in": "up_blocks.0.attentions.0.proj_in",
    }
    sd = kohya_lora({s: (layer(base, "unet", n).in_features, layer(base, "unet", n).out_features) for s, n in targets.items()}, 3)
    conv_name, conv_stem = "up_blocks.0.resnets.0.conv1", "lora_unet_output_blocks_0_0_conv1"
    conv = unet.get_submodule(conv_name)  # [out, in, 3, 3]; a kohya conv LoRA: down [r, in, 3, 3], up [out, r, 1, 1]
    g = torch.Generator().manual_seed(4)
    sd[f"{conv_stem}.lora_down.weight"] = torch.randn(RANK, conv.in_channels, 3, 3, generator=g) * 0.1
    sd[f"{conv_stem}.lora_up.weight"] = torch.randn(conv.out_channels, RANK, 1, 1, generator=g) * 0.1
    sd[f"{conv_stem}.alpha"] = torch.tensor(1.0)
    w0 = {n: layer(base, "unet", n).weight.detach().clone() for n in [*targets.values(), conv_name]}
    [lora] = apply_loras(base, [str(write(tmp_path / "sgm.safetensors", sd))])
    assert lora.layers == 4
    for stem, n in targets.items():
        expected = w0[n] + (2.0 / RANK) * sd[f"{stem}.lora_up.weight"] @ sd[f"{stem}.lora_down.weight"]
        assert torch.allclose(layer(base, "unet", n).weight, expected, atol=WEIGHT_ATOL)
    up = sd[f"{conv_stem}.lora_up.weight"].flatten(1)  # [out, r]
    down = sd[f"{conv_stem}.lora_down.weight"].flatten(1)  # [r, in*9]
    expected = w0[conv_name] + (1.0 / RANK) * (up @ down).reshape(w0[conv_name].shape)
    assert torch.allclose(layer(base, "unet", conv_name).weight, expected, atol=WEIGHT_ATOL)


def test_text_encoder_keys_fuse_into_both_text_encoders(base, tmp_path):
    pipe = base.pipe
    shapes = {}
    for prefix, component in (("lora_te1", "text_encoder"), ("lora_te2", "text_encoder_2")):
        for n in linear_names(getattr(pipe, component), "layers"):  # attention and MLP, as kohya trains them
            m = layer(base, component, n)
            kohya_name = "text_model." + n.removeprefix("text_model.")  # kohya's names come from CLIPTextModel.text_model
            shapes[kohya_key(prefix, kohya_name)] = (m.in_features, m.out_features)
    unet_names = linear_names(pipe.unet, "attn2")
    for n in unet_names:
        shapes[kohya_key("lora_unet", n)] = (layer(base, "unet", n).in_features, layer(base, "unet", n).out_features)
    before = prompt_embeds(base, "a lighthouse")
    [lora] = apply_loras(base, [str(write(tmp_path / "te.safetensors", kohya_lora(shapes, 5)))])
    assert lora.components == ("unet", "text_encoder", "text_encoder_2") and lora.layers == len(shapes)
    after = prompt_embeds(base, "a lighthouse")
    assert (after - before).abs().mean() > 1e-4  # the prompt now means something else
    remove_loras(base)
    assert torch.allclose(prompt_embeds(base, "a lighthouse"), before, atol=1e-5)


# --------------------------------------------------------------------------- several, permanent, identities


def test_two_style_loras_combine_with_their_weights_and_are_recorded(base, tmp_path):
    names = linear_names(base.pipe.unet, "transformer_blocks")
    comic, manga = peft_lora(base, names, seed=6), peft_lora(base, names[::2], seed=7)
    w0 = {n: layer(base, "unet", n).weight.detach().clone() for n in names}
    paths = [write(tmp_path / "comic_xl.safetensors", comic), write(tmp_path / "manga_xl.safetensors", manga)]
    loaded = apply_loras(base, [LoraSpec(str(paths[0]), 0.7), LoraSpec(str(paths[1]), -0.4)])
    for n in names:
        expected = w0[n] + 0.7 * comic[f"unet.{n}.lora_B.weight"] @ comic[f"unet.{n}.lora_A.weight"]
        if f"unet.{n}.lora_A.weight" in manga:
            expected = expected - 0.4 * manga[f"unet.{n}.lora_B.weight"] @ manga[f"unet.{n}.lora_A.weight"]
        assert torch.allclose(layer(base, "unet", n).weight, expected, atol=WEIGHT_ATOL)
    records = json.loads(json.dumps(loras_record(base)))
    assert [(r["source"], r["weight"], r["kind"], r["layers"]) for r in records] == [
        (str(paths[0]), 0.7, "style", len(names)),
        (str(paths[1]), -0.4, "style", len(names[::2])),
    ]
    assert [len(r["sha256"]) for r in records] == [16, 16] and records[0]["sha256"] != records[1]["sha256"]
    assert [lora.adapter for lora in loaded] == [lora.adapter for lora in base.loras]
    apply_loras(base, [LoraSpec(str(paths[1]), 1.0)])  # a new set replaces the old one, from the base weights
    for n in names[::2]:
        expected = w0[n] + manga[f"unet.{n}.lora_B.weight"] @ manga[f"unet.{n}.lora_A.weight"]
        assert torch.allclose(layer(base, "unet", n).weight, expected, atol=WEIGHT_ATOL)
    assert torch.allclose(layer(base, "unet", names[1]).weight, w0[names[1]], atol=WEIGHT_ATOL)


def test_permanent_fuse_leaves_plain_layers_and_cannot_be_undone(tmp_path):
    from peft.tuners.tuners_utils import BaseTunerLayer

    model = load_model("tiny", device="cpu")
    names = linear_names(model.pipe.unet, "transformer_blocks")
    sd = peft_lora(model, names, seed=8)
    w0 = layer(model, "unet", names[0]).weight.detach().clone()
    [lora] = apply_loras(model, [str(write(tmp_path / "p.safetensors", sd))], permanent=True)
    assert lora.permanent
    assert not any(isinstance(m, BaseTunerLayer) for m in model.pipe.unet.modules())
    assert type(model.pipe.unet.get_submodule(names[0])) is torch.nn.Linear
    expected = w0 + sd[f"unet.{names[0]}.lora_B.weight"] @ sd[f"unet.{names[0]}.lora_A.weight"]
    assert torch.allclose(model.pipe.unet.get_submodule(names[0]).weight, expected, atol=WEIGHT_ATOL)
    with pytest.raises(ModelError, match="reload the base model"):
        remove_loras(model)


def prompt_embeds(model, prompt: str) -> torch.Tensor:
    """[1, 77, 96] SDXL prompt embeddings (both encoders' penultimate layers)."""
    with torch.no_grad():
        embeds, _, _, _ = model.pipe.encode_prompt(prompt, device="cpu", do_classifier_free_guidance=False)
    return embeds


def random_identity(name: str, seed: int) -> Identity:
    g = torch.Generator().manual_seed(seed)
    rows = {"clip_l": torch.randn(2, 32, generator=g), "clip_g": torch.randn(2, 64, generator=g)}  # tiny SDXL widths
    return Identity(name, "sdxl", rows, {"tiny": "true"})


def test_identity_tokens_give_the_same_embeddings_before_and_after_fusing(tmp_path):
    prompt = "a photo of <grace-hopper> reading"
    first, second = load_model("tiny", device="cpu"), load_model("tiny", device="cpu")
    unet_only = write(tmp_path / "u.safetensors", peft_lora(first, linear_names(first.pipe.unet, "attn"), seed=9))
    te_names = linear_names(first.pipe.text_encoder, "self_attn")  # diffusers reads PEFT-format TE keys for attention only
    with_te = write(tmp_path / "te.safetensors", peft_lora(first, te_names, seed=10, component="text_encoder"))

    load_identities(first, [random_identity("Grace Hopper", 0)])  # identity, then LoRA
    alone = prompt_embeds(first, prompt)
    apply_loras(first, [str(unet_only)])
    assert torch.equal(prompt_embeds(first, prompt), alone)  # a UNet LoRA leaves the text side exactly as it was
    apply_loras(first, [str(with_te)])
    identity_then_lora = prompt_embeds(first, prompt)
    assert (identity_then_lora - alone).abs().mean() > 1e-4  # this one does change the text encoder

    apply_loras(second, [str(with_te)])  # LoRA, then identity
    load_identities(second, [random_identity("Grace Hopper", 0)])
    assert torch.allclose(prompt_embeds(second, prompt), identity_then_lora, atol=1e-6)
    remove_loras(first)
    assert torch.allclose(prompt_embeds(first, prompt), alone, atol=1e-5)


# --------------------------------------------------------------------------- fast mode through the renderer


def lightning_file(model, tmp_path: Path) -> Path:
    names = linear_names(model.pipe.unet, "transformer_blocks")
    shapes = {kohya_key("lora_unet", n): (layer(model, "unet", n).in_features, layer(model, "unet", n).out_features) for n in names}
    return write(tmp_path / "sdxl_lightning_4step_lora.safetensors", kohya_lora(shapes, 11, alpha=16.0))  # scale 4: visible


def pixels(panel) -> np.ndarray:
    return np.asarray(panel.image, dtype=np.int16)  # [H, W, 3]


def test_fast_preset_renders_a_panel_with_the_presets_scheduler_and_steps(base, tmp_path):
    renderer = Renderer(base)
    size = RenderConfig(width=64, height=64, batch_size=2, seed=3)
    plain = renderer.render(["a lighthouse at night"], config=quality_preset("fast", kind="lightning").render_config(size))
    loras = apply_loras(base, [str(lightning_file(base, tmp_path))])
    assert loras[0].kind == "lightning"
    config = quality_preset("fast", loras).render_config(size)
    assert (config.steps, config.scheduler, config.guidance, config.width, config.seed) == (4, "euler_trailing", 0.0, 64, 3)
    done: list[int] = []
    [panel] = renderer.render(["a lighthouse at night"], config=config, callback=lambda d, t: done.append(d))
    assert done == [1, 2, 3, 4]
    assert renderer._schedulers["euler_trailing"].timesteps.tolist() == [999, 749, 499, 249]  # trailing spacing
    record = panel.record()
    assert (record["steps"], record["scheduler"], record["guidance"]) == (4, "euler_trailing", 0.0)
    assert np.abs(pixels(panel) - pixels(plain[0])).mean() > 1  # the fused LoRA changed the picture


def test_tcd_preset_passes_its_eta_to_the_sampler(base):
    renderer = Renderer(base)
    config = quality_preset("fast", kind="tcd").render_config(RenderConfig(width=64, height=64, seed=1))
    assert (config.scheduler, config.eta, config.guidance) == ("tcd", 0.3, 0.0)
    a = renderer.render(["a cat"], config=config)[0]
    b = renderer.render(["a cat"], config=config)[0]
    deterministic = renderer.render(["a cat"], config=dataclasses.replace(config, eta=0.0))[0]
    assert np.array_equal(pixels(a), pixels(b))  # seeded: the same noise each time
    assert np.abs(pixels(a) - pixels(deterministic)).mean() > 0.5  # eta reached TCD's step
    assert a.record()["eta"] == 0.3 and a.config().eta == 0.3  # recorded, and a rerender keeps it


# --------------------------------------------------------------------------- errors


def test_missing_and_pickle_and_empty_files_are_clear_input_errors(base, tmp_path):
    with pytest.raises(LoraFileError, match="no LoRA file") as info:
        apply_loras(base, [str(tmp_path / "nope.safetensors")])
    assert isinstance(info.value, InputError)
    (tmp_path / "style.ckpt").write_bytes(b"not really")
    with pytest.raises(LoraFileError, match="pickle"):
        apply_loras(base, [str(tmp_path / "style.ckpt")])
    unet_like = write(tmp_path / "unet.safetensors", {"down_blocks.0.resnets.0.conv1.weight": torch.zeros(4, 4, 3, 3)})
    with pytest.raises(LoraFileError, match="no LoRA weights.*--model"):
        apply_loras(base, [str(unet_like)])
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(LoraFileError, match="not a readable"):
        apply_loras(base, [str(tmp_path / "broken.safetensors")])


def test_float8_integer_and_non_finite_lora_weights_are_refused_before_fusing(base, tmp_path):
    names = linear_names(base.pipe.unet, "transformer_blocks")[:2]
    before = weights(base)
    for label, change, message in (
        ("f8", lambda t: t.to(torch.float8_e4m3fn), "holds F8_E4M3 values"),
        ("int", lambda t: (t * 100).to(torch.int8), "holds I8 values"),
        ("nan", lambda t: t.index_fill(0, torch.tensor([0]), float("nan")), "not finite numbers"),
    ):
        sd = peft_lora(base, names, seed=2)
        key = next(iter(sd))
        sd[key] = change(sd[key])
        with pytest.raises(LoraFileError, match=message):
            apply_loras(base, [str(write(tmp_path / f"{label}.safetensors", sd))])
    assert_same_weights(weights(base), before)
    assert not base.loras


def test_hub_id_offline_says_so(base, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LoraFileError, match="hub"):
        apply_loras(base, ["storyface-test/no-such-lora/lora.safetensors"])


def test_lora_for_another_model_is_refused_and_leaves_the_base_weights(base, tmp_path):
    before = weights(base)
    good = lightning_file(base, tmp_path)
    apply_loras(base, [str(good)])
    sd15_only = {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": (320, 320)}  # SDXL has no attention there
    sd15 = write(tmp_path / "sd15.safetensors", kohya_lora(sd15_only, 12))
    with pytest.raises(LoraMismatchError, match="SDXL"):
        apply_loras(base, [str(good), str(sd15)])
    assert base.loras == []
    assert_same_weights(weights(base), before)  # all or nothing: back at the base, no half-fused set

    n = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
    partly = kohya_lora({kohya_key("lora_unet", n): (64, 64), **sd15_only}, 13)
    with pytest.raises(LoraMismatchError, match="1 of 2 LoRA layers match no layer"):
        apply_loras(base, [str(write(tmp_path / "partly.safetensors", partly))])
    wrong_width = kohya_lora({kohya_key("lora_unet", n): (320, 320)}, 14)  # SD 1.5's 320-wide layer of that name
    with pytest.raises(LoraMismatchError, match="does not fit"):
        apply_loras(base, [str(write(tmp_path / "wide.safetensors", wrong_width))])
    assert_same_weights(weights(base), before)


@pytest.mark.parametrize("weight", [float("nan"), 70, -5.0, True, "0.8"])
def test_bad_weights_are_input_errors(weight):
    with pytest.raises(InputError, match="weight"):
        LoraSpec("x.safetensors", weight)


def test_kinds_are_checked_and_only_one_distillation_lora_fits(base, tmp_path):
    with pytest.raises(InputError, match="lightning, hyper, lcm, tcd"):
        LoraSpec("x.safetensors", kind="turbo")
    a = lightning_file(base, tmp_path)
    b = write(tmp_path / "lcm-lora-sdxl.safetensors", peft_lora(base, linear_names(base.pipe.unet, "attn1"), 15))
    with pytest.raises(InputError, match="one distillation LoRA"):
        apply_loras(base, [str(a), str(b)])


def test_parse_lora_spec():
    assert parse_lora_spec("comic.safetensors:0.8") == LoraSpec("comic.safetensors", 0.8)
    assert parse_lora_spec("merged.safetensors:1:lightning") == LoraSpec("merged.safetensors", 1.0, kind="lightning")
    assert parse_lora_spec("ghibli.safetensors:style") == LoraSpec("ghibli.safetensors", kind="style")
    assert parse_lora_spec(r"C:\loras\ink.safetensors") == LoraSpec(r"C:\loras\ink.safetensors")
    hub = parse_lora_spec("ByteDance/SDXL-Lightning/sdxl_lightning_8step_lora.safetensors")
    assert hub.weight == 1.0 and hub.kind == "lightning"
    assert LoraSpec("latent-consistency/lcm-lora-sdxl").kind == "lcm"
    assert LoraSpec("h1t/TCD-SDXL-LoRA").kind == "tcd"
    assert LoraSpec("watercolor_xl.safetensors").kind == "style"
    with pytest.raises(InputError, match="weight"):
        parse_lora_spec("comic.safetensors:9")


def test_loaded_lora_record_is_json():
    lora = LoadedLora(LoraSpec("a/b", 0.5, weight_name="x.safetensors"), "/cache/x.safetensors", "0123456789abcdef", "n", ("unet",), 3)
    assert json.loads(json.dumps(lora.record())) == {
        "source": "a/b", "weight_name": "x.safetensors", "weight": 0.5, "kind": "style",
        "sha256": "0123456789abcdef", "components": ["unet"], "layers": 3,
    }


def test_sd2_model_takes_a_lora_too(tmp_path):
    model = load_model("tiny-sd2", device="cpu")
    names = linear_names(model.pipe.unet, "attn1")
    sd = peft_lora(model, names, seed=16)
    w0 = layer(model, "unet", names[0]).weight.detach().clone()
    [lora] = apply_loras(model, [str(write(tmp_path / "sd2.safetensors", sd))])
    assert lora.layers == len(names)
    expected = w0 + sd[f"unet.{names[0]}.lora_B.weight"] @ sd[f"unet.{names[0]}.lora_A.weight"]
    assert torch.allclose(layer(model, "unet", names[0]).weight, expected, atol=WEIGHT_ATOL)
    remove_loras(model)
    assert torch.allclose(model.pipe.unet.get_submodule(names[0]).weight, w0, atol=WEIGHT_ATOL)
