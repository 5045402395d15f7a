"""Bad input through every door (CLI, Python API, web app): a clear error, and nothing changed.

Each row of the table feeds one bad input and names the message a person must see. Around every row
the data folder is snapshotted (tree, file hashes, every database row) and must come out identical:
a refused input never loses, adds or half-writes anything.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from storyface.api import learn_identities, make_comic, plan_prompts
from storyface.cli import app as cli_app
from storyface.errors import StoryFaceError
from storyface.library import JobQueue
from storyface.library import DB_NAME, IdentityLibrary
from storyface.identity.tokens import Identity, load_identity, save_identity
from storyface.models import load_model
from storyface.render.generate import RenderConfig, Renderer
from storyface.safety import ContentPolicy
from storyface.story import parse_story
from storyface.limits import MAX_STORY_CHARS
from storyface.story.schema import Panel

CAST = ["Grace Hopper", "Eileen Collins"]


# -- snapshots ---------------------------------------------------------------------------------


def snapshot(root: Path) -> dict:
    """Folders, file hashes (the database files aside) and every row of every table."""
    entries = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_dir():
            entries[rel] = "dir"
        elif not path.name.startswith(DB_NAME):  # -wal/-shm come and go with connections
            entries[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    rows = {}
    con = sqlite3.connect(root / DB_NAME)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            rows[table] = con.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
    finally:
        con.close()
    return {"files": entries, "rows": rows}


def random_identity(name: str, seed: int, widths: tuple[int, int] = (32, 64)) -> Identity:
    g = torch.Generator().manual_seed(seed)
    rows = {"clip_l": torch.randn(2, widths[0], generator=g), "clip_g": torch.randn(2, widths[1], generator=g)}
    return Identity(name, "sdxl", rows, {"tiny": "true"})


def fill_library(root: Path, photos: list[Path], queued: bool = True) -> IdentityLibrary:
    """Two people (tiny-model identities with their real headshots) and a queue with one job."""
    library = IdentityLibrary(root)
    for i, (name, photo) in enumerate(zip(CAST, photos)):
        with Image.open(photo) as im:
            library.add(random_identity(name, i), im.convert("RGB"), name)
    queue = JobQueue(library)
    if queued:  # not for the web app: its worker would train it
        queue.submit(photos[0], "Queued Person", "tiny", {"steps": 1}, "Queued Person")
    return library


# -- files a person might hand us --------------------------------------------------------------


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size (a decompression bomb): only the header is real."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def files(tmp_path_factory, grace_hopper_path, two_faces_path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad-input")
    made = {"two_faces": two_faces_path}

    def write(name: str, data: bytes | str) -> None:
        path = d / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        made[name.split(".")[0]] = path

    write("notes.png", "this is not a photo")
    write("empty.jpg", b"")
    write("big_pixels.png", png_claiming(8_000, 6_000))  # 48 Mpx: over StoryFace's limit
    write("bomb.png", png_claiming(30_000, 30_000))  # 900 Mpx: over Pillow's own bomb limit
    write("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 64)
    huge = d / "huge.jpg"
    with open(huge, "wb") as f:  # sparse: 30 MB on paper, nothing on disk
        f.truncate(30_000_000)
    made["huge"] = huge
    Image.new("RGB", (32, 32), "white").save(d / "thumb.png")
    made["thumb"] = d / "thumb.png"
    with Image.open(grace_hopper_path) as im:  # her face ~36 px wide on a big white page
        small = im.convert("RGB").resize((int(im.width * 0.15), int(im.height * 0.15)))
    page = Image.new("RGB", (400, 400), "white")
    page.paste(small, (100, 100))
    page.save(d / "tiny_face.png")
    made["tiny_face"] = d / "tiny_face.png"
    write("naked.txt", "Grace Hopper was naked in the lab.")
    write("leet.txt", "Grace Hopper was n-4-k-3-d in the lab.")
    write("spaced.txt", "Grace Hopper was n a k e d in the lab.")
    write("cyrillic.txt", "Grace Hopper was nаkеd in the lab.")  # Cyrillic а and е
    write("ok.txt", "Grace Hopper was fixing a huge computer in the lab.")
    write("long.txt", "Grace Hopper fixed the relay. " * (MAX_STORY_CHARS // 20))
    write("latin1.txt", "Grace Hopper a visité Genève.".encode("latin-1"))
    write("bad.json", '{"panels": [')
    write("many.json", json.dumps({"panels": [{"sentence": "Grace Hopper waves."}] * 30}))
    write("shape.json", json.dumps({"panels": "Grace Hopper waves"}))
    write("model.pt", b"\x80\x04pickle")
    write("broken_id.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    big = d / "big.safetensors"
    with open(big, "wb") as f:
        f.truncate(17 * 1024 * 1024)
    made["big"] = big
    save_identity(random_identity("Ada Lovelace", 7), d / "ada.safetensors")
    made["ada"] = d / "ada.safetensors"
    for key, (tensors, meta) in crafted_identity_files().items():  # issue 17, item 2
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(d / f"{key}.safetensors"), metadata=meta)
        made[key] = d / f"{key}.safetensors"
    save_identity(Identity("Beach Outfit", "sdxl", banned_word_rows("nude</w>"), {"tiny": "true"}), d / "beach.safetensors")
    made["beach"] = d / "beach.safetensors"
    write("beach_story.txt", "Beach Outfit waves on the beach.")
    (d / "folder.txt").mkdir()
    made["folder"] = d / "folder.txt"
    return made


def crafted_identity_files() -> dict[str, tuple[dict[str, torch.Tensor], dict[str, str]]]:
    """Identity files that are not identities, each with metadata that claims all is well."""
    ok = random_identity("Crafted", 11).embeddings
    lies = {"tiny": "true", "family": "sdxl", "dtype": "F32", "name": "Crafted Person"}
    return {
        "f8_id": ({k: v.to(torch.float8_e4m3fn) for k, v in ok.items()}, lies),
        "int_id": ({k: v.to(torch.int32) for k, v in ok.items()}, lies),
        "zeros_id": ({k: torch.zeros_like(v) for k, v in ok.items()}, lies),
        "f64_id": ({k: v.double() * 1e300 for k, v in ok.items()}, lies),
        "cube_id": ({k: v[None] for k, v in ok.items()}, lies),
        "many_id": ({k: v.repeat(9, 1)[:17] for k, v in ok.items()}, lies),
        "width_id": ({"clip_l": torch.randn(2, 33), "clip_g": ok["clip_g"]}, lies),
        "meta_id": (ok, {**lies, "base_model": "x" * 3000}),
    }


def banned_word_rows(token: str) -> dict[str, torch.Tensor]:
    """Rows that are the tiny model's own embedding of a banned word (and an innocent second row)."""
    from storyface.random_models import build_tiny_pipeline

    pipe = build_tiny_pipeline("sdxl")
    rows = {}
    for key, tokenizer, encoder in (("clip_l", pipe.tokenizer, pipe.text_encoder), ("clip_g", pipe.tokenizer_2, pipe.text_encoder_2)):
        table = encoder.get_input_embeddings().weight.detach()  # [V, D]
        rows[key] = torch.stack([table[tokenizer.convert_tokens_to_ids(token)], table[tokenizer.convert_tokens_to_ids("pencil</w>")]])
    return rows


