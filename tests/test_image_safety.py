"""The optional image safety classifier, on a random-weight ViT whose classifier bias fixes the outcome."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from storyface.errors import ModelError
from storyface.safety.images import ImageSafetyChecker, unsafe_labels


def tiny_classifier(path, labels: list[str], bias: list[float]):
    """A real ViTForImageClassification at toy size, saved like a hub model; zero classifier weights
    and the given bias make every image score softmax(bias), whatever its pixels."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
    )  # fmt: skip
    torch.manual_seed(0)
    model = ViTForImageClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor(bias))
    model.save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return str(path)


def panels() -> list[Image.Image]:
    return [Image.new("RGB", (64, 48), (200, 30, 30)), Image.new("L", (40, 40), 128), Image.new("RGB", (32, 32))]


def test_a_classifier_that_calls_everything_nsfw_flags_every_panel(tmp_path):
    checker = ImageSafetyChecker(tiny_classifier(tmp_path, ["normal", "nsfw"], [0.0, 5.0]))
    assert checker.flagged(panels()) == [True, True, True]
    # softmax([0, 5])[1] = 1 / (1 + e^-5) = 0.99331
    assert checker.scores(panels()[:1])[0] == pytest.approx(0.99331, abs=1e-4)


def test_a_classifier_that_calls_everything_normal_flags_nothing(tmp_path):
    checker = ImageSafetyChecker(tiny_classifier(tmp_path, ["normal", "nsfw"], [5.0, 0.0]))
    assert checker.flagged(panels()) == [False, False, False]


def test_several_unsafe_labels_are_summed(tmp_path):
    # GantMan-style labels: hentai, porn and sexy are unsafe; each alone is under 0.5, together over
    labels = ["drawings", "hentai", "neutral", "porn", "sexy"]
    checker = ImageSafetyChecker(tiny_classifier(tmp_path, labels, [1.0, 1.0, 1.0, 1.0, 1.0]))
    assert checker.unsafe == [1, 3, 4]
    assert checker.scores(panels()[:1])[0] == pytest.approx(0.6, abs=1e-5)  # 3 of 5 equal classes
    assert checker.flagged(panels()[:1]) == [True]


def test_a_model_without_unsafe_labels_is_refused_with_its_labels(tmp_path):
    with pytest.raises(ModelError, match=r"no label that names unsafe content \(its labels: cat, dog\)"):
        ImageSafetyChecker(tiny_classifier(tmp_path, ["cat", "dog"], [0.0, 0.0]))


def test_a_missing_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="image safety classifier"):
        ImageSafetyChecker(str(tmp_path / "nowhere"))


def test_labels_are_matched_by_word_not_by_letters():
    assert unsafe_labels({0: "normal", 1: "nsfw"}) == [1]
    assert unsafe_labels({0: "safe", 1: "unsafe"}) == [1]
    assert unsafe_labels({0: "not_nsfw", 1: "NSFW"}) == [1]
    assert unsafe_labels({0: "nonsexual", 1: "pornographic", 2: "drawings"}) == [1]


def test_the_renderer_blacks_out_and_records_what_the_checker_flags(tmp_path, monkeypatch):
    import numpy as np

    from storyface.models import load_model
    from storyface.render import RenderConfig, Renderer

    model = load_model("tiny", device="cpu")
    config = RenderConfig(steps=1, width=64, height=64, batch_size=2)
    monkeypatch.setenv("STORYFACE_IMAGE_CHECKER", tiny_classifier(tmp_path / "nsfw", ["normal", "nsfw"], [0.0, 5.0]))
    strict = Renderer(model, image_checker=ImageSafetyChecker.from_env())
    flagged = strict.render(["a lighthouse at night", "a cat on a sofa"], config=config)
    assert [p.blocked for p in flagged] == [True, True] and [p.record()["blocked"] for p in flagged] == [True, True]
    assert all(np.asarray(p.image).max() == 0 for p in flagged)
    calm = Renderer(model, image_checker=ImageSafetyChecker(tiny_classifier(tmp_path / "ok", ["normal", "nsfw"], [5.0, 0.0])))
    kept = calm.render(["a lighthouse at night", "a cat on a sofa"], config=config)
    assert [p.blocked for p in kept] == [False, False] and all(np.asarray(p.image).max() > 0 for p in kept)
    monkeypatch.delenv("STORYFACE_IMAGE_CHECKER")
    assert ImageSafetyChecker.from_env() is None
