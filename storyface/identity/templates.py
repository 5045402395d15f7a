"""The prompts an identity is trained under (``{}`` is the person's trigger token).

StableIdentity trains under 81 templates (textual inversion's photo templates, repeated as
"an illustration of" and "a depiction of", plus renderings and renditions), so the learned words keep
working outside photographs. StoryFace draws comics, so its own list of the same breadth adds drawn,
painted and comic framings. Every template puts an article or determiner before the name, as the
official ones do ("a photo of a <v1> <v2>").
"""

from __future__ import annotations

_DETERMINERS = (
    "a", "the", "a nice", "the small", "a cool", "one", "my", "the large", "a clean", "the weird", "a dirty", "the nice",
)

PHOTO = (
    "a photo of a {}", "a cropped photo of the {}", "the photo of a {}", "a photo of a clean {}",
    "a dark photo of the {}", "a photo of my {}", "a photo of the cool {}", "a close-up photo of a {}",
    "a bright photo of the {}", "a cropped photo of a {}", "a photo of the {}", "a good photo of the {}",
    "a photo of one {}", "a close-up photo of the {}", "a photo of a nice {}", "a good photo of a {}",
    "a photo of the small {}", "a photo of the large {}", "a photo of a cool {}", "a photo of a small {}",
    "a portrait photo of a {}", "a candid photo of the {}", "a black and white photo of a {}",
    "a headshot of a {}", "a snapshot of the {}", "a studio photo of a {}", "a photo of the weird {}",
    "a film photo of a {}",
)  # fmt: skip
ILLUSTRATION = tuple(f"an illustration of {d} {{}}" for d in _DETERMINERS) + (
    "a close-up illustration of a {}", "a colourful illustration of the {}", "a book illustration of a {}",
)  # fmt: skip
DEPICTION = tuple(f"a depiction of {d} {{}}" for d in _DETERMINERS) + ("a close-up depiction of a {}",)  # fmt: skip
RENDERING = (
    "a rendering of a {}", "a rendition of the {}", "a rendition of a {}", "a 3D rendering of the {}",
    "a digital rendering of a {}", "a render of a {}", "a stylized rendering of the {}",
)  # fmt: skip
DRAWN = (
    "a drawing of a {}", "a sketch of the {}", "a pencil drawing of a {}", "an ink drawing of the {}",
    "a painting of a {}", "an oil painting of the {}", "a watercolor painting of a {}",
    "a comic book panel of a {}", "a comic illustration of the {}", "a cartoon of a {}",
    "a manga drawing of the {}", "a portrait painting of a {}", "a caricature of the {}",
    "a charcoal drawing of a {}", "a graphic novel panel of the {}", "a storybook illustration of a {}",
)  # fmt: skip

TEMPLATES: tuple[str, ...] = PHOTO + ILLUSTRATION + DEPICTION + RENDERING + DRAWN
