"""Identity files checked from their own bytes (issue 17, item 2) and loading that is all-or-nothing
(item 3): a failure part-way through never leaves a token the text encoders do not have."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from storyface.errors import IdentityFileError
from storyface.identity.tokens import Identity, added_tokens, load_identities, load_identity
from storyface.models import load_model

G = torch.Generator().manual_seed(0)


def rows(n: int = 2, widths: tuple[int, int] = (32, 64)) -> dict[str, torch.Tensor]:
    return {"clip_l": torch.randn(n, widths[0], generator=G), "clip_g": torch.randn(n, widths[1], generator=G)}


def as_dtype(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: (v > 0) if dtype == torch.bool else v.to(dtype) for k, v in rows().items()}


def with_zero_row() -> dict[str, torch.Tensor]:
    r = rows()
    r["clip_l"][1] = 0
    return r


LIES = {"tiny": "true", "family": "sdxl", "dtype": "F32", "format": "storyface-identity/1"}  # says all is well
BAD_FILES = {
    # label: (tensors, metadata, part of the message)
    "float8 e4m3": (lambda: as_dtype(torch.float8_e4m3fn), LIES, "F8_E4M3 values"),
    "float8 e5m2": (lambda: as_dtype(torch.float8_e5m2), LIES, "F8_E5M2 values"),
    "int32": (lambda: as_dtype(torch.int32), LIES, "I32 values"),
    "int8": (lambda: as_dtype(torch.int8), LIES, "I8 values"),
    "uint8": (lambda: as_dtype(torch.uint8), LIES, "U8 values"),
    "bool": (lambda: as_dtype(torch.bool), LIES, "BOOL values"),
    "complex": (lambda: as_dtype(torch.complex64), LIES, "C64 values"),
    "a row of zeros": (with_zero_row, LIES, "clip_l vector 2 is all zeros"),
    "all zeros": (lambda: {k: torch.zeros_like(v) for k, v in rows().items()}, LIES, "all zeros"),
    "float64 beyond float32": (lambda: {k: v.double() * 1e300 for k, v in rows().items()}, LIES, "not finite numbers as float32"),
    "float32 infinity": (lambda: {k: v / 0 for k, v in rows().items()}, LIES, "not finite"),
    "huge but finite": (lambda: {k: v * 1e6 for k, v in rows().items()}, LIES, "far below 100"),
    "17 vectors": (lambda: rows(17), LIES, "holds 17 vectors; an identity has 1 to 16"),
    "no vectors": (lambda: {"clip_l": torch.zeros(0, 32), "clip_g": torch.zeros(0, 64)}, LIES, "holds 0 vectors"),
    "3-D": (lambda: {"clip_l": torch.randn(3, 2, 32), "clip_g": torch.randn(3, 2, 64)}, LIES, "[tokens, width] matrix"),
    "4-D": (lambda: {"clip_l": torch.randn(1, 1, 2, 32), "clip_g": torch.randn(1, 1, 2, 64)}, LIES, "[tokens, width] matrix"),
    "a width no model has": (lambda: rows(widths=(33, 64)), LIES, "fits no model StoryFace runs"),
    "widths of two models": (lambda: rows(widths=(32, 1280)), LIES, "fits no model StoryFace runs"),
    "swapped widths": (lambda: rows(widths=(1280, 768)), LIES, "SDXL needs clip_l 768, clip_g 1280"),
    "SD 1.5 width": (lambda: {"emb_params": torch.randn(2, 768)}, {}, "SD2 needs emb_params 1024"),
    "a 3,000-character value": (rows, {**LIES, "base_model": "x" * 3000}, "keep each value to 2,000"),
    "65 metadata entries": (rows, {f"k{i}": "v" for i in range(65)}, "at most 64"),
    "a 200-character key": (rows, {"k" * 200: "v"}, "keep keys to 100"),
}


@pytest.mark.parametrize("label", list(BAD_FILES))
def test_a_bad_identity_file_is_refused_whatever_its_metadata_says(tmp_path: Path, label: str) -> None:
    make, meta, expect = BAD_FILES[label]
    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in make().items()}, str(path), metadata=meta)
    with pytest.raises(IdentityFileError) as info:
        load_identity(path)
    assert expect in str(info.value)
    assert "bad.safetensors" in str(info.value)


def test_float64_and_float16_rows_that_fit_float32_are_read(tmp_path: Path) -> None:
    original = rows()
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        path = tmp_path / f"{dtype}.safetensors"
        save_file({k: v.to(dtype) for k, v in original.items()}, str(path), metadata={"tiny": "true"})
        loaded = load_identity(path)
        assert all(t.dtype == torch.float32 for t in loaded.embeddings.values())
        assert torch.allclose(loaded.embeddings["clip_l"], original["clip_l"], atol=0.05)


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as f:
        f.truncate(17 * 1024 * 1024)
    with pytest.raises(IdentityFileError, match="a few KB"):
        load_identity(path)


# -- loading is all-or-nothing -------------------------------------------------------------------------


@pytest.fixture
def model():
    return load_model("tiny", device="cpu")  # a fresh one per test: each starts from a known state


def person(name: str, seed: int, n: int = 2) -> Identity:
    g = torch.Generator().manual_seed(seed)
    return Identity(name, "sdxl", {"clip_l": torch.randn(n, 32, generator=g), "clip_g": torch.randn(n, 64, generator=g)}, {"tiny": "true"})


def prompt_embeds(model, token: str) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        embeds, _, pooled, _ = model.pipe.encode_prompt(
            f"a photo of {token} at the beach", device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=False
        )
    return embeds, pooled


def assert_every_loaded_token_encodes_to_its_rows(model, known: dict[str, Identity]) -> None:
    for token, (digest, n) in model.loaded_tokens.items():
        identity = known[token]
        assert digest == identity.digest() and n == identity.embeddings["clip_l"].shape[0]
        for slot in model.encoders:
            names = added_tokens(token, n)
            ids = slot.tokenizer(" ".join(names), add_special_tokens=False).input_ids
            assert ids == slot.tokenizer.convert_tokens_to_ids(names), f"{slot.key} reads {token} as text"
            table = slot.text_encoder.get_input_embeddings().weight  # [V, D]
            assert table.shape[0] == len(slot.tokenizer)
            assert torch.equal(table[ids].detach(), identity.embeddings[slot.key])


def fail_in_second_encoder(model, monkeypatch, *, after: bool) -> None:
    """diffusers' loader raises for the second text encoder (out of memory, say), before or after it
    changed that encoder."""
    original = model.pipe.load_textual_inversion

    def load(*args, **kwargs):
        if kwargs.get("text_encoder") is model.pipe.text_encoder_2:
            if after:
                original(*args, **kwargs)
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(*args, **kwargs)

    monkeypatch.setattr(model.pipe, "load_textual_inversion", load)


def fail_half_way_in_the_loader(model, monkeypatch, *, after: bool) -> None:
    """The table of the second encoder is already resized when adding its tokens fails: once (a
    passing fault), or every time (``after``: the undo cannot add them back either)."""
    tokenizer = model.pipe.tokenizer_2
    original = tokenizer.add_tokens
    calls = []

    def add_tokens(*args, **kwargs):
        calls.append(args)
        if after or len(calls) == 1:
            raise RuntimeError("tokenizer broke (simulated)")
        return original(*args, **kwargs)

    monkeypatch.setattr(tokenizer, "add_tokens", add_tokens)


SCENARIOS = {
    "a new person; the 2nd encoder fails first": (fail_in_second_encoder, False, "fresh"),
    "a new person; the 2nd encoder fails after loading": (fail_in_second_encoder, True, "fresh"),
    "a new person; the loader fails half-way": (fail_half_way_in_the_loader, False, "fresh"),
    "the first person re-loaded with 3 vectors, and a new one": (fail_in_second_encoder, True, "reload"),
    "the first person with new rows, and a new one": (fail_in_second_encoder, False, "rewrite"),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_failed_load_leaves_every_loaded_token_working(model, monkeypatch, scenario: str) -> None:
    inject, after, kind = SCENARIOS[scenario]
    first, second, other = person("First Person", 10), person("Second Person", 20), person("Other Person", 30)
    load_identities(model, [first])
    load_identities(model, [other])  # loaded after the first: its ids shift if the first is unloaded
    known = {first.token: first, other.token: other}
    before = dict(model.loaded_tokens)
    sizes = [(len(s.tokenizer), s.text_encoder.get_input_embeddings().weight.shape[0]) for s in model.encoders]
    embeds = prompt_embeds(model, first.token)
    batch = {"fresh": [second], "reload": [person(first.name, 99, n=3), second], "rewrite": [person(first.name, 98), second]}[kind]
    with monkeypatch.context() as patch:
        inject(model, patch, after=after)
        with pytest.raises(RuntimeError, match="simulated"):
            load_identities(model, batch)
    assert model.loaded_tokens == before
    assert [(len(s.tokenizer), s.text_encoder.get_input_embeddings().weight.shape[0]) for s in model.encoders] == sizes
    assert_every_loaded_token_encodes_to_its_rows(model, known)
    after_embeds = prompt_embeds(model, first.token)
    assert torch.equal(after_embeds[0], embeds[0]) and torch.equal(after_embeds[1], embeds[1])
    load_identities(model, [second])  # no half-loaded leftovers stand in the way
    known[second.token] = second
    assert_every_loaded_token_encodes_to_its_rows(model, known)



def test_when_even_the_undo_fails_no_token_is_claimed_that_the_encoders_lack(model, monkeypatch) -> None:
    first, second = person("First Person", 10), person("Second Person", 20)
    load_identities(model, [first])
    with monkeypatch.context() as patch:
        fail_half_way_in_the_loader(model, patch, after=True)
        with pytest.raises(RuntimeError, match="simulated"):
            load_identities(model, [second])
    assert_every_loaded_token_encodes_to_its_rows(model, {first.token: first})
    load_identities(model, [first, second])  # and both load cleanly afterwards
    assert_every_loaded_token_encodes_to_its_rows(model, {first.token: first, second.token: second})