def with_free_bytes(free: int, run: Callable) -> Callable:
    """Run a row as if the data folder's disk had only ``free`` bytes left."""

    def wrapped(ctx: Context) -> str:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("storyface.files.free_bytes", lambda folder: free)
            return run(ctx)

    return wrapped


def train_without_room(ctx: Context) -> None:
    from storyface.api import prepare_person, train_person

    person = prepare_person(ctx.files["grace"], "Ann Smith", "Test Runner")
    train_person(ctx.renderer.model, ctx.library, person)


# -- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    door: str  # "cli" | "api" | "ui"
    what: str
    expect: str  # part of the message a person sees
    run: Callable  # (ctx) -> the error text


def cli(*args: str, env: dict | None = None) -> Callable:
    def run(ctx: Context) -> str:
        argv = [str(a).format(**{k: str(v) for k, v in ctx.files.items()}, out=ctx.out) for a in args]
        result = CliRunner().invoke(
            cli_app, argv, env={"STORYFACE_HOME": str(ctx.home), "HF_HUB_OFFLINE": "1", **(env or {})},
            catch_exceptions=False,
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        return " ".join(result.output.split())

    return run


def api(fn: Callable) -> Callable:
    def run(ctx: Context) -> str:
        with pytest.raises(StoryFaceError) as info:
            fn(ctx)
        return str(info.value)

    return run


def panels(*sentences: str) -> list[Panel]:
    return [Panel(sentence=s) for s in sentences]


def comic_of(sentences: tuple[str, ...], **kwargs) -> Callable:
    def fn(ctx: Context) -> None:
        ids = [ctx.library.load(n) for n in CAST]
        make_comic(ctx.renderer, panels(*sentences), ids, ctx.out, config=RenderConfig(steps=1), **kwargs)

    return fn


def ui(api_name: str, *args: object) -> Callable:
    """Call a web-app endpoint with gradio_client; file arguments are ``{key}`` of ``files``."""

    def run(ctx: Context) -> str:
        from gradio_client import handle_file
        from gradio_client.exceptions import AppError

        def arg(a: object) -> object:
            if isinstance(a, str) and a.startswith("{") and a.endswith("}"):
                return handle_file(str(ctx.files[a[1:-1]]))
            return a

        with pytest.raises((AppError, ValueError)) as info:  # ValueError: an upload the server refused
            ctx.client.predict(*map(arg, args), api_name=f"/{api_name}")
        return " ".join(str(info.value).split())

    return run


def rows_of(*sentences: str) -> dict:
    return {"headers": ["sentence", "characters"], "data": [[s, ""] for s in sentences], "metadata": None}


def generate(*sentences: str, free_style: str = "") -> Callable:
    return ui("generate", rows_of(*sentences), CAST, [], free_style, "", 0, 1)


TRAIN = ("train", "{grace}", "--model", "tiny", "--steps", "1")
COMIC = ("comic", "--identity", "Grace Hopper", "--model", "tiny", "--steps", "1", "--backend", "offline", "--out", "{out}")


NO_MODEL_COMIC = ("comic", "--identity", "Grace Hopper", "--model", "/nonexistent/model", "--backend", "offline", "--out", "{out}")


def comic_with_file(key: str) -> tuple[str, ...]:
    return ("comic", "--identity", f"{{{key}}}", "--consent-by", "Me", "--model", "tiny", "--steps", "1", "--backend", "offline", "--out", "{out}")


def import_file(key: str) -> Callable:
    return cli("ids", "import", f"{{{key}}}", "--consent-by", "Me")

ROWS = [
    # -- CLI ------------------------------------------------------------------------------------
    Row("cli", "train without consent", "--consent-by", cli(*TRAIN, "--name", "Ann Smith")),
    Row("cli", "queued training without consent", "--consent-by", cli(*TRAIN, "--name", "Ann Smith", "--queue")),
    Row("cli", "name with a path", "contains a slash", cli(*TRAIN, "--name", "../../etc/passwd", "--consent-by", "Me")),
    Row("cli", "name with a control character", "control characters", cli(*TRAIN, "--name", "Ann\x1bSmith", "--consent-by", "Me")),
    Row("cli", "name with a right-to-left override", "invisible", cli(*TRAIN, "--name", "Ann\u202eSmith", "--consent-by", "Me")),
    Row("cli", "name of 81 characters", "keep it to 80", cli(*TRAIN, "--name", "A" * 81, "--consent-by", "Me")),
    Row("cli", "consent with a control character", "consent: ", cli(*TRAIN, "--name", "Ann Smith", "--consent-by", "Me\x07")),
    Row("cli", "name already in the library", "already in the library",
        cli(*TRAIN, "--name", "GRACE  hopper", "--consent-by", "Me")),
    Row("cli", "a text file as the photo", "not an image", cli("train", "{notes}", "--name", "A B", "--consent-by", "Me")),
    Row("cli", "an empty photo", "is empty", cli("train", "{empty}", "--name", "A B", "--consent-by", "Me")),
    Row("cli", "48 megapixels", "the limit is 40 Mpx", cli("train", "{big_pixels}", "--name", "A B", "--consent-by", "Me")),
    Row("cli", "a decompression bomb", "too many pixels", cli("train", "{bomb}", "--name", "A B", "--consent-by", "Me")),
    Row("cli", "a corrupt PNG", "looks corrupt", cli("train", "{corrupt}", "--name", "A B", "--consent-by", "Me")),
    Row("cli", "a 30 MB photo", "the limit is 25 MB", cli("train", "{huge}", "--name", "A B", "--consent-by", "Me")),
    Row("cli", "a 32x32 thumbnail", "only 32x32 px", cli("train", "{thumb}", "--name", "A B", "--consent-by", "Me")),
    Row("cli", "a face 36 px wide", "px wide", cli("train", "{tiny_face}", "--name", "A B", "--consent-by", "Me")),
    Row("cli", "two faces", "Found 2 faces", cli("train", "{two_faces}", "--name", "A B", "--consent-by", "Me")),
    Row("cli", "the seed's 'naked' story", "content policy (real people", cli(*COMIC, "--story", "{naked}")),
    Row("cli", "'naked' in leetspeak", "n4k3d, read as naked", cli(*COMIC, "--story", "{leet}")),
    Row("cli", "'naked' spaced out", "nudity or undressing", cli(*COMIC, "--story", "{spaced}")),
    Row("cli", "'naked' with Cyrillic letters", "nudity or undressing", cli(*COMIC, "--story", "{cyrillic}")),
    Row("cli", "fictional mode, still a cast member", "mode fictional",
        cli(*COMIC, "--story", "{naked}", env={"STORYFACE_CONTENT_POLICY": "fictional"})),
    Row("cli", "sexual words in the free style", "sexual content", cli(*COMIC, "--story", "{ok}", "--free-style", "s3xy")),
    Row("cli", "unknown content policy", "choose one of: strict, fictional",
        cli(*COMIC, "--story", "{ok}", env={"STORYFACE_CONTENT_POLICY": "off"})),
    Row("cli", "a story over 20,000 characters", "the limit is 20,000", cli(*COMIC, "--story", "{long}")),
    Row("cli", "a story that is not UTF-8", "not UTF-8", cli(*COMIC, "--story", "{latin1}")),
    Row("cli", "a folder as the story", "is a folder", cli(*COMIC, "--story", "{folder}")),
    Row("cli", "a broken panel script", "not valid JSON", cli(*COMIC, "--story", "{bad}")),
    Row("cli", "30 panels", "the limit is 24", cli(*COMIC, "--story", "{many}")),
    Row("cli", "a panel script of the wrong shape", "must hold", cli(*COMIC, "--story", "{shape}")),
    Row("cli", "an unknown identity", "no identity named", cli("comic", "--identity", "Grace Hoper", "--story", "{ok}")),
    Row("cli", "importing a pickle", "pickles", cli("ids", "import", "{model}")),
    Row("cli", "importing a corrupt identity file", "not a readable .safetensors file", cli("ids", "import", "{broken_id}")),
    Row("cli", "importing a 17 MB identity file", "a few KB", cli("ids", "import", "{big}")),
    Row("cli", "importing under a name with a slash", "slash", cli("ids", "import", "{ada}", "--name", "a/b")),
    Row("cli", "renaming to a control character", "control", cli("ids", "rename", "Grace Hopper", "Grace\nHopper")),
    Row("cli", "renaming onto another person", "already exists", cli("ids", "rename", "Grace Hopper", "eileen collins")),
    # identity files that are not identities, whatever their metadata says (issue 17, items 2 and 7)
    Row("cli", "importing float8 rows that claim float32", "F8_E4M3 values", import_file("f8_id")),
    Row("cli", "drawing with a float8 identity file", "F8_E4M3 values", cli(*comic_with_file("f8_id"), "--story", "{ok}")),
    Row("cli", "importing int32 rows", "I32 values", import_file("int_id")),
    Row("cli", "importing rows of zeros", "all zeros", import_file("zeros_id")),
    Row("cli", "importing float64 rows beyond float32", "not finite numbers as float32", import_file("f64_id")),
    Row("cli", "importing a 3-D tensor", "[tokens, width] matrix", import_file("cube_id")),
    Row("cli", "importing 17 vectors", "an identity has 1 to 16", import_file("many_id")),
    Row("cli", "importing rows no model is as wide as", "fits no model StoryFace runs", import_file("width_id")),
    Row("cli", "importing a 3,000-character metadata value", "keep each value to 2,000", import_file("meta_id")),
    Row("cli", "drawing with an identity file that is the word 'nude'", "content policy (identity rows)",
        cli(*comic_with_file("beach"), "--story", "{beach_story}")),
    # text limits, checked before any work: before the (here missing) model is loaded (issue 17, item 8)
    Row("cli", "600 characters of --free-style", "the free style words: 600 characters; keep it to 500",
        cli(*NO_MODEL_COMIC, "--story", "{ok}", "--free-style", "watercolour " * 50)),
    Row("cli", "a 100,000-character --title with --pdf", "the title: 100,000 characters; keep it to 200",
        cli(*NO_MODEL_COMIC, "--story", "{ok}", "--title", "T" * 100_000, "--pdf")),
    Row("cli", "17 --style presets", "pick at most 16", cli(*NO_MODEL_COMIC, "--story", "{ok}", *["--style", "cartoon"] * 17)),
    Row("cli", "--steps 1,000,000,000", "less than or equal to 150", cli(*NO_MODEL_COMIC, "--story", "{ok}", "--steps", "1000000000")),
    Row("cli", "--size 100000", "less than or equal to 2048", cli(*NO_MODEL_COMIC, "--story", "{ok}", "--size", "100000")),
    Row("cli", "training with no room left for the person", "needs about",
        with_free_bytes(50_000, cli(*TRAIN, "--name", "Ann Smith", "--consent-by", "Me"))),
    # -- Python API -------------------------------------------------------------------------------
    Row("api", "make_comic: the seed's 'naked' panel", "content policy (real people",
        api(comic_of(("Grace Hopper waves.", "Grace Hopper naked.")))),
    Row("api", "make_comic: 'naaaked' with a zero-width space", "nudity",
        api(comic_of(("Eileen Collins naa\u200baked.",)))),
    Row("api", "make_comic: undressing negative prompt", "the negative prompt has clothing to leave out",
        api(comic_of(("Grace Hopper waves.",), negative_prompt="clothes, shirt, dress"))),
    Row("api", "make_comic: fictional mode does not cover a cast member", "real people, mode fictional",
        api(comic_of(("Grace Hopper nude.",), policy=ContentPolicy("fictional")))),
    Row("api", "make_comic: sexualised minor", "(minors)",
        api(comic_of(("Grace Hopper, a sexy 15-year-old.",), policy=ContentPolicy("fictional")))),
    Row("api", "make_comic: 25 panels", "the limit is 24", api(comic_of(("Grace Hopper waves.",) * 25))),
    Row("api", "plan_prompts: a 2,000-character panel", "keep a panel sentence under",
        api(lambda ctx: plan_prompts(ctx.renderer, panels("Grace Hopper " + "waves " * 330), [ctx.library.load("Grace Hopper")]))),
    Row("api", "parse_story: a story over the limit", "the limit is 20,000",
        api(lambda ctx: parse_story("Grace Hopper waves. " * 1100, CAST, backend="offline"))),
    Row("api", "learn_identities: a text file", "not an image",
        api(lambda ctx: learn_identities(ctx.renderer.model, [(ctx.files["notes"], "Ann Smith", "Me")]))),
    Row("api", "library.add: a name with a path", "slash",
        api(lambda ctx: ctx.library.add(random_identity("..\\evil", 3), None, "Test Runner"))),
    Row("api", "library.add: a taken name in other case", "already exists",
        api(lambda ctx: ctx.library.add(random_identity("EILEEN COLLINS", 3), None, "Test Runner"))),
    Row("api", "import_file: a pickle", "pickles", api(lambda ctx: ctx.library.import_file(ctx.files["model"], "Test Runner"))),
    Row("api", "import_file: float8 rows", "F8_E4M3 values",
        api(lambda ctx: ctx.library.import_file(ctx.files["f8_id"], "Test Runner"))),
    Row("api", "make_comic: an identity that is the word 'nude'", "nudity or undressing",
        api(lambda ctx: make_comic(ctx.renderer, panels("Beach Outfit waves."), [load_identity(ctx.files["beach"])], ctx.out,
                                   config=RenderConfig(steps=1)))),  # fmt: skip
    Row("api", "train_person: no room left for the person", "nothing was started",
        with_free_bytes(50_000, api(train_without_room))),
    Row("api", "JobQueue.submit: bytes that are no image", "is not an image",
        api(lambda ctx: JobQueue(ctx.library).submit(b"GIF89a nope", "Ann Smith", "tiny", None, "Me"))),
    Row("api", "JobQueue.submit: a 48-megapixel photo", "at most 40 Mpx",
        api(lambda ctx: JobQueue(ctx.library).submit(ctx.files["big_pixels"], "Ann Smith", "tiny", None, "Me"))),
    Row("api", "JobQueue.submit: a name with a NUL", "control",
        api(lambda ctx: JobQueue(ctx.library).submit(ctx.files["grace"], "Ann\x00", "tiny", None, "Me"))),
    # -- web app ----------------------------------------------------------------------------------
    Row("ui", "add a person without the consent tick", "tick the consent box", ui("add_person", "{grace}", "Ann Smith", False)),
    Row("ui", "a name with a path", "contains a slash", ui("add_person", "{grace}", "../etc/passwd", True)),
    Row("ui", "a name with a control character", "control characters", ui("add_person", "{grace}", "Ann\x1bSmith", True)),
    Row("ui", "a name with a zero-width space", "invisible", ui("add_person", "{grace}", "Ann\u200bSmith", True)),
    Row("ui", "a name already in the library", "already in the library", ui("add_person", "{grace}", "eileen COLLINS", True)),
    Row("ui", "a text file as the photo", "not an image StoryFace can read", ui("add_person", "{notes}", "Ann Smith", True)),
    Row("ui", "a decompression bomb", "too many pixels", ui("add_person", "{bomb}", "Ann Smith", True)),
    Row("ui", "a face 36 px wide", "px wide", ui("add_person", "{tiny_face}", "Ann Smith", True)),
    Row("ui", "two faces", "Found 2 faces", ui("add_person", "{two_faces}", "Ann Smith", True)),
    Row("ui", "a 30 MB upload", "exceeds the maximum file size", ui("add_person", "{huge}", "Ann Smith", True)),
    Row("ui", "train with nobody on the list", "add at least one person", ui("train", 3)),
    Row("ui", "a story over 20,000 characters", "the limit is 20,000",
        ui("process_text", "Grace Hopper fixed the relay. " * 700, CAST)),
    Row("ui", "the seed's 'naked' panel", "content policy (real people", generate("Grace Hopper waves.", "Grace Hopper naked.")),
    Row("ui", "'naked' with dots and leetspeak", "n4k3d, read as naked", generate("Eileen Collins n.4.k.3.d on the beach.")),
    Row("ui", "'naked' with a Cyrillic letter", "nudity or undressing", generate("Grace Hopper nаked.")),
    Row("ui", "undressing phrase", "took off all her clothes", generate("Grace Hopper took off all her clothes.")),
    Row("ui", "sexual words in the free style", "sexual content", generate("Grace Hopper waves.", free_style="nsfw, s e x y")),
    Row("ui", "a sexualised minor", "(minors)", generate("Grace Hopper as a sexy schoolgirl.")),
    Row("ui", "30 panels", "more than a page holds", generate(*["Grace Hopper waves."] * 30)),
    Row("ui", "a 2,000-character panel", "keep a panel sentence under", generate("Grace Hopper " + "waves " * 330)),
    Row("ui", "1 MB of free style words", "the free style words: 1,000,000 characters; keep it to 500",
        generate("Grace Hopper waves.", free_style="x" * 1_000_000)),
    Row("ui", "a library identity that is the word 'nude'", "content policy (identity rows)",
        ui("generate", rows_of("Beach Outfit waves."), ["Beach Outfit"], [], "", "", 0, 1)),
]


@dataclass
class Context:
    home: Path
    out: Path
    files: dict[str, Path]
    library: IdentityLibrary
    renderer: Renderer
    client: object = None  # gradio_client.Client of the web app, whose data folder is ``home``


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, files, grace_hopper_path, astronaut_path) -> Context:
    home = tmp_path_factory.mktemp("home")
    library = fill_library(home, [grace_hopper_path, astronaut_path])
    files = {**files, "grace": grace_hopper_path}
    return Context(home, tmp_path_factory.mktemp("outs") / "comic", files, library, Renderer(load_model("tiny", device="cpu")))


