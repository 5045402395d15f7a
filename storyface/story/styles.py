"""Style presets: a name the user picks -> the words appended to every panel prompt.

Kept apart from the prompt builder (as PhotoMaker does) so the UI can list them and users can read
exactly what a preset adds.
"""

from __future__ import annotations

from ..errors import InputError
from ..names import tidy

STYLE_PRESETS: dict[str, str] = {
    "2D minimalistic": "2D minimalistic illustration, flat colors, clean simple shapes",
    "8K": "8k, ultra detailed, sharp focus, high resolution",
    "cartoon": "cartoon style, bold outlines, vibrant colors",
    "chiaroscuro lighting technique": "chiaroscuro lighting, dramatic contrast of light and shadow",
    "cinematic": "cinematic still, dramatic lighting, shallow depth of field, film grain",
    "painting": "painting, visible brush strokes, artistic",
    "watercolor painting": "watercolor painting, soft washes, paper texture",
    "comic style": "comic book style, ink outlines, halftone shading",
    "digital art": "digital art, detailed illustration, artstation",
    "anime": "anime style, cel shading, expressive eyes",
    "photorealistic": "photorealistic, natural lighting, 35mm photograph, detailed skin",
    "pencil sketch": "pencil sketch, graphite, hand-drawn lines, monochrome",
    "oil painting": "oil painting, rich impasto texture, classical",
    "pixel art": "pixel art, 16-bit, crisp pixels, limited palette",
    "3D render": "3D render, octane render, soft global illumination",
}

DEFAULT_NEGATIVE_PROMPT = (
    "blurry, lowres, low quality, worst quality, jpeg artifacts, deformed, disfigured, bad anatomy, "
    "bad hands, extra fingers, missing fingers, extra limbs, mutated, poorly drawn face, cloned face, "
    "duplicate, cropped, out of frame, text, watermark, signature, logo"
)


def style_suffix(styles: list[str] | tuple[str, ...] = (), free_text: str = "") -> str:
    """The style words for a prompt: presets (any case) in the given order, then ``free_text`` verbatim.

    An unknown preset is an error rather than free text, so a typo does not silently draw the wrong style.
    """
    by_key = {name.casefold(): name for name in STYLE_PRESETS}
    parts: list[str] = []
    for style in styles:
        name = by_key.get(tidy(style).casefold())
        if name is None:
            choices = ", ".join(repr(n) for n in STYLE_PRESETS)
            raise InputError(f"unknown style {style!r}; choose from {choices} (or describe it as free text)")
        if STYLE_PRESETS[name] not in parts:
            parts.append(STYLE_PRESETS[name])
    if free_text.strip():
        parts.append(free_text.strip())
    return ", ".join(parts)
