"""An optional image safety classifier for rendered panels.

Text rules cannot catch everything (a prompt can be innocent and the picture not), so a panel that
shows a cast member can also be judged as an image: any Hugging Face image-classification model whose
labels name unsafe classes (``nsfw``, ``porn``, ``hentai``, ``sexy``, ``unsafe``, ...), given as a
local folder or an already-downloaded hub id, e.g. a model with labels ``normal``/``nsfw`` or
``drawings``/``hentai``/``neutral``/``porn``/``sexy``. The renderer blacks out a flagged panel and
records it. torch and transformers are imported only when a checker is built.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import Any

from ..errors import ModelError

log = logging.getLogger(__name__)

# A panel is flagged when the summed probability of the unsafe labels reaches this: 0.5 means the model
# finds "unsafe" at least as likely as everything else together. Lower it to black out more borderline
# panels (more false alarms), raise it to black out fewer (more misses).
THRESHOLD = 0.5
ENV_VAR = "STORYFACE_IMAGE_CHECKER"  # a classifier's folder or hub id: every door's renderer uses it
BATCH = 8  # panels per forward pass: a page is at most 24 panels, and 8 keeps CPU memory small
UNSAFE_WORDS = ("nsfw", "porn", "hentai", "sexy", "unsafe", "explicit", "nude", "nudity", "naked", "sexual", "erotic")
_NEGATED = re.compile(r"^(?:not|non|no)[\s_-]")  # "not_nsfw", "non-porn" are the safe class


def unsafe_labels(id2label: dict[int, str]) -> list[int]:
    """The class indices whose label names an unsafe class: a word of the label starts with one of
    :data:`UNSAFE_WORDS` ("NSFW", "porn", "pornographic"); "not_nsfw", "non-porn", "nonsexual" are safe."""
    found = []
    for index, label in id2label.items():
        name = str(label).strip().lower()
        if _NEGATED.match(name):
            continue
        if any(re.search(rf"(?<![a-z]){w}", name) for w in UNSAFE_WORDS):
            found.append(int(index))
    return sorted(found)


class ImageSafetyChecker:
    """``flagged(images)``: one bool per image, True where the classifier calls it unsafe."""

    def __init__(self, model: str, device: str = "cpu", threshold: float = THRESHOLD) -> None:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        from ..hub import load_pretrained

        self.model, self.processor = load_pretrained(
            "image safety classifier", model, device, AutoModelForImageClassification, AutoImageProcessor
        )
        labels = dict(self.model.config.id2label)
        self.unsafe = unsafe_labels(labels)
        if not self.unsafe:
            raise ModelError(
                f"the image safety classifier {model!r} has no label that names unsafe content "
                f"(its labels: {', '.join(map(str, labels.values()))}); use a model with a label such as "
                f"{', '.join(UNSAFE_WORDS[:5])}"
            )
        self.device, self.threshold, self.name = device, threshold, model
        log.info("image safety classifier %s: unsafe labels %s", model, [labels[i] for i in self.unsafe])

    @classmethod
    def from_env(cls, device: str = "cpu") -> ImageSafetyChecker | None:
        """The classifier named by ``STORYFACE_IMAGE_CHECKER``, or None when it is not set; the doors
        read it once, with the content policy, and hand it to the renderer."""
        name = os.environ.get(ENV_VAR, "").strip()
        return cls(name, device=device) if name else None

    def scores(self, images: Sequence[Any]) -> list[float]:
        """The probability each image is unsafe (the unsafe labels' probabilities summed)."""
        import torch

        out: list[float] = []
        for start in range(0, len(images), BATCH):
            batch = [image.convert("RGB") for image in images[start : start + BATCH]]
            inputs = self.processor(images=batch, return_tensors="pt").to(self.device)
            with torch.no_grad():
                logits = self.model(**inputs).logits  # [B, C]
            probs = logits.float().softmax(dim=-1)  # [B, C]
            out += probs[:, self.unsafe].sum(dim=-1).tolist()  # [B]
        return out

    def flagged(self, images: Sequence[Any]) -> list[bool]:
        """One bool per image: True where the unsafe probability reaches the threshold."""
        return [score >= self.threshold for score in self.scores(images)]
