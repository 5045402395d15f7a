"""Serving the web app: ``build_demo(services)`` (the page of :mod:`.page` wired to
:class:`~.handlers.Handlers`) and ``launch``, which starts the services, checks the network settings
(local-only unless a password is set) and serves the page.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..limits import LOCAL_HOSTS, MAX_AUTH_CHARS, UPLOAD_LIMIT
from .services import Services

if TYPE_CHECKING:
    import gradio as gr

    from ..models import LoadedModel

log = logging.getLogger(__name__)

AUTH_ENV = "STORYFACE_AUTH"
CSS = """
#tiny-banner {background: #fff4d6; border: 1px solid #e0b84c; border-radius: 8px; padding: 8px 14px;}
#tiny-banner p {margin: 0; color: #6b4e00;}
.sf-step h2 {margin: 0.6em 0 0.1em 0;}
.sf-status:empty {display: none;}
.sf-hint p {margin: 0; font-size: 0.9em; opacity: 0.8;}
.sf-status > div {border-radius: 8px; padding: 8px 12px; margin: 2px 0; line-height: 1.4;}
.sf-ok {background: #eefaf1; border: 1px solid #9ad3ad; color: #14532d;}
.sf-error {background: #fdecec; border: 1px solid #e29a9a; color: #7f1d1d; font-weight: 500;}
.sf-info {background: #eef3fd; border: 1px solid #a9bfeb; color: #1e3a6e;}
#sf-example {padding: 6px;}
#pages .thumbnail-item, #panel-gallery .thumbnail-item {aspect-ratio: auto !important; height: auto !important;
  display: flex; flex-direction: column; overflow: visible;}
#pages, #pages .grid-wrap, #pages .gallery-container,
#panel-gallery, #panel-gallery .grid-wrap, #panel-gallery .gallery-container {overflow: visible !important; max-height: none !important;
  height: auto !important; flex-shrink: 0 !important;}
#sf-result {flex-wrap: nowrap !important;}  /* a column with a max height wraps its overflow sideways otherwise */
#sf-result > * {flex-shrink: 0;}
#pages .thumbnail-item img {position: static; height: auto; width: 100%; max-height: calc(100vh - 220px);
  object-fit: contain;}
#pages .thumbnail-item .caption-label {display: none;}
#panel-gallery .thumbnail-item img {position: static; aspect-ratio: 1 / 1; height: auto; width: 100%;}
#panel-gallery .caption-label {position: static !important; max-width: none !important; white-space: normal !important;
  overflow: visible !important; text-overflow: clip !important; border: none !important; font-size: 0.9em;}
