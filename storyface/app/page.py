"""The page: numbered steps on the left, the comic on the right (one column on a phone), and its wiring.

Only declarations and events live here; :mod:`.handlers` does the work. Every step ends in a status
line (``#<step>-status``) where the step's last error stays until its next success. Every event has an
``api_name``, so each step can also be driven with ``gradio_client``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from ..limits import MAX_TRAIN_STEPS
from .services import Services

if TYPE_CHECKING:
    import gradio as gr

    from .handlers import Handlers


TITLE = "StoryFace"
INTRO = (
    "Comics that keep people's faces, from their photos and your story: "
    "**1** add people · **2** pick the cast · **3** write the story · **4** choose a style and make the comic."
)
LIGHT = {"concurrency_limit": None}  # database and text work: never waits behind a render
DEVICE = {"concurrency_limit": 1, "concurrency_id": "device"}  # renders one at a time (training: device_lock)
LAYOUTS = [("Grid", "grid"), ("Dynamic: panels of different shapes", "dynamic"), ("Webtoon: one tall strip", "webtoon")]
PAGE_SIZES = [("The layout's own", "auto"), ("US comic", "us-comic"), ("A4", "a4"), ("Square", "square"),
              ("Phone strip", "phone")]  # fmt: skip
QUALITIES = [("Standard: best pictures", "standard"), ("Fast: a few steps, needs a fast LoRA", "fast")]
FAST_KINDS = [("Tell from the LoRA's name", "auto"), ("SDXL-Lightning", "lightning"), ("Hyper-SD", "hyper"),
              ("LCM", "lcm"), ("TCD", "tcd")]  # fmt: skip
EXAMPLE_THUMB = 120  # px of an example photo
# Scroll to the comic when it is ready, unless it is already on screen (the desktop's sticky column).
SCROLL_TO_RESULT = """() => {
  const el = document.getElementById('sf-result');
  if (!el) return;
  const box = el.getBoundingClientRect();
  if (box.top > window.innerHeight * 0.6 || box.bottom < 80) el.scrollIntoView({behavior: 'smooth', block: 'start'});
}"""


def model_label(source: str) -> str:
    """The model's name without the server's folders (a hub id stays whole)."""
    path = Path(source)
    return path.name if path.is_absolute() or source.startswith(("~", ".")) else source


def declare(services: Services) -> SimpleNamespace:
    """Every component, in page order; returns them by name."""
    import gradio as gr

    ui = SimpleNamespace(pending=gr.State([]), awaiting=gr.State([]), seen=gr.State(None), session=gr.State(None))
    _header(services)
    with gr.Row(equal_height=False, elem_id="sf-main"):
        with gr.Column(scale=5, min_width=340, elem_id="sf-inputs"):
            _example(ui)
            _people(ui, services)
            _cast(ui)
            _story(ui)
            _style(ui)
        with gr.Column(scale=6, min_width=340, elem_id="sf-result"):
            _result(ui)
    ui.timer = gr.Timer(1.0)
    return ui


def _header(services: Services) -> None:
    import gradio as gr

    model = services.model
    gr.Markdown(f"# {TITLE}\n{INTRO} Drawing model: {model_label(model.source)}.", elem_id="sf-intro")
    if model.random_weights:
        gr.Markdown(f"⚠ **Test mode** — StoryFace is {model.notice}.", elem_id="tiny-banner")


def _step(number: int, title: str) -> None:
    import gradio as gr

    gr.Markdown(f"## {number} · {title}", elem_classes="sf-step")


def _status(elem_id: str, value: str = "") -> Any:
    import gradio as gr

    return gr.HTML(value, elem_id=elem_id, elem_classes="sf-status", padding=False)


def _number_box(label: str, placeholder: str, elem_id: str) -> Any:
    """An optional whole number: a text box, because gr.Number shows (and sends) 0 when it is empty."""
    import gradio as gr

    return gr.Textbox("", label=label, placeholder=placeholder, max_lines=1, min_width=100, scale=0, elem_id=elem_id)


def _example(ui: SimpleNamespace) -> None:
    import gradio as gr
    from PIL import Image, ImageOps

    from ..demo import sample_photos

    tiles = []
    for path, name in sample_photos():
        with Image.open(path) as im:
            tiles.append((ImageOps.fit(im.convert("RGB"), (EXAMPLE_THUMB, EXAMPLE_THUMB)), name))
    with gr.Group(elem_id="sf-example"):
        with gr.Row(equal_height=True):
            gr.Gallery(tiles, show_label=False, columns=2, height=140, allow_preview=False, interactive=False,
                       scale=2, min_width=200, elem_id="example-photos")  # fmt: skip
            with gr.Column(scale=3, min_width=200):
                gr.Markdown("**Try it:** two public-domain photos and a short story with dialogue fill every step.")
                ui.example = gr.Button("Use this example", variant="secondary", elem_id="use-example")


def _people(ui: SimpleNamespace, services: Services) -> None:
    import gradio as gr

    from .components import PhotoInput
    from .views import DETAIL_HEADERS, JOB_HEADERS

    _step(1, "Add people")
    with gr.Row(equal_height=False):
        ui.photo = PhotoInput(label="Photo (one face)", type="filepath", image_mode=None,
                              sources=["upload", "clipboard"], height=220, min_width=180, elem_id="photo")  # fmt: skip
        with gr.Column(min_width=180):
            ui.person_name = gr.Textbox(label="Full name", placeholder="e.g. Grace Hopper", elem_id="person-name")
            ui.consent = gr.Checkbox(label="This person agreed to have their face learned", elem_id="consent")
            ui.add_person = gr.Button("Add person", elem_id="add-person")
    ui.people_status = _status("people-status")
    ui.pending_faces = gr.Gallery(label="To train", columns=4, height=150, fit_columns=False, allow_preview=False,
                                  elem_id="pending")  # fmt: skip
    with gr.Row(equal_height=True):
        ui.train_hint = gr.Markdown(elem_id="train-hint")
        with gr.Row(equal_height=True):
            ui.clear_people = gr.Button("Clear list", size="sm", min_width=80, elem_id="clear-people")
            ui.train = gr.Button("Train", variant="primary", interactive=False, min_width=80, elem_id="train")
    ui.jobs = gr.Dataframe(headers=JOB_HEADERS, datatype="str", type="array", interactive=False, label="Training",
                           max_height=200, elem_id="jobs")  # fmt: skip
    with gr.Accordion("Advanced: training steps and loss", open=False):
        ui.train_steps = gr.Slider(1, MAX_TRAIN_STEPS, value=services.train_steps, step=1, label="Training steps",
                                   elem_id="train-steps")  # fmt: skip
        ui.job_details = gr.Dataframe(headers=DETAIL_HEADERS, datatype="str", type="array", interactive=False,
                                      show_label=False, max_height=200, elem_id="job-details")  # fmt: skip


def _cast(ui: SimpleNamespace) -> None:
    import gradio as gr

    from .views import CAST_HEADERS

    _step(2, "Pick the cast")
    ui.library = gr.Gallery(label="Library: click a face to put them in the cast (✓) or take them out", columns=5,
                            height=190, fit_columns=False, allow_preview=False, object_fit="cover",
                            elem_id="library")  # fmt: skip
    ui.cast = gr.Dropdown(choices=[], value=[], multiselect=True, allow_custom_value=True, label="Cast",
                          info="People from the library that the story names are picked for you.",
                          elem_id="cast")  # fmt: skip
    ui.cast_status = _status("cast-status")
    ui.looks = gr.Dataframe(headers=CAST_HEADERS, datatype="str", type="array", interactive=True, static_columns=[0],
                            wrap=True, label="Looks: hair, clothes, glasses... added to every panel the person is in",
                            column_widths=["24%", "38%", "38%"], elem_id="looks")  # fmt: skip
    with gr.Accordion("Advanced: identity files", open=False):
        ui.export = gr.Button("Prepare the cast's identity files", size="sm", elem_id="export-ids")
        ui.identity_files = gr.File(show_label=False, file_count="multiple", interactive=False, height=120,
                                    elem_id="identity-files")  # fmt: skip


def _story(ui: SimpleNamespace) -> None:
    import gradio as gr

    from .handlers_comic import PICK_ROW
    from .script_table import LINE_HEADERS, PANEL_HEADERS, SCENE_HEADERS

    _step(3, "Write the story")
    ui.story = gr.Textbox(label="Story", lines=5, placeholder="Write a few sentences about the people in your "
                          "library; put what they say in quotes.", elem_id="story")  # fmt: skip
    ui.process = gr.Button("Split into panels", variant="primary", elem_id="process-text")
    ui.story_status = _status("story-status")
    ui.panels = gr.Dataframe(headers=PANEL_HEADERS, datatype="str", type="array", interactive=True,
                             show_row_numbers=True, static_columns=[1], wrap=True, column_widths=["56%", "22%", "22%"],
                             label="Panels: one row each; edit a caption and the page follows",
                             elem_id="panels-table")  # fmt: skip
    with gr.Row(equal_height=True, elem_id="row-tools"):
        ui.panel_row = _number_box("Row", "click a row", "panel-row")
        ui.add_row = gr.Button("Add row", size="sm", min_width=70, elem_id="add-row")
        ui.delete_row = gr.Button("Delete row", size="sm", min_width=70, interactive=False, elem_id="delete-row")
        ui.row_up = gr.Button("Move up", size="sm", min_width=70, interactive=False, elem_id="row-up")
        ui.row_down = gr.Button("Move down", size="sm", min_width=70, interactive=False, elem_id="row-down")
    ui.row_hint = gr.Markdown(PICK_ROW, elem_id="row-hint", elem_classes="sf-hint")
    ui.lines = gr.Dataframe(headers=LINE_HEADERS, datatype=["number", "str", "str", "str"], type="array",
                            interactive=True, wrap=True, column_widths=["12%", "24%", "14%", "50%"],
                            label="Dialogue: one balloon per row (kind: speech, thought or whisper)",
                            elem_id="dialogue-table")  # fmt: skip
    ui.add_line = gr.Button("Add a line of dialogue", size="sm", elem_id="add-line")
    with gr.Accordion("Advanced: the scene each panel draws (names in full)", open=False):
        ui.scenes = gr.Dataframe(headers=SCENE_HEADERS, datatype="str", type="array", interactive=True,
                                 show_row_numbers=True, wrap=True, show_label=False,
                                 elem_id="scenes-table")  # fmt: skip


def _style(ui: SimpleNamespace) -> None:
    import gradio as gr

    from ..story.styles import STYLE_PRESETS

    _step(4, "Style and pages")
    with gr.Row():
        ui.styles = gr.Dropdown(choices=list(STYLE_PRESETS), value=["comic style"], multiselect=True,
                                label="Style", min_width=160, elem_id="styles")  # fmt: skip
        ui.free_style = gr.Textbox("", label="Your own style words", placeholder="e.g. pastel colours, rainy night",
                                   min_width=160, elem_id="free-style")  # fmt: skip
    with gr.Row():
        ui.layout = gr.Radio(LAYOUTS, value="grid", label="Layout", min_width=200, elem_id="layout")
        ui.page_size = gr.Dropdown(PAGE_SIZES, value="auto", label="Page size", min_width=140, elem_id="page-size")
    with gr.Row():
        ui.lettering = gr.Checkbox(value=True, label="Speech balloons and captions", elem_id="lettering")
        ui.rtl = gr.Checkbox(value=False, label="Read right to left (manga)", elem_id="rtl")
    ui.title = gr.Textbox("", label="Title (optional)", elem_id="title")
    ui.quality = gr.Radio(QUALITIES, value="standard", label="Quality", elem_id="quality")
    with gr.Accordion("Advanced: seed, steps, LoRAs", open=False):
        with gr.Row():
            ui.seed = _number_box("Seed", "empty: 0", "seed")
            ui.render_steps = _number_box("Drawing steps", "empty: the quality's own", "render-steps")
        ui.loras = gr.Textbox("", label="LoRAs: a file or hub id per line, optionally :weight", lines=2,
                              placeholder="e.g. ByteDance/SDXL-Lightning/sdxl_lightning_4step_lora.safetensors\n"
                              "comic-style.safetensors:0.8", elem_id="loras")  # fmt: skip
        ui.fast_kind = gr.Dropdown(FAST_KINDS, value="auto", label="Fast LoRA kind", elem_id="fast-kind")
    ui.generate = gr.Button("Make the comic", variant="primary", size="lg", elem_id="generate")
    ui.comic_status = _status("comic-status")


def _result(ui: SimpleNamespace) -> None:
    import gradio as gr

    from .handlers_comic import NO_COMIC

    gr.Markdown("## Your comic", elem_classes="sf-step")
    ui.result_status = _status("result-status", _info(NO_COMIC))
    gr.Markdown("**Pages** · click a page to look closer, or show it full screen", elem_classes="sf-hint")
    ui.pages = gr.Gallery(label="Pages", show_label=False, columns=1, height="auto", object_fit="contain",
                          buttons=["download", "fullscreen"], elem_id="pages")  # fmt: skip
    gr.Markdown("**Panels** · click one to pick it, then redraw it", elem_classes="sf-hint")
    ui.panel_tiles = gr.Gallery(label="Panels", show_label=False, columns=3, height="auto", fit_columns=False,
                                allow_preview=False, object_fit="contain", elem_id="panel-gallery")  # fmt: skip
    with gr.Row(equal_height=True):
        ui.panel_number = _number_box("Panel", "click a panel", "panel-number")
        ui.regenerate = gr.Button("Redraw panel", interactive=False, elem_id="regenerate")
    ui.downloads = gr.File(label="Download: PNG pages, PDF, CBZ comic book", file_count="multiple", interactive=False,
                           elem_id="downloads")  # fmt: skip
    with gr.Accordion("Advanced: the record (prompts, seeds, identities)", open=False):
        ui.record = gr.JSON(label="Record", elem_id="record")


def _info(text: str) -> str:
    from .views import status

    return status(text, "info")


# -- events ------------------------------------------------------------------------------------


def wire(demo: gr.Blocks, ui: SimpleNamespace, h: Handlers) -> None:
    _wire_people(demo, ui, h)
    _wire_story(ui, h)
    _wire_comic(ui, h)


def _on(h: Handlers, event: Any, fn: Any, inputs: Any, outputs: Any, step: str, status: Any, **kwargs: Any) -> Any:
    """An event whose errors stay on ``status`` (the step's line) until the step's next success."""
    kwargs = {**LIGHT, **kwargs} if "concurrency_limit" not in kwargs else kwargs
    listener = event(fn, inputs, outputs, show_progress_on=status, **kwargs)
    listener.failure(h.error_for(step), None, status, show_progress="hidden", api_visibility="private")
    return listener


def _wire_people(demo: gr.Blocks, ui: SimpleNamespace, h: Handlers) -> None:
    train_controls = [ui.train, ui.train_hint]
    _on(h, ui.add_person.click, h.add_person, [ui.photo, ui.person_name, ui.consent, ui.pending, ui.train_steps],
        [ui.pending, ui.pending_faces, ui.photo, ui.person_name, ui.consent, ui.people_status, *train_controls],
        "people", ui.people_status, api_name="add_person")  # fmt: skip
    ui.clear_people.click(h.clear_people, [ui.train_steps], [ui.pending, ui.pending_faces, ui.people_status,
                          *train_controls], api_name="clear_people", **LIGHT)  # fmt: skip
    _on(h, ui.train.click, h.train, [ui.train_steps, ui.pending, ui.awaiting],
        [ui.pending, ui.pending_faces, ui.jobs, ui.people_status, ui.awaiting, *train_controls], "people",
        ui.people_status, api_name="train")  # fmt: skip
    ui.train_steps.change(h.train_hint, [ui.pending, ui.train_steps], train_controls, api_visibility="private", **LIGHT)
    _on(h, ui.example.click, h.load_example, [ui.pending, ui.train_steps],
        [ui.pending, ui.pending_faces, ui.story, ui.panels, ui.scenes, ui.lines, ui.cast, ui.people_status,
         ui.story_status, *train_controls, ui.styles, ui.layout, ui.title], "people", ui.people_status,
        api_name="load_example")  # fmt: skip
    demo.load(h.library, [ui.cast], ui.cast, api_name="load_library", api_visibility="undocumented", **LIGHT)
    cast_shown = [ui.library, ui.looks, ui.cast, ui.cast_status]
    demo.load(h.show_cast, [ui.cast, ui.looks], cast_shown, api_visibility="private", **LIGHT)
    demo.load(h.jobs, None, [ui.jobs, ui.job_details], api_name="jobs", **LIGHT)
    demo.load(h.train_hint, [ui.pending, ui.train_steps], train_controls, api_visibility="private", **LIGHT)
    ui.timer.tick(h.poll, [ui.cast, ui.awaiting, ui.seen],
                  [ui.jobs, ui.job_details, ui.library, ui.cast, ui.awaiting, ui.seen, ui.people_status],
                  api_name="poll", api_visibility="undocumented", show_progress="hidden", **LIGHT)  # fmt: skip
    ui.library.select(h.toggle_cast, [ui.cast], [ui.cast, ui.cast_status], api_name="toggle_cast",
                      api_visibility="undocumented", **LIGHT)  # fmt: skip
    ui.cast.input(h.set_cast, [ui.cast], [ui.cast, ui.cast_status], api_name="set_cast", **LIGHT)
    ui.cast.change(h.show_cast, [ui.cast, ui.looks], cast_shown, api_name="show_cast", api_visibility="undocumented",
                   show_progress="hidden", **LIGHT)  # fmt: skip
    _on(h, ui.looks.input, h.edit_appearance, [ui.looks], [ui.looks, ui.cast_status], "cast", ui.cast_status,
        api_name="set_looks")  # fmt: skip
    _on(h, ui.export.click, h.export_identities, [ui.cast], [ui.identity_files, ui.cast_status], "cast",
        ui.cast_status, api_name="export_identities")  # fmt: skip


def _wire_story(ui: SimpleNamespace, h: Handlers) -> None:
    tables = [ui.panels, ui.scenes, ui.lines]
    result = [ui.pages, ui.panel_tiles, ui.downloads, ui.record, ui.result_status, ui.session]
    _on(h, ui.process.click, h.process_text, [ui.story, ui.cast], [*tables, ui.cast, ui.story_status], "story",
        ui.story_status, api_name="process_text")  # fmt: skip
    for table in tables:
        _on(h, table.input, h.update_panels, [*tables, ui.cast, ui.session], [*tables, ui.story_status, *result],
            "story", ui.story_status, api_name="update_panels" if table is ui.panels else None,
            api_visibility="public" if table is ui.panels else "private")  # fmt: skip
    ui.panels.select(h.select_row, None, ui.panel_row, api_name="select_row", api_visibility="undocumented", **LIGHT)
    ui.panel_row.change(h.row_tools, [ui.panel_row, ui.panels], [ui.delete_row, ui.row_up, ui.row_down, ui.row_hint],
                        api_visibility="private", show_progress="hidden", **LIGHT)  # fmt: skip
    edits = (
        (ui.add_row, h.add_panel, "add_panel"),
        (ui.delete_row, h.delete_panel, "delete_panel"),
        (ui.row_up, h.move_panel_up, "move_panel_up"),
        (ui.row_down, h.move_panel_down, "move_panel_down"),
    )
    for button, fn, name in edits:
        _on(h, button.click, fn, [*tables, ui.panel_row, ui.cast], [*tables, ui.panel_row, ui.story_status], "story",
            ui.story_status, api_name=name)  # fmt: skip
    _on(h, ui.add_line.click, h.add_line, [*tables, ui.panel_row, ui.cast], [ui.lines, ui.story_status], "story",
        ui.story_status, api_name="add_line")  # fmt: skip


def _wire_comic(ui: SimpleNamespace, h: Handlers) -> None:
    device = {**DEVICE, "concurrency_limit": h.s.renders_at_once}  # 1 here; a cluster batches several at once
    settings = [ui.panels, ui.cast, ui.styles, ui.free_style, ui.title, ui.seed, ui.render_steps, ui.scenes,
                ui.lines, ui.layout, ui.page_size, ui.rtl, ui.lettering, ui.quality, ui.loras, ui.fast_kind,
                ui.looks]  # fmt: skip
    shown = [ui.pages, ui.panel_tiles, ui.downloads, ui.record]
    made = _on(h, ui.generate.click, h.generate, settings,
               [*shown, ui.comic_status, ui.session, ui.regenerate, ui.panel_number, ui.result_status], "comic",
               ui.comic_status, api_name="generate", **device)  # fmt: skip
    made.success(None, None, None, js=SCROLL_TO_RESULT)
    ui.panel_tiles.select(h.select_panel, None, ui.panel_number, api_name="select_panel",
                          api_visibility="undocumented", **LIGHT)  # fmt: skip
    ui.panel_number.change(h.redraw_tools, [ui.panel_number, ui.session], ui.regenerate, api_visibility="private",
                           show_progress="hidden", **LIGHT)  # fmt: skip
    _on(h, ui.regenerate.click, h.regenerate_panel, [ui.panel_number, ui.session],
        [*shown, ui.result_status, ui.session], "result", ui.result_status, api_name="regenerate_panel",
        **device)  # fmt: skip