@pytest.fixture(scope="module")
def web(tmp_path_factory, files, grace_hopper_path, astronaut_path, start_app):
    """The web app on the tiny model, bound to 127.0.0.1, with its own library of the same two people."""
    pytest.importorskip("gradio_client")
    from gradio_client import Client

    home = tmp_path_factory.mktemp("web-home")
    library = fill_library(home, [grace_hopper_path, astronaut_path], queued=False)
    library.import_file(files["beach"], "Test Runner")  # imported: the check is where rows meet a model
    running = start_app(load_model("tiny", device="cpu"), home, render_steps=1)
    client = Client(running.url, verbose=False)
    yield Context(home, home / "comics", {**files, "grace": grace_hopper_path}, library, running.services.renderer, client)
    running.close()


def door(request: pytest.FixtureRequest, row: Row) -> Context:
    return request.getfixturevalue("web" if row.door == "ui" else "ctx")


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.door}: {r.what}")
def test_bad_input_gives_a_clear_error_and_changes_nothing(request, row):
    ctx = door(request, row)
    before = snapshot(ctx.home)
    message = row.run(ctx)
    assert row.expect in message, message
    assert "Traceback" not in message
    assert snapshot(ctx.home) == before
    if row.door != "ui":
        assert not ctx.out.exists()


