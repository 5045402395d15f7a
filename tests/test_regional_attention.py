"""Region-bound identity tokens on a tiny SDXL pipeline, checked through the processor's capture hook.

The tiny pipeline's UNet is rebuilt here with cross-attention at two resolutions (the stock tiny
UNet has it at one), and panels are 96 x 64 px, so the latent is 8 x 12 and the attention grids are
8 x 12 and 4 x 6: non-square, and more than one level.

Tolerance: probabilities are compared in float32 with ``atol=1e-6`` (they lie in [0, 1]; the masked
softmax and the renormalised unmasked one differ only by float rounding, ~1e-7); SDPA's output is
compared with probs @ V at ``atol=1e-5``. "Exactly zero" and "bit-identical" are exact comparisons.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from storyface.identity.tokens import Identity, load_identities
from storyface.models import load_model
from storyface.render.attention import (
    PanelMask,
    RegionalAttention,
    RegionalProcessor,
    layer_grid,
    panel_masks,
    region_cells,
    token_plan,
    token_positions,
)
from storyface.render.regions import Region, plan_regions

WIDTH, HEIGHT = 96, 64
LATENT = (HEIGHT // 8, WIDTH // 8)
GRIDS = {(8, 12), (4, 6)}
PROBS_ATOL = 1e-6
OUT_ATOL = 1e-5
AB = "a photo of <ada> and <bob> talking in a kitchen"  # <ada>: positions 4, 5; <bob>: 7, 8 (BOS is 0)


def random_identity(name: str, seed: int) -> Identity:
    g = torch.Generator().manual_seed(seed)
    rows = {"clip_l": torch.randn(2, 32, generator=g), "clip_g": torch.randn(2, 64, generator=g)}  # tiny widths
    return Identity(name, "sdxl", rows, {"tiny": "true"})


def two_level_model():
    """The tiny SDXL model with a UNet that cross-attends at both of its resolutions."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

    model = load_model("tiny", device="cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(
            block_out_channels=(32, 64),
            layers_per_block=1,
            sample_size=16,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            norm_num_groups=16,
            cross_attention_dim=96,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + 32,
        ).requires_grad_(False).eval()
    pipe = StableDiffusionXLPipeline(**{**model.pipe.components, "unet": unet})
    pipe.set_progress_bar_config(disable=True)
    model = dataclasses.replace(model, pipe=pipe, loaded_tokens={})
    load_identities(model, [random_identity(n, i) for i, n in enumerate(["Ada", "Bob", "Cy", "Dee"])])
    return model


@pytest.fixture(scope="module")
def model():
    return two_level_model()


def latents(pipe, prompts, seeds, negatives=None, guidance=5.0, **kwargs) -> torch.Tensor:
    """[N, 4, 8, 12] final latents: the exact numbers, before any decoding or rounding."""
    with torch.inference_mode():
        return pipe(
            prompt=list(prompts),
            negative_prompt=list(negatives or [""] * len(prompts)),
            num_inference_steps=2,
            guidance_scale=guidance,
            width=WIDTH,
            height=HEIGHT,
            generator=[torch.Generator().manual_seed(s) for s in seeds],
            output_type="latent",
            **kwargs,
        ).images


def captured(regional, pipe, prompts, plans, seeds, negatives=None):
    """Render with masks and return (latents, every AttentionCapture of the call)."""
    negatives = negatives or [""] * len(prompts)
    masks = panel_masks(pipe, prompts, negatives, [token_plan(p) if p else None for p in plans])
    seen = []
    regional.capture = seen.append
    try:
        with regional.active(masks, LATENT):
            out = latents(pipe, prompts, seeds, negatives)
    finally:
        regional.capture = None
    return out, seen


def left_cells(grid) -> torch.Tensor:
    """[h * w] bool: cells whose centre is left of the middle, worked out by hand (raster order)."""
    h, w = grid
    xs = (torch.arange(w) + 0.5) / w
    return (xs < 0.5).repeat(h)


