"""What travels between a StoryFace process and its cluster: plain JSON, binary parts as base64.

Identities go as ``.safetensors`` bytes (a few KB), photos as their file bytes, panels and headshots
as PNG: values, never pickles (a pickle from the network can run code) and never paths (the cluster
shares no filesystem with the library). Errors come back as ``{"error": {"type", "message"}}`` and
are raised again on the caller's side as the same :class:`~storyface.errors.StoryFaceError` subclass,
so a photo without a face fails the same way locally and through the cluster. No Ray here: the caller
needs only HTTP.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError, StoryFaceError
from ..limits import MIN_TOKEN_CHARS

if TYPE_CHECKING:
    from PIL import Image

    from ..identity.tokens import Identity
    from ..render.generate import PanelImage, RenderConfig
    from ..render.regions import Region

API = "/v1"  # bump when a request or reply changes shape
TOKEN_ENV = "STORYFACE_CLUSTER_TOKEN"
TOKEN_HEADER = "authorization"
MAX_DETAIL_CHARS = 300  # of an internal error's message sent back (its last line; the traceback stays in the log)


class ClusterError(StoryFaceError):
    """The cluster could not do the work (unreachable, a replica that kept dying, a refused token)."""


class MissingExtraError(ClusterError):
    """Ray (the ``cluster`` extra) is needed and not installed."""


# -- bytes in JSON ---------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise InputError(f"{what} must be base64 text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InputError(f"{what} is not valid base64") from None


def png_bytes(image: Image.Image) -> bytes:
    """Lossless, so the caller gets exactly the pixels the replica drew."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def png_image(data: bytes, what: str = "an image") -> Image.Image:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{what} from the cluster is not a readable PNG: {exc}") from None
    return image


def identity_bytes(identity: Identity) -> bytes:
    """The identity as the same ``.safetensors`` file the library keeps (written by the one writer)."""
    from ..identity.tokens import save_identity

    with tempfile.TemporaryDirectory(prefix="storyface-id-") as tmp:
        return save_identity(identity, Path(tmp) / "identity.safetensors").read_bytes()


def identity_from_bytes(data: bytes) -> Identity:
    """Read identity bytes with every check an identity file gets (family, shapes, finite rows)."""
    from ..identity.tokens import load_identity
    from ..limits import MAX_IMPORT_BYTES

    if len(data) > MAX_IMPORT_BYTES:
        raise InputError(f"an identity of {len(data):,} bytes is not one (they are a few KB)")
    with tempfile.TemporaryDirectory(prefix="storyface-id-") as tmp:
        path = Path(tmp) / "identity.safetensors"
        path.write_bytes(data)
        return load_identity(path)


# -- render requests and replies -------------------------------------------------------------------


def config_dict(config: RenderConfig) -> dict[str, Any]:
    """What of a render config decides the pixels (batch size and base seed do not travel)."""
    return {"steps": config.steps, "guidance": config.guidance, "scheduler": config.scheduler, "eta": config.eta,
            "decoder": config.decoder}  # fmt: skip


def render_request(
    panels: Sequence[tuple[str, str, int, Mapping[str, Region] | None]],
    size: tuple[int, int],
    config: RenderConfig,
    identities: Sequence[Identity],
    policy: str,
    model: str,
) -> dict[str, Any]:
    """One chunk of panels that share a size: ``(prompt, negative, seed, regions by token)`` each."""
    from ..render.regions import plan_to_dict

    return {
        "panels": [
            {"prompt": p, "negative_prompt": n, "seed": s, "regions": plan_to_dict(r) if r else None}
            for p, n, s, r in panels
        ],
        "size": list(size), "config": config_dict(config), "policy": policy, "model": model,
        "identities": [b64(identity_bytes(i)) for i in identities],
    }  # fmt: skip


def panel_reply(panel: PanelImage) -> dict[str, Any]:
    record = panel.record()
    record.pop("index")
    return {**record, "png": b64(png_bytes(panel.image))}


def panel_from_reply(index: int, reply: Mapping[str, Any]) -> PanelImage:
    from ..render.generate import PanelImage

    fields = {k: v for k, v in reply.items() if k not in ("png", "index")}
    try:
        return PanelImage(index=index, image=png_image(unb64(reply["png"], "a panel"), "a panel"), **fields)
    except (KeyError, TypeError) as exc:
        raise ClusterError(f"the cluster sent a panel this StoryFace cannot read ({exc}); are both the same version?") from None


# -- errors ----------------------------------------------------------------------------------------


def error_reply(exc: BaseException) -> dict[str, Any]:
    """A user's error by its class name and message; anything else as an internal error (no traceback)."""
    if isinstance(exc, StoryFaceError):
        return {"error": {"type": type(exc).__name__, "message": str(exc)}}
    detail = str(exc).strip().splitlines()[-1][:MAX_DETAIL_CHARS] if str(exc).strip() else ""
    return {"error": {"type": "ClusterError", "message": f"internal error in the cluster: {type(exc).__name__}: {detail}"}}


def _error_classes() -> dict[str, type[StoryFaceError]]:
    from .. import api  # noqa: F401  (imports every module that defines an error, so all subclasses are known)

    found: dict[str, type[StoryFaceError]] = {}
    todo: list[type[StoryFaceError]] = [StoryFaceError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return found


def raise_reply_error(reply: Mapping[str, Any]) -> None:
    """Raise the error a reply carries as its own class (a ClusterError when this side lacks it)."""
    error = reply.get("error")
    if not error:
        return
    name = str(error.get("type", "ClusterError")) if isinstance(error, Mapping) else "ClusterError"
    message = str(error.get("message", error)) if isinstance(error, Mapping) else str(error)
    cls = _error_classes().get(name)
    try:
        exc = cls(message) if cls is not None else ClusterError(f"{name}: {message}")
    except TypeError:  # a class with another constructor: keep the message, say which error it was
        exc = ClusterError(f"{name}: {message}")
    raise exc


# -- the token -------------------------------------------------------------------------------------


def token_digest(token: str) -> str:
    """What the gateway keeps: the token's hash, so the cluster's config never holds the token itself."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_token(token: str | None) -> str:
    if not token or len(token) < MIN_TOKEN_CHARS:
        raise InputError(
            f"the cluster token ({TOKEN_ENV}) must be at least {MIN_TOKEN_CHARS} characters; make one with "
            "`python -c \"import secrets; print(secrets.token_urlsafe(32))\"`"
        )
    return token


def authorized(header: str | None, digest: str | None) -> bool:
    """``Authorization: Bearer <token>`` against the kept hash (constant time); no hash: open (local only)."""
    if digest is None:
        return True
    scheme, _, presented = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return False
    return hmac.compare_digest(token_digest(presented.strip()), digest)
