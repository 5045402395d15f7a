"""Identity rows that are banned words in disguise (issue 17, item 2): the threshold, the distributions
it separates (printed with ``pytest -s``; bench/bench_identity_rows.py prints them too), and the refusal
on every path that puts rows into a text encoder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from storyface.api import ComicFolder, make_comic, plan_prompts, redraw_panel
from storyface.identity.tokens import Identity, load_identities, load_identity, save_identity
from storyface.identity.train import TrainConfig, train_identities
from storyface.models import EncoderSlot, load_model
from storyface.random_models import clip_tokenizer
from storyface.render.generate import RenderConfig, Renderer
from storyface.safety import ContentPolicyError
from storyface.safety import embeddings
from storyface.safety.embeddings import COS_FLOOR, build_table, chance_limit, limit_for, table_for
from storyface.story.schema import Panel

from subjects import synthetic_subject

sys.path.insert(0, str(Path(__file__).parent))
from identity_rows_table import ALWAYS_CAUGHT, CAUGHT_AT_REAL_WIDTHS, HONEST, RandomTable, measure, summary  # noqa: E402

TRAIN = TrainConfig(steps=20, bank_size=4, mlp_hidden=64, probe_samples=1)



@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", device="cpu")


def word_rows(model, words: list[str], honest_seed: int = 0) -> dict[str, torch.Tensor]:
    """An identity's rows per encoder: the model's own embeddings of ``words`` (BPE tokens), padded
    with an honest-looking random row to two vectors."""
    rows = {}
    for slot in model.encoders:
        table = slot.text_encoder.get_input_embeddings().weight.detach().float()  # [V, D]
        picked = table[slot.tokenizer.convert_tokens_to_ids(words)]
        pad = torch.randn(max(0, 2 - len(words)), slot.dim, generator=torch.Generator().manual_seed(honest_seed)) * 0.02
        rows[slot.key] = torch.cat([picked, pad])
    return rows


# -- the threshold ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [32, 64, 768, 1280])
def test_the_chance_limit_is_the_beta_law_of_a_random_cosine(dim):
    """P(x.u > c) for a uniform direction x: the limit at a measurable probability (1%) matches sampling."""
    c = chance_limit(dim, 1, false_alarm=0.01)
    x = torch.randn(200_000, dim, generator=torch.Generator().manual_seed(dim))
    share = float(((x[:, 0] / x.norm(dim=1)) > c).float().mean())
    assert share == pytest.approx(0.01, abs=0.0015)
    assert chance_limit(dim, 100, false_alarm=0.01) > c  # more rows to beat by chance: a higher limit


def test_the_limit_is_the_floor_at_real_widths_and_chance_on_the_tiny_model():
    assert limit_for(768, 826) == COS_FLOOR and limit_for(1280, 826) == COS_FLOOR
    assert 0.19 < chance_limit(768, 826) < 0.23  # ~6 standard deviations of a random cosine, 1/sqrt(768)
    assert 0.80 < limit_for(32, 826) < 0.86 and 0.62 < limit_for(64, 826) < 0.70


# -- the distributions -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tiny) -> dict[str, torch.Tensor]:
    """Rows of three identities trained on the tiny model: key -> [3, 2, D]."""
    people = train_identities(tiny, [synthetic_subject(f"Person {i}", i) for i in range(3)], TRAIN)
    return {slot.key: torch.stack([p.embeddings[slot.key] for p in people]) for slot in tiny.encoders}


def _check(key: str, threshold: float, scores: dict[str, torch.Tensor], caught: tuple[str, ...]) -> None:
    print("\n" + "\n".join(summary(key, threshold, scores)))
    honest = max(float(scores[name].max()) for name in HONEST if name in scores)
    assert honest < threshold, f"{key}: an honest row scores {honest:.3f} >= {threshold:.3f}"
    for name in caught:
        assert float(scores[name].min()) >= threshold, f"{key}: {name} scores {float(scores[name].min()):.3f}"


def test_tiny_model_honest_rows_pass_and_banned_ones_do_not(tiny, trained):
    """Widths 32 and 64: chance alone reaches ~0.65, so the limit is high; exact, noisy and scaled banned
    words still clear it with room (mixes do not: see the real-width test)."""
    for slot in tiny.encoders:
        table = table_for(slot)
        scores = measure(slot, table, trained=trained[slot.key])
        _check(slot.key, table.threshold, scores, ALWAYS_CAUGHT[:3])
        assert float(scores["trained identities"].max()) < table.threshold - 0.1


@pytest.mark.parametrize(("key", "width"), [("clip_l", 768), ("clip_g", 1280)])
def test_real_widths_catch_noise_mixes_and_blends_with_a_wide_margin(key, width):
    """At SDXL's widths chance stays near 0.1 and the 0.5 floor rules: a banned word under 50% noise, an
    even mix of two or three banned words, or half a banned word blended into an honest row are refused."""
    slot = EncoderSlot(key, clip_tokenizer(), RandomTable(width, seed=width))
    table = build_table(slot)
    assert table.threshold == COS_FLOOR
    scores = measure(slot, table)
    _check(f"{key} (random table, width {width})", table.threshold, scores, ALWAYS_CAUGHT + CAUGHT_AT_REAL_WIDTHS)
    assert max(float(scores[n].max()) for n in HONEST if n in scores) < 0.2


def test_the_table_spells_out_multi_piece_words_and_leaves_names_alone(tiny):
    slot = tiny.encoders[0]
    runs = embeddings.banned_runs(slot.tokenizer)
    assert runs[("nude</w>",)] == ("nude", "nudity")  # a one-token word
    assert runs[("por", "n</w>")] == ("porn", "sexual")  # CLIP has no "porn" token: its two pieces
    assert ("por",) not in runs and ("n</w>",) not in runs  # a piece alone is no evidence
    named = {tuple(p) for p in embeddings.pieces_of(slot.tokenizer, embeddings.name_words())}
    assert not any(run in named for run in runs)


def test_the_table_is_built_once_per_encoder(tiny, monkeypatch):
    built = []
    original = embeddings.build_table
    monkeypatch.setattr(embeddings, "build_table", lambda slot: built.append(slot.key) or original(slot))
    model = load_model("tiny", device="cpu")
    rows = {s.key: torch.randn(2, s.dim) for s in model.encoders}
    for name in ("Ann One", "Bob Two", "Cy Three"):
        load_identities(model, [Identity(name, "sdxl", rows, {"tiny": "true"})])
    assert built == ["clip_l", "clip_g"]


# -- the refusal, wherever rows go in ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "words", "label"),
    [
        ("nude", ["nude</w>"], "nudity or undressing"),
        ("porn", ["por", "n</w>"], "sexual content"),  # two pieces, spelled out by the two vectors
        ("lingerie", ["lingerie</w>"], "underwear"),
    ],
)
def test_a_file_of_banned_words_is_refused_before_any_row_goes_in(tiny, tmp_path, word, words, label):
    path = save_identity(Identity("Beach Outfit", "sdxl", word_rows(tiny, words), {"tiny": "true"}), tmp_path / "beach.safetensors")
    identity = load_identity(path)  # a well-formed file: the rows are the problem, not the format
    tokens, sizes = dict(tiny.loaded_tokens), [len(s.tokenizer) for s in tiny.encoders]
    with pytest.raises(ContentPolicyError, match="identity rows") as info:
        load_identities(tiny, [identity])
    message = str(info.value)
    assert "'Beach Outfit'" in message and label in message
    assert word not in message.lower()  # the category, never the word
    assert tiny.loaded_tokens == tokens and [len(s.tokenizer) for s in tiny.encoders] == sizes


def test_a_banned_row_in_one_encoder_only_is_enough(tiny):
    rows = {s.key: torch.randn(2, s.dim) for s in tiny.encoders}
    rows["clip_g"] = word_rows(tiny, ["naked</w>"])["clip_g"]
    with pytest.raises(ContentPolicyError, match="clip_g"):
        load_identities(tiny, [Identity("Only G", "sdxl", rows, {"tiny": "true"})])


def test_renderer_plan_and_redraw_refuse_it_and_keep_what_was_loaded(tiny, tmp_path):
    renderer = Renderer(tiny)
    honest = Identity("Grace Hopper", "sdxl", {s.key: torch.randn(2, s.dim) for s in tiny.encoders}, {"tiny": "true"})
    comic = make_comic(renderer, [Panel(sentence="Grace Hopper waves.")], [honest], tmp_path / "comic", config=RenderConfig(steps=1))
    before = ComicFolder(comic.out_dir).manifest.read_bytes()
    disguised = Identity("Grace Hopper", "sdxl", word_rows(tiny, ["sexy</w>"]), {"tiny": "true"})
    with pytest.raises(ContentPolicyError, match="sexual content"):
        renderer.load_identities([disguised])
    with pytest.raises(ContentPolicyError, match="identity rows"):
        plan_prompts(renderer, [Panel(sentence="Grace Hopper waves.")], [disguised])
    with pytest.raises(ContentPolicyError, match="identity rows"):
        redraw_panel(renderer, comic.out_dir, 1, [disguised], seed=1)
    assert ComicFolder(comic.out_dir).manifest.read_bytes() == before
    assert tiny.loaded_tokens[honest.token] == (honest.digest(), 2)
