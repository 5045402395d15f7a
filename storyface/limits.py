"""Every limit on what a person (or a file we read back) may hand StoryFace, in one place.

Each door (CLI, Python API, web app, files on disk) checks input against these numbers before any
work starts, and every module that needs one imports it from here, so a limit is changed once.
"""

from __future__ import annotations

# -- photos ----------------------------------------------------------------------------------------
MAX_PHOTO_BYTES = 25_000_000  # 25 MB: bigger than any sane headshot, small enough to hold in memory
MAX_PHOTO_PIXELS = 40_000_000  # 40 Mpx: well below Pillow's own bomb limit (~179 Mpx)
MIN_PHOTO_SIDE = 64  # px: below this no detector finds a usable face
MIN_FACE_PX = 40  # a narrower face carries too little detail to learn an identity from

# -- names and identity files ------------------------------------------------------------------------
MAX_NAME_CHARS = 80
MAX_IMPORT_BYTES = 16 * 1024 * 1024  # an identity is a few KB; anything huge is not one
MAX_IMPORT_TOKENS = 16  # vectors per encoder in an imported textual-inversion file
MAX_META_CHARS = 2_000  # one metadata value of an identity file (a model path, a hash, a date)
MAX_META_KEYS = 64
MAX_META_KEY_CHARS = 100  # a metadata key ("base_model", "probe_loss_start"): a word, not a document
# A word embedding's entries are well below 1 in every CLIP; a StableIdentity row is a celebrity-name mean
# plus a LayerNorm output (|x| < sqrt(2 * width) ~ 64 at the very most) times a std below 1. 100 keeps
# room for every honest or test row, and keeps squares finite even in float16 (100^2 < 65,504).
MAX_EMBEDDING_ABS = 100.0
# safetensors dtypes we read weights in (identity rows, LoRA matrices): floats torch widens or narrows to
# float32 exactly enough (float64 is narrowed, then checked for overflow). Not float8 (no finite check,
# too coarse), not ints, bools or complex numbers: those are no embedding or weight delta.
FLOAT_TENSOR_DTYPES = ("F16", "BF16", "F32", "F64")
MIN_ROW_NORM = 1e-4  # a row shorter than this is (nearly) all zeros: no word, and no direction to compare

# -- text --------------------------------------------------------------------------------------------
MAX_STORY_CHARS = 20_000  # about 3,000 words: far beyond a comic, cheap to reject early
MAX_PANELS = 24  # a long comic; more panels is almost surely a pasted document
MAX_SENTENCE_CHARS = 1_000  # CLIP reads ~77 tokens (~300 characters); far longer is a pasted document
MAX_SCRIPT_BYTES = 1_000_000  # a panel script (or comic.json) of 24 panels is a few KB
MAX_STYLE_CHARS = 500  # the free style words: a prompt holds ~300 characters in all
MAX_STYLES = 16  # style presets picked for one comic (there are 15)
MAX_TITLE_CHARS = 200  # a comic's title, drawn on the page
MAX_NEGATIVE_CHARS = 1_000
MAX_CAPTION_CHARS = 600  # a narration box
MAX_LINE_CHARS = 300  # one line of dialogue (a balloon)
MAX_LINES_PER_PANEL = 6
MAX_CONSENT_CHARS = MAX_NAME_CHARS
MAX_APPEARANCE_CHARS = 200  # a person's appearance notes, added to every prompt they appear in (~30 CLIP tokens)

# -- work --------------------------------------------------------------------------------------------
MAX_TRAIN_STEPS = 5_000
MAX_RENDER_STEPS = 150
MAX_GUIDANCE = 30.0  # classifier-free guidance; SDXL's useful range ends near 15
MAX_PROMPT_CHARS = MAX_SENTENCE_CHARS + MAX_STYLE_CHARS + 500  # sentence + styles + preset words + appearance
MAX_RENDER_BATCH = 16  # panels in one pipeline call
MAX_SEED = 2**63 - 1
MAX_PANEL_SIDE = 2_048  # px; SDXL's native sizes are at most 1536 on a side
MIN_PANEL_SIDE = 64
MAX_RETRIES = 5
MAX_PEOPLE_PER_PANEL = 4  # placed in regions: four columns of 8 latent cells at SDXL's coarsest attention
#                           grid (32 cells at 1024 px); fewer cells are too thin for a face

# -- the web app ---------------------------------------------------------------------------------------
UPLOAD_LIMIT = f"{MAX_PHOTO_BYTES // 1_000_000}mb"  # Gradio refuses a bigger upload before it reaches the disk
MAX_AUTH_CHARS = 1_000  # STORYFACE_AUTH, "user:password": a passphrase, not a document

# Network
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})  # addresses only this machine can reach
MIN_TOKEN_CHARS = 16  # a cluster token: 16 random characters are out of reach of guessing
MAX_BODY_BYTES = 48 * 1024 * 1024  # one cluster request (photos, identities and panels, base64)
MAX_IDENTITIES_PER_REQUEST = 32  # a panel shows at most a few people; a chunk of panels a cast
MAX_PANELS_PER_REQUEST = 16  # the client sends a page in chunks of its batch size (4 by default)

# Files and answers from elsewhere
MAX_LLM_REPLY_BYTES = 2_000_000  # a 24-panel script is a few KB; a reply this big is not one (and costs memory)
MAX_LORAS = 8  # every fused LoRA is one pass over the weights it touches; a distillation LoRA plus a style mix
MAX_LORA_WEIGHT = 4.0  # style LoRAs are used at 0.3-1.5 (negative for sliders); beyond +-4 is a typo (70 for 0.7)
MAX_LORA_BYTES = 3 * 2**30  # the largest SDXL LoRAs (rank 256, every layer) are ~1.7 GB; bigger is a checkpoint
