"""The Python API, and the one core behind every door: photo -> identity -> library; story -> panels -> page.

The CLI, the web app and the job worker call these functions and nothing below them: they parse,
call, print. Each function takes the loaded model (or the renderer or library that holds it) so
nothing reloads per call, and each enforces the rules itself (consent, content policy, limits), so
no door can skip one::

    from storyface.api import Renderer, identities_for, learn_person, load_model, make_comic, parse_story

    model = load_model("tiny")                        # once per process: hub id, folder, .safetensors or tiny
    grace = learn_person(model, "grace.jpg", "Grace Hopper", consent="Grace Hopper")  # who confirmed she agreed
    script = parse_story("Grace Hopper found a moth. She laughed.", ["Grace Hopper"])
    comic = make_comic(Renderer(model), script.panels, [grace.identity], "comic/", styles=["comic style"])
"""

from ..comic_folder import ComicFolder
from ..eval.likeness import PanelScore
from ..faces import get_face_encoder
from ..identity.subject import LearnSettings
from ..library import IdentityLibrary, JobQueue
from ..models import LoadedModel, load_model
from ..render.generate import RenderConfig, Renderer
from ..safety import ContentPolicy
from ..safety.consent import Consent
from .book import BookSettings, reletter
from .checks import check_comic_text
from .settings import render_settings
from .comics import Comic, comic_likeness, make_comic, plan_prompts, redraw_panel, write_comic
from .people import (
    CastMember,
    LearnedPerson,
    PreparedPerson,
    describe_panel,
    identities_for,
    import_identity,
    keep_person,
    learn_identities,
    learn_person,
    learn_prepared,
    parse_story,
    prepare_person,
    queue_person,
    read_script,
    require_room,
    script_from_sentences,
    train_person,
)

__all__ = [
    "BookSettings",
    "CastMember",
    "Comic",
    "ComicFolder",
    "Consent",
    "ContentPolicy",
    "IdentityLibrary",
    "JobQueue",
    "LearnSettings",
    "LearnedPerson",
    "LoadedModel",
    "PanelScore",
    "PreparedPerson",
    "RenderConfig",
    "Renderer",
    "check_comic_text",
    "comic_likeness",
    "describe_panel",
    "get_face_encoder",
    "identities_for",
    "import_identity",
    "keep_person",
    "learn_identities",
    "learn_person",
    "learn_prepared",
    "load_model",
    "make_comic",
    "parse_story",
    "plan_prompts",
    "prepare_person",
    "queue_person",
    "read_script",
    "redraw_panel",
    "reletter",
    "render_settings",
    "require_room",
    "script_from_sentences",
    "train_person",
    "write_comic",
]