def expected_probs(ref: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
    """The no-processor probabilities with ``blocked`` [Q, K] keys zeroed and each query renormalised."""
    kept = ref * ~blocked
    return kept / kept.sum(-1, keepdim=True)


# -- token positions and geometry ----------------------------------------------------------------


def test_token_positions_follow_the_pipelines_expansion_in_both_tokenizers(model):
    pipe = model.pipe
    assert token_positions(pipe, AB, ["<ada>", "<bob>", "<cy>"]) == {"<ada>": (4, 5), "<bob>": (7, 8), "<cy>": ()}
    for tokenizer in (pipe.tokenizer, pipe.tokenizer_2):  # SDXL's encoders see the same positions
        ids = tokenizer(pipe.maybe_convert_prompt(AB, tokenizer)).input_ids
        assert tokenizer.convert_ids_to_tokens(ids[4:9]) == ["<ada>", "<ada>_1", "and</w>", "<bob>", "<bob>_1"]


def test_layer_grid_finds_every_resolution_including_odd_latents():
    assert layer_grid(128 * 128, (128, 128)) == (128, 128)
    assert layer_grid(64 * 64, (128, 128)) == (64, 64)
    assert layer_grid(32 * 32, (128, 128)) == (32, 32)
    assert layer_grid(8 * 12, (15, 23)) == (8, 12)  # a stride-2 conv rounds up: 15 -> 8, 23 -> 12
    with pytest.raises(ValueError, match="latent_hw"):
        layer_grid(1000, (128, 128))


def test_region_cells_use_cell_centres_and_always_keep_the_centre_cell():
    left = region_cells(Region(0, 0, 0.5, 1), (2, 4)).reshape(2, 4)
    assert left.tolist() == [[True, True, False, False]] * 2
    thin = region_cells(Region(0.3, 0, 0.42, 1), (1, 4)).reshape(-1)  # no centre (0.125, 0.375, ...) inside
    assert thin.tolist() == [False, True, False, False]  # the cell holding x = 0.36


# -- installing ----------------------------------------------------------------------------------


def test_install_replaces_only_cross_attention_and_is_idempotent_and_reversible():
    model = load_model("tiny", device="cpu")
    unet = model.pipe.unet
    before = unet.attn_processors
    regional = RegionalAttention.install(unet)
    after = unet.attn_processors
    assert after.keys() == before.keys()
    for name, proc in after.items():
        if name.endswith("attn2.processor"):
            assert isinstance(proc, RegionalProcessor) and proc.inner is before[name]
        else:
            assert proc is before[name]  # self-attention keeps its very processor
    assert RegionalAttention.install(unet) is regional
    RegionalAttention.uninstall(unet)
    assert all(unet.attn_processors[n] is p for n, p in before.items())


# -- the masks -----------------------------------------------------------------------------------


def test_two_people_attend_only_inside_their_regions(model):
    regional = RegionalAttention.install(model.pipe.unet)
    _, seen = captured(regional, model.pipe, [AB], [plan_regions(["Ada", "Bob"])], [3])
    assert {c.grid for c in seen} == GRIDS and len(seen) == 2 * 7  # 2 steps x 7 cross-attention layers
    for c in seen:
        probs, ref = c.probs(), c.probs(masked=False)  # [2, heads, Q, 77]
        left = left_cells(c.grid)  # [Q]
        a, b = [4, 5], [7, 8]
        # the negative half (row 0) has no identity tokens: no mask at all
        assert torch.equal(c.mask[0], torch.zeros_like(c.mask[0]))
        assert torch.equal(probs[0], ref[0])
        pos = probs[1]  # [heads, Q, 77]
        assert torch.all(pos[:, ~left][:, :, a] == 0)  # Ada's tokens: nothing from the right half
        assert torch.all(pos[:, left][:, :, b] == 0)  # Bob's: nothing from the left half
        assert pos[:, left][:, :, a].min() > 0 and pos[:, ~left][:, :, b].min() > 0
        # inside Ada's half, her tokens keep the no-processor attention, renormalised over the keys
        # left unmasked there (Bob's are masked): p' = p / (1 - p_bob)
        inside = ref[1][:, left]  # [heads, Q_left, 77]
        renorm = inside[:, :, a] / (1 - inside[:, :, b].sum(-1, keepdim=True))
        torch.testing.assert_close(pos[:, left][:, :, a], renorm, atol=PROBS_ATOL, rtol=0)
        # every other token, everywhere: untouched apart from the same renormalisation
        blocked = torch.zeros(left.numel(), 77, dtype=torch.bool)
        blocked[~left, 4:6] = True
        blocked[left, 7:9] = True
        torch.testing.assert_close(pos, expected_probs(ref[1], blocked), atol=PROBS_ATOL, rtol=0)
        # SDPA really applied this mask: its output is probs @ V, not the unmasked mix
        torch.testing.assert_close(c.output, c.probs() @ c.value.float(), atol=OUT_ATOL, rtol=0)
        assert (ref @ c.value.float() - c.output)[1].abs().max() > 1e-4


def test_masks_are_built_once_per_resolution_per_render(model):
    regional = RegionalAttention.install(model.pipe.unet)
    _, seen = captured(regional, model.pipe, [AB], [plan_regions(["Ada", "Bob"])], [3])
    assert len({c.mask.data_ptr() for c in seen}) == len(GRIDS)  # 14 calls, 2 masks
    assert regional._cache == {}  # dropped after the render


def test_one_person_panel_is_bit_identical_to_no_processor(model):
    pipe = model.pipe
    prompts = ["a photo of <ada> in a garden", "a lighthouse at night"]
    RegionalAttention.uninstall(pipe.unet)
    plain = latents(pipe, prompts, [5, 6])
    regional = RegionalAttention.install(pipe.unet)
    masks = panel_masks(pipe, prompts, ["", ""], [token_plan(plan_regions(["Ada"])), None])
    assert masks == [None, None]
    regional.capture = masked_calls = []
    with regional.active(masks, LATENT):
        with_processor = latents(pipe, prompts, [5, 6])
    regional.capture = None
    assert torch.equal(with_processor, plain)
    assert masked_calls == []  # the replaced processor ran, not a zero mask (bit-equal on CPU, not on CUDA)
    outside = latents(pipe, prompts, [5, 6])  # installed but not active
    assert torch.equal(outside, plain)
    # and the test can fail: two people with regions do change the render
    with regional.active(panel_masks(pipe, [AB], [""], [token_plan(plan_regions(["Ada", "Bob"]))]), LATENT):
        two = latents(pipe, [AB], [5])
    assert not torch.equal(two, latents(pipe, [AB], [5]))


def test_a_mixed_batch_keeps_each_panels_own_masks(model):
    pipe = model.pipe
    regional = RegionalAttention.install(pipe.unet)
    prompts = [AB, "a photo of <cy> on a bridge", "<cy> and <dee> at the beach"]
    plans = [plan_regions(["Ada", "Bob"]), plan_regions(["Cy"]), plan_regions(["Cy", "Dee"], {"Dee": "left"})]
    batch, seen = captured(regional, pipe, prompts, plans, [1, 2, 3])
    for c in seen:
        assert c.mask.shape[0] == 6  # [3 negatives; 3 prompts]
        zero = torch.zeros_like(c.mask[0])
        for row in (0, 1, 2, 4):  # every negative, and the one-person panel
            assert torch.equal(c.mask[row], zero)
        left = left_cells(c.grid)
        inf = float("-inf")
        # panel 2 puts Dee (positions 4, 5) left and Cy (1, 2) right, against its prompt's order
        assert torch.all(c.mask[5, 0][~left][:, 4:6] == inf) and torch.all(c.mask[5, 0][left][:, 4:6] == 0)
        assert torch.all(c.mask[5, 0][left][:, 1:3] == inf) and torch.all(c.mask[5, 0][~left][:, 1:3] == 0)
        assert torch.all(c.mask[3, 0][~left][:, 4:6] == inf)  # panel 0: Ada left
    # each two-person panel has exactly the mask it gets when rendered alone, and the same picture
    for k in (0, 2):
        alone, alone_seen = captured(regional, pipe, [prompts[k]], [plans[k]], [k + 1])
        assert torch.equal(seen[0].mask[3 + k], alone_seen[0].mask[1])
        torch.testing.assert_close(batch[k], alone[0], atol=1e-4, rtol=0)
    RegionalAttention.uninstall(pipe.unet)
    plain = latents(pipe, [prompts[1]], [2])
    torch.testing.assert_close(batch[1], plain[0], atol=1e-4, rtol=0)  # the one-person panel: as without


def test_negative_prompt_with_an_identity_token_is_masked_too(model):
    regional = RegionalAttention.install(model.pipe.unet)
    _, seen = captured(regional, model.pipe, [AB], [plan_regions(["Ada", "Bob"])], [3], negatives=["<bob> frowning"])
    for c in seen:
        left = left_cells(c.grid)
        assert torch.all(c.mask[0, 0][left][:, 1:3] == float("-inf"))  # Bob, in the negative, kept right too
        assert torch.all(c.mask[0, 0][~left] == 0) and torch.all(c.mask[0, 0][:, 3:] == 0)


def test_several_images_per_prompt_are_refused_clearly(model):
    regional = RegionalAttention.install(model.pipe.unet)
    masks = panel_masks(model.pipe, [AB], [""], [token_plan(plan_regions(["Ada", "Bob"]))])
    with regional.active(masks, LATENT), pytest.raises(RuntimeError, match="num_images_per_prompt=1"):
        latents(model.pipe, [AB], [1, 2], num_images_per_prompt=2)


def test_active_is_one_render_at_a_time(model):
    regional = RegionalAttention.install(model.pipe.unet)
    with regional.active([None], LATENT), pytest.raises(RuntimeError, match="already active"):
        with regional.active([None], LATENT):
            pass
    assert not regional.wants_mask


def test_panel_masks_skip_panels_with_fewer_than_two_identities_in_the_prompt(model):
    plan = token_plan(plan_regions(["Ada", "Bob"]))
    masks = panel_masks(model.pipe, [AB, "a photo of <ada> alone"], ["", ""], [plan, plan])
    assert isinstance(masks[0], PanelMask) and masks[0].positive == (((4, 5), plan["<ada>"]), ((7, 8), plan["<bob>"]))
    assert masks[1] is None


# -- fast modes ----------------------------------------------------------------------------------


def test_works_with_a_fused_lora_and_fused_qkv_projections():
    from diffusers.models.attention_processor import FusedAttnProcessor2_0
    from peft import LoraConfig

    model = two_level_model()  # its own: fusing changes the weights
    pipe, unet = model.pipe, model.pipe.unet
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v"]))
    unet.fuse_lora()
    one = ["a photo of <ada> in a garden"]
    plain = latents(pipe, one, [5])
    plain_two = latents(pipe, [AB], [5])
    regional = RegionalAttention.install(unet)
    with regional.active([None], LATENT):
        assert torch.equal(latents(pipe, one, [5]), plain)
    two, seen = captured(regional, pipe, [AB], [plan_regions(["Ada", "Bob"])], [5])
    assert not torch.equal(two, plain_two)
    for c in seen:
        left = left_cells(c.grid)
        assert torch.all(c.probs()[1][:, ~left][:, :, 4:6] == 0)
        torch.testing.assert_close(c.output, c.probs() @ c.value.float(), atol=OUT_ATOL, rtol=0)
    # fused K/V projections (fuse first, then install): the same picture, the fused path taken
    RegionalAttention.uninstall(unet)
    unet.fuse_qkv_projections()
    unet.set_attn_processor(FusedAttnProcessor2_0())
    regional = RegionalAttention.install(unet)
    assert all(p._fused for p in unet.attn_processors.values() if isinstance(p, RegionalProcessor))
    fused_two, _ = captured(regional, pipe, [AB], [plan_regions(["Ada", "Bob"])], [5])
    torch.testing.assert_close(fused_two, two, atol=1e-4, rtol=0)
