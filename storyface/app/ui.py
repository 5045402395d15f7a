"""The page: four steps (cast, story, style, generate) wired to :class:`~.handlers.Handlers`.

``build_demo(services)`` only declares components and events; ``launch`` starts the services, checks
the network settings (local-only unless a password is set) and serves the page.
Every event has an ``api_name``, so each step can also be driven with ``gradio_client``.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..limits import LOCAL_HOSTS, MAX_AUTH_CHARS, MAX_RENDER_STEPS, MAX_TRAIN_STEPS, UPLOAD_LIMIT
from .services import Services

if TYPE_CHECKING:
    import gradio as gr

    from ..models import LoadedModel
    from .handlers import Handlers

log = logging.getLogger(__name__)

AUTH_ENV = "STORYFACE_AUTH"
TITLE = "StoryFace"
INTRO = (
    "Identity-consistent comics from face photos and a story. "
    "**1** add people and train them · **2** pick the cast and write the story · "
    "**3** choose a style · **4** generate, redraw any panel, download."
)
STORY_PLACEHOLDER = (
    "Grace Hopper was fixing a huge computer when Eileen Collins walked in with a flight plan. "
    "She asked Grace to check the navigation code. At dawn, the two watched a rocket launch together."
)
CSS = """
#tiny-banner {background: #fff4d6; border: 1px solid #e0b84c; border-radius: 8px; padding: 8px 14px;}
#tiny-banner p {margin: 0; color: #6b4e00;}
.sf-step h2 {margin: 0.2em 0 0.1em 0;}
#page img {object-fit: contain;}
footer {display: none !important;}
"""
LIGHT = {"concurrency_limit": None}  # database and text work: never waits behind a render
DEVICE = {"concurrency_limit": 1, "concurrency_id": "device"}  # renders one at a time (training: device_lock)


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
    """The login to require: the argument, else ``STORYFACE_AUTH``; refuse a non-local host without one."""
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

    h = Handlers(services)
    # Uploaded photos of real people leave Gradio's cache within a day (checked hourly).
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 86400)) as demo:
        ui = SimpleNamespace(pending=gr.State([]), awaiting=gr.State([]), seen=gr.State(None), session=gr.State(None))
        _header(services)
        _cast_section(ui, services)
        _story_section(ui)
        _style_section(ui, services)
        _generate_section(ui)
        ui.timer = gr.Timer(1.0)
        _wire_cast(demo, ui, h)
        _wire_story(ui, h)
        _wire_generate(ui, h)
    return demo


def _header(services: Services) -> None:
    import gradio as gr

    model = services.model
    gr.Markdown(f"# {TITLE}\n{INTRO}\n\nBase model: `{model.source}`")
    if model.random_weights:
        gr.Markdown(f"⚠ **Test mode** — StoryFace is {model.notice}.", elem_id="tiny-banner")


def _step(title: str) -> None:
    import gradio as gr

    with gr.Group(elem_classes="sf-step"):
        gr.Markdown(f"## {title}")


def _cast_section(ui: SimpleNamespace, services: Services) -> None:
    """Photo, name and consent side by side; the list to train; jobs; the library and the cast."""
    import gradio as gr

    from .components import PhotoInput
    from .handlers import JOB_HEADERS

    _step("1 · Cast")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=220):
            ui.photo = PhotoInput(label="Photo (one face)", type="filepath", image_mode=None,
                                  sources=["upload", "clipboard"], height=240, elem_id="photo")  # fmt: skip
        with gr.Column(scale=2, min_width=220):
            ui.person_name = gr.Textbox(label="Full name", placeholder="e.g. Grace Hopper", elem_id="person-name")
            ui.consent = gr.Checkbox(label="This person agreed to have their face learned", elem_id="consent")
            ui.add_person = gr.Button("Add person", elem_id="add-person")
        with gr.Column(scale=3, min_width=260):
            ui.pending_faces = gr.Gallery(label="To train", columns=4, height=200, fit_columns=False,
                                          allow_preview=False, elem_id="pending")  # fmt: skip
            ui.train_steps = gr.Slider(1, MAX_TRAIN_STEPS, value=services.train_steps, step=1,
                                       label="Training steps", elem_id="train-steps")  # fmt: skip
            with gr.Row():
                ui.clear_people = gr.Button("Clear list", size="sm", elem_id="clear-people")
                ui.train = gr.Button("Train", variant="primary", elem_id="train")
    ui.cast_status = gr.Markdown(min_height=36, elem_id="cast-status")
    ui.jobs = gr.Dataframe(headers=JOB_HEADERS, datatype="str", type="array", interactive=False,
                           label="Training jobs", max_height=220, elem_id="jobs")  # fmt: skip
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            ui.library = gr.Gallery(label="Library — click a face to add or remove them from the cast", columns=6,
                                    height=230, fit_columns=False, allow_preview=False, object_fit="cover",
                                    elem_id="library")  # fmt: skip
        with gr.Column(scale=2):
            ui.cast = gr.Dropdown(choices=[], value=[], multiselect=True, allow_custom_value=True, label="Cast",
                                  info="Who the story is about", elem_id="cast")  # fmt: skip
            ui.refresh = gr.Button("Refresh library", size="sm", elem_id="refresh-library")
            with gr.Accordion("Identity files (.safetensors) of the cast, or of everyone", open=False):
                ui.export = gr.Button("Prepare download", size="sm", elem_id="export-ids")
                ui.identity_files = gr.File(show_label=False, file_count="multiple", interactive=False, height=120,
                                            elem_id="identity-files")  # fmt: skip


def _story_section(ui: SimpleNamespace) -> None:
    """The story box and the editable panel list (one row a sentence)."""
    import gradio as gr

    from .handlers import PANEL_HEADERS

    _step("2 · Story")
    ui.story = gr.Textbox(label="Story", lines=5, placeholder=STORY_PLACEHOLDER, elem_id="story")
    ui.process = gr.Button("Process text", variant="primary", elem_id="process-text")
    ui.story_status = gr.Markdown(min_height=36, elem_id="story-status")
    ui.panels = gr.Dataframe(headers=PANEL_HEADERS, datatype="str", type="array", interactive=True,
                             show_row_numbers=True, static_columns=[1], wrap=True, column_widths=["70%", "30%"],
                             label="Panels — one sentence each; edit a cell to change it", elem_id="panels-table")  # fmt: skip
    with gr.Row():
        ui.panel_row = gr.Number(label="Row", precision=0, minimum=1, scale=1, min_width=90,
                                 placeholder="click a row", elem_id="panel-row")  # fmt: skip
        ui.add_row = gr.Button("Add row", size="sm", elem_id="add-row")
        ui.delete_row = gr.Button("Delete row", size="sm", elem_id="delete-row")
        ui.row_up = gr.Button("Move up", size="sm", elem_id="row-up")
        ui.row_down = gr.Button("Move down", size="sm", elem_id="row-down")


def _style_section(ui: SimpleNamespace, services: Services) -> None:
    import gradio as gr

    from ..story.styles import STYLE_PRESETS

    _step("3 · Style")
    with gr.Row():
        ui.styles = gr.Dropdown(choices=list(STYLE_PRESETS), value=["comic style"], multiselect=True,
                                label="Style presets", scale=2, elem_id="styles")  # fmt: skip
        ui.free_style = gr.Textbox(label="Your own style words", placeholder="e.g. pastel colours, rainy night",
                                   scale=2, elem_id="free-style")  # fmt: skip
    with gr.Accordion("Page settings", open=False):
        with gr.Row():
            ui.title = gr.Textbox(label="Title (optional)", elem_id="title")
            ui.seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, elem_id="seed")
            ui.render_steps = gr.Slider(1, MAX_RENDER_STEPS, value=services.render_steps, step=1,
                                        label="Render steps", elem_id="render-steps")  # fmt: skip


def _generate_section(ui: SimpleNamespace) -> None:
    """The page, its panels (pick one to redraw), downloads and the record."""
    import gradio as gr

    _step("4 · Generate")
    ui.generate = gr.Button("Generate comic", variant="primary", size="lg", elem_id="generate")
    ui.comic_status = gr.Markdown(min_height=48, elem_id="comic-status")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            ui.page = gr.Image(label="Comic page", type="filepath", interactive=False, format="png",
                               buttons=["download", "fullscreen"], elem_id="page")  # fmt: skip
        with gr.Column(scale=2):
            ui.panel_tiles = gr.Gallery(label="Panels — click one to pick it", columns=4, height=260,
                                        fit_columns=False, allow_preview=False, elem_id="panel-gallery")  # fmt: skip
            with gr.Row():
                ui.panel_number = gr.Number(label="Panel", precision=0, minimum=1, min_width=90,
                                            placeholder="click a panel", elem_id="panel-number")  # fmt: skip
                ui.regenerate = gr.Button("Redraw this panel (new seed)", elem_id="regenerate")
            ui.downloads = gr.File(label="Download the page (PNG, PDF)", file_count="multiple", interactive=False,
                                   elem_id="downloads")  # fmt: skip
    with gr.Accordion("Record (prompts, seeds, identities)", open=False):
        ui.record = gr.JSON(label="Record", elem_id="record")


def _wire_cast(demo: gr.Blocks, ui: SimpleNamespace, h: Handlers) -> None:
    # Progress and error badges go on the section's status line, never over what the user typed.
    at = {**LIGHT, "show_progress_on": ui.cast_status}
    ui.add_person.click(h.add_person, [ui.photo, ui.person_name, ui.consent, ui.pending],
                        [ui.pending, ui.pending_faces, ui.photo, ui.person_name, ui.consent],
                        api_name="add_person", **at)  # fmt: skip
    ui.clear_people.click(h.clear_people, None, [ui.pending, ui.pending_faces], api_name="clear_people", **at)
    ui.train.click(h.train, [ui.train_steps, ui.pending, ui.awaiting],
                   [ui.pending, ui.pending_faces, ui.jobs, ui.cast_status, ui.awaiting], api_name="train", **at)  # fmt: skip
    ui.refresh.click(h.library, [ui.cast], [ui.library, ui.cast], api_name="library", **LIGHT)
    demo.load(h.library, [ui.cast], [ui.library, ui.cast], api_name="load_library", api_visibility="undocumented",
              **LIGHT)  # fmt: skip
    demo.load(h.jobs, None, ui.jobs, api_name="jobs", **LIGHT)
    ui.timer.tick(h.poll, [ui.cast, ui.awaiting, ui.seen], [ui.jobs, ui.library, ui.cast, ui.awaiting, ui.seen],
                  api_name="poll", api_visibility="undocumented", show_progress="hidden", **LIGHT)  # fmt: skip
    ui.library.select(h.toggle_cast, [ui.cast], ui.cast, api_name="toggle_cast", api_visibility="undocumented",
                      **LIGHT)  # fmt: skip
    ui.cast.input(h.set_cast, [ui.cast], ui.cast, api_name="set_cast", **at)
    ui.export.click(h.export_identities, [ui.cast], ui.identity_files, api_name="export_identities", **at)


def _wire_story(ui: SimpleNamespace, h: Handlers) -> None:
    at = {**LIGHT, "show_progress_on": ui.story_status}
    ui.process.click(h.process_text, [ui.story, ui.cast], [ui.panels, ui.story_status], api_name="process_text", **at)
    ui.panels.input(h.update_panels, [ui.panels, ui.cast], ui.panels, api_name="update_panels", **at)
    ui.panels.select(h.select_row, None, ui.panel_row, api_name="select_row", api_visibility="undocumented", **LIGHT)
    edits = (
        (ui.add_row, h.add_panel, "add_panel"),
        (ui.delete_row, h.delete_panel, "delete_panel"),
        (ui.row_up, h.move_panel_up, "move_panel_up"),
        (ui.row_down, h.move_panel_down, "move_panel_down"),
    )
    for button, fn, name in edits:
        button.click(fn, [ui.panels, ui.panel_row, ui.cast], [ui.panels, ui.panel_row], api_name=name, **at)


def _wire_generate(ui: SimpleNamespace, h: Handlers) -> None:
    comic = [ui.page, ui.panel_tiles, ui.downloads, ui.record, ui.comic_status, ui.session]
    settings = [ui.panels, ui.cast, ui.styles, ui.free_style, ui.title, ui.seed, ui.render_steps]
    at = {**DEVICE, "concurrency_limit": h.s.renders_at_once, "show_progress_on": ui.comic_status}  # last page stays visible
    ui.generate.click(h.generate, settings, comic, api_name="generate", **at)
    ui.panel_tiles.select(h.select_panel, None, ui.panel_number, api_name="select_panel",
                          api_visibility="undocumented", **LIGHT)  # fmt: skip
    ui.regenerate.click(h.regenerate_panel, [ui.panel_number, ui.session], comic, api_name="regenerate_panel", **at)


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
    serves until interrupted and then stops the worker.
    """
    login = resolve_auth(host, auth, os.environ)  # refuse an open network port before loading anything
    services = Services.start(model, data_dir, train_steps=train_steps, render_steps=render_steps, cluster=cluster)
    try:
        demo = build_demo(services)
        demo.queue(default_concurrency_limit=1)
        _, url, _ = demo.launch(
            server_name=host, server_port=port, share=False, auth=login, prevent_thread_lock=True, quiet=not block,
            allowed_paths=[str(services.comics_dir), str(services.exports_dir)], ssr_mode=False, pwa=False,
            mcp_server=False, enable_monitoring=False, footer_links=["api"], theme=_theme(), css=CSS,
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