@media (max-width: 700px) {
  #panel-gallery .grid-container {grid-template-columns: repeat(2, minmax(100px, 1fr)) !important;}
}
@media (min-width: 1000px) {
  #sf-result {position: sticky; top: 8px; align-self: flex-start; max-height: calc(100vh - 16px); overflow-y: auto;}
}
footer {display: none !important;}
"""
# Gradio scopes CSS to its container, so the one rule for the container itself goes in the page head:
# "overflow: hidden" would make the container a scroll box, and a sticky result column never sticks.
HEAD = "<style>@media (min-width: 1000px) {.gradio-container {overflow: clip !important;}}</style>"


# -- security settings (pure) ------------------------------------------------------------------


def parse_auth(text: str) -> tuple[str, str]:
    """``"user:password"`` -> (user, password); see :func:`check_login`."""
    if not isinstance(text, str) or len(text) > MAX_AUTH_CHARS:
        raise InputError(f"{AUTH_ENV} must look like 'user:password', at most {MAX_AUTH_CHARS} characters")
    user, sep, password = text.partition(":")
    if not sep:
        raise InputError(f"{AUTH_ENV} must look like 'user:password' (both parts non-empty)")
    return check_login(user.strip(), password)


def check_login(user: object, password: object) -> tuple[str, str]:
    """A user name and a password that protects something: neither blank nor only spaces, no control
    characters (a password of spaces is typed by accident, and guessed first)."""
    for what, value in (("user name", user), ("password", password)):
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{AUTH_ENV}: the {what} is blank; use 'user:password' with a real {what}")
        if any(unicodedata.category(ch) == "Cc" for ch in value):
            raise InputError(f"{AUTH_ENV}: the {what} has control characters")
    return str(user), str(password)


def resolve_auth(host: str, auth: str | tuple[str, str] | None, env: Mapping[str, str]) -> tuple[str, str] | None:
    if isinstance(auth, str):
        auth = parse_auth(auth)
    elif isinstance(auth, (tuple, list)):
        if len(auth) != 2:
            raise InputError("auth must be a (user, password) pair")
        auth = check_login(*auth)
    elif auth is None and env.get(AUTH_ENV):
        auth = parse_auth(env[AUTH_ENV])
    if auth is None and host not in LOCAL_HOSTS:
        raise InputError(
            f"refusing to serve on {host!r} without a password: anyone on that network could use your GPU and "
            f"see the faces in your library. Set {AUTH_ENV}=user:password (or keep the default host 127.0.0.1)"
        )
    return auth


def _say_where(host: str, url: str, login: tuple[str, str] | None) -> None:
    """At start, say who can reach the page: a warning when it is open beyond this machine."""
    if host in LOCAL_HOSTS:
        log.info("StoryFace serves %s on this machine only (host %s)%s", url, host, " with sign-in" if login else "")
    else:
        log.warning(
            "StoryFace serves %s on %s: reachable from other machines, sign-in as %r required (%s)",
            url, host, login[0] if login else "?", AUTH_ENV,
        )  # fmt: skip


# -- the page ----------------------------------------------------------------------------------


def _theme() -> Any:
    import gradio as gr

    system = ["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"]
    return gr.themes.Soft(primary_hue="indigo", font=system, font_mono=["ui-monospace", "monospace"])


def build_demo(services: Services) -> gr.Blocks:
    """Declare the page around started services (no model work happens here)."""
    import gradio as gr

    from .handlers import Handlers
    from .page import TITLE, declare, wire

    h = Handlers(services)
    # Uploaded photos of real people leave Gradio's cache within a day (checked hourly).
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 86400)) as demo:
        ui = declare(services)
        wire(demo, ui, h)
    return demo


# -- serving -----------------------------------------------------------------------------------


@dataclass
class RunningApp:
    """A served app (from ``launch(block=False)``); ``close()`` stops the server and the worker."""

    demo: gr.Blocks
    services: Services
    url: str

    def close(self) -> None:
        try:
            self.demo.close()
        finally:
            self.services.close()


def launch(
    model: str | LoadedModel = "tiny",
    host: str = "127.0.0.1",
    port: int = 7860,
    data_dir: str | os.PathLike | None = None,
    auth: str | tuple[str, str] | None = None,
    *,
    block: bool = True,
    train_steps: int | None = None,
    render_steps: int | None = None,
    cluster: str | None = None,
) -> RunningApp:
    """Load the model once, start the training worker and serve the page (local-only by default).

    ``block=False`` returns at once with a :class:`RunningApp` (tests, notebooks); otherwise this
    serves until interrupted and then stops the worker. With ``cluster`` (a URL of ``storyface
    serve``) training and drawing happen there and no model is loaded here.
    """
    login = resolve_auth(host, auth, os.environ)  # refuse an open network port before loading anything
    services = Services.start(model, data_dir, train_steps=train_steps, render_steps=render_steps, cluster=cluster)
    try:
        demo = build_demo(services)
        demo.queue(default_concurrency_limit=1)
        _, url, _ = demo.launch(
            server_name=host, server_port=port, share=False, auth=login, prevent_thread_lock=True, quiet=not block,
            allowed_paths=[str(services.comics_dir), str(services.exports_dir)], ssr_mode=False, pwa=False,
            mcp_server=False, enable_monitoring=False, footer_links=["api"], theme=_theme(), css=CSS, head=HEAD,
            auth_message="StoryFace: sign in with the user and password from STORYFACE_AUTH.",
            max_file_size=UPLOAD_LIMIT,
        )  # fmt: skip
    except BaseException:
        services.close()
        raise
    running = RunningApp(demo, services, url)
    _say_where(host, url, login)
    if block:
        log.info("StoryFace is serving on %s", url)
        try:
            demo.block_thread()
        finally:
            running.close()
    return running
