"""Reading a user's photo into a plain 8-bit RGB image, or saying exactly why it can't be read.

Photos arrive from uploads and the command line, so every way a file can be unusable (missing,
not an image, truncated, a decompression bomb, a thumbnail) becomes an :class:`ImageError`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError, InputError
from ..limits import MAX_PHOTO_BYTES as MAX_BYTES
from ..limits import MAX_PHOTO_PIXELS as MAX_PIXELS
from ..limits import MIN_PHOTO_SIDE as MIN_SIDE

log = logging.getLogger(__name__)

IMAGE_EXTS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tif", "BMP": "bmp", "GIF": "gif"}


def load_image(
    src: str | Path | bytes | Image.Image,
    *,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
) -> Image.Image:
    """An upright 8-bit RGB copy of a photo; the caller's image is never modified."""
    name, im = _open(src, max_bytes)
    _check_pixels(name, im.size, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if getattr(im, "n_frames", 1) > 1:  # a freshly opened file sits on frame 0
                log.info("%s is animated; using its first frame", name)
            im.load()
            im = _upright(im, name)
            rgb = to_rgb8(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"{name} is too large to decode safely ({exc}); downscale it first."
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(
            f"{name} looks corrupt or truncated ({exc}); re-export or re-download it."
        ) from exc
    if min(rgb.size) < min_side:
        w, h = rgb.size
        raise ImageError(
            f"{name} is only {w}x{h} px; use a photo at least {min_side} px on each side "
            "(a headshot of 512 px or more works best)."
        )
    return rgb


def check_photo(data: bytes, label: str = "the uploaded photo") -> str:
    """Everything about a photo that can be checked without decoding it (bytes, format, pixels,
    sides), before it is stored for later; returns the file extension its format takes."""
    name, im = _open(bytes(data), MAX_BYTES, label)
    with im:
        _check_pixels(name, im.size, MAX_PIXELS)
        if min(im.size) < MIN_SIDE:
            raise ImageError(f"{name} is only {im.width}x{im.height} px; use a photo at least {MIN_SIDE} px on each side")
        fmt = im.format or ""
        try:
            im.verify()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{name} looks corrupt ({exc}); re-export or re-download it.") from None
    return IMAGE_EXTS.get(fmt, fmt.lower() or "img")


def photo_sha256(photo: str | Path | bytes | Image.Image) -> str:
    """A stable content id: the hash of the file bytes (of the pixels for an in-memory image)."""
    if isinstance(photo, Image.Image):
        digest = hashlib.sha256(f"{photo.mode}:{photo.size}:".encode())
        digest.update(photo.tobytes())
        return digest.hexdigest()
    data = photo if isinstance(photo, bytes) else _read_bytes(Path(photo), MAX_BYTES)
    return hashlib.sha256(data).hexdigest()


def to_rgb8(im: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode: 16-bit is rescaled (not clipped), alpha goes on white."""
    if im.mode == "RGB":
        return im.copy()
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return Image.fromarray(_gray_to_uint8(np.asarray(im), im.mode)).convert("RGB")
    has_alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        im.mode == "P" and "transparency" in im.info
    )
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def _gray_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """Wide grayscale -> uint8: 16-bit scales by 65535; "I"/"F" guess the range from the data."""
    arr = arr.astype(np.float64)
    peak = arr.max(initial=0)
    if mode.startswith("I;16") or peak > 255:
        scale = 65535.0
    elif mode == "F" and peak <= 1.0:
        scale = 1.0  # float images in [0, 1]
    else:
        scale = 255.0
    return np.clip(np.rint(arr / scale * 255.0), 0, 255).astype(np.uint8)


def _open(src: str | Path | bytes | Image.Image, max_bytes: int, label: str = "the uploaded file") -> tuple[str, Image.Image]:
    """(a name for messages, a lazily opened image); only the header is read here."""
    if isinstance(src, Image.Image):
        return "the image", src
    if isinstance(src, (bytes, bytearray)):
        name, data = label, bytes(src)
        _check_bytes(name, len(data), max_bytes)
    elif isinstance(src, (str, Path)):
        name, data = str(src), _read_bytes(Path(src), max_bytes)
    else:
        raise InputError(f"Expected a file path, bytes or a PIL image, got {type(src).__name__}.")
    if not data:
        raise ImageError(f"{name} is empty; choose a JPEG or PNG photo.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return name, Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name} has too many pixels to open safely; downscale it first.") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(
            f"{name} is not an image Pillow can read (JPEG, PNG, WebP, ...); "
            "export HEIC or RAW photos as JPEG first."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name} looks corrupt ({exc}); re-export or re-download it.") from exc


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    if not path.exists():
        raise ImageError(f"Photo not found: {path}")
    if not path.is_file():
        raise ImageError(f"{path} is not a file; give the path of a photo.")
    _check_bytes(str(path), path.stat().st_size, max_bytes)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"Cannot read {path}: {exc.strerror or exc}") from exc


def _check_bytes(name: str, n: int, max_bytes: int) -> None:
    if n > max_bytes:
        raise ImageError(
            f"{name} is {n / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB. "
            "Save it as a smaller JPEG."
        )


def _check_pixels(name: str, size: tuple[int, int], max_pixels: int) -> None:
    w, h = size
    if w * h > max_pixels:
        raise ImageError(
            f"{name} is {w}x{h} ({w * h / 1e6:.0f} Mpx); the limit is {max_pixels / 1e6:.0f} Mpx: "
            f"downscale it to a photo of at most {max_pixels // 1_000_000} Mpx."
        )


def _upright(im: Image.Image, name: str) -> Image.Image:
    """Apply the EXIF orientation so phone photos are not sideways; broken EXIF is ignored."""
    try:
        return ImageOps.exif_transpose(im)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable EXIF orientation in %s: %s", name, exc)
        return im
