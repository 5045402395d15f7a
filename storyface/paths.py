"""Where StoryFace keeps a user's data (identity library, job queue, uploads).

One folder shared by the CLI, the web app and workers, so an identity trained in one shows up in
the others. Tests point it elsewhere with ``STORYFACE_HOME`` or an explicit override.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .errors import InputError

ENV_VAR = "STORYFACE_HOME"
APP_DIR = "storyface"


def default_data_dir(platform: str, env: Mapping[str, str], home: Path) -> Path:
    """The per-user default for a platform; pure, so every platform can be tested anywhere."""
    if platform == "darwin":
        return home / "Library" / "Application Support" / APP_DIR
    if platform.startswith("win"):
        base = env.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / APP_DIR
    base = env.get("XDG_DATA_HOME") or str(home / ".local" / "share")
    return Path(base) / APP_DIR


def resolve_data_dir(
    override: str | os.PathLike | None, platform: str, env: Mapping[str, str], home: Path
) -> Path:
    """Precedence: explicit override, then ``STORYFACE_HOME``, then the platform default."""
    if override is not None and str(override) != "":
        return Path(override).expanduser()
    if env.get(ENV_VAR):
        return Path(env[ENV_VAR]).expanduser()
    return default_data_dir(platform, env, home)


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The data folder for this process, created on first use."""
    path = resolve_data_dir(override, sys.platform, os.environ, Path.home()).absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"the data folder {path} is a file, not a folder; set {ENV_VAR} to a folder") from None
    except OSError as exc:
        raise InputError(
            f"cannot create the data folder {path}: {exc.strerror or exc}; set {ENV_VAR} to a folder this user can write"
        ) from None
    return path
