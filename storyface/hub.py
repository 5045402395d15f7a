"""Loading the optional Hugging Face models (face encoders, face parsing, CLIP) the same way."""

from __future__ import annotations

import logging
from typing import Any

from .errors import ModelError

log = logging.getLogger(__name__)


def load_pretrained(what: str, model_id: str, device: str, model_cls: Any, processor_cls: Any, **kwargs: Any) -> tuple[Any, Any]:
    """(model in eval mode on ``device``, processor); a bad id/path becomes a ModelError naming it.

    The hub may be offline (it always is in tests and CI), so the message says what works then.
    """
    try:
        processor = processor_cls.from_pretrained(model_id)
        model = model_cls.from_pretrained(model_id, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(
            f"Cannot load {what} {model_id!r}: {exc}. Give a local folder or a Hugging Face id "
            "that is already downloaded (the hub may be offline)."
        ) from exc
    log.info("loaded %s %s", what, model_id)
    return model.to(device).eval(), processor