def test_the_table_is_big_enough_and_the_library_still_works(ctx):
    assert len(ROWS) >= 25 and {r.door for r in ROWS} == {"cli", "api", "ui"}
    assert [r.name for r in ctx.library.list()] == CAST
    prompts = plan_prompts(ctx.renderer, panels("Grace Hopper fixed the relay."), [ctx.library.load("Grace Hopper")])
    assert "<grace-hopper>" in prompts[0].prompt


def test_the_server_itself_refuses_an_upload_over_the_limit(web):
    """gradio_client checks the size before sending; a hand-made request meets the server's own limit."""
    import httpx

    url = web.client.src.rstrip("/") + "/gradio_api/upload"
    assert httpx.post(url, files={"files": ("x.jpg", b"\0" * 1000)}, timeout=30).status_code == 200
    response = httpx.post(url, files={"files": ("x.jpg", b"\0" * 27_000_000)}, timeout=60)
    assert response.status_code == 413 and "maximum allowed size" in response.text


def test_start_message_says_who_can_reach_the_app(caplog):
    import logging

    from storyface.app.ui import _say_where

    with caplog.at_level(logging.INFO, logger="storyface.app.ui"):
        _say_where("127.0.0.1", "http://127.0.0.1:7860/", None)
        _say_where("0.0.0.0", "http://0.0.0.0:7860/", ("ann", "s3cret"))
    local, network = caplog.records
    assert local.levelname == "INFO" and "this machine only" in local.getMessage()
    assert network.levelname == "WARNING" and "reachable from other machines" in network.getMessage()
    assert "'ann'" in network.getMessage() and "s3cret" not in network.getMessage()


@pytest.mark.parametrize("value", ["user: ", "user:", "user:\t  ", " :secret", "user:pass\x00word"])
def test_a_blank_or_broken_password_is_refused(value):
    """STORYFACE_AUTH with a password of spaces would "protect" a server open to the network."""
    from storyface.app.ui import resolve_auth

    with pytest.raises(StoryFaceError, match="blank|control characters"):
        resolve_auth("0.0.0.0", None, {"STORYFACE_AUTH": value})
    user, _, password = value.partition(":")
    with pytest.raises(StoryFaceError):
        resolve_auth("0.0.0.0", (user, password), {})
