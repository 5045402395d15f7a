"""Shared test fixtures: real photos of real people, shipped inside test dependencies.

astronaut.png (Eileen Collins) comes with scikit-image, grace_hopper.jpg with matplotlib;
both are local files, so these fixtures work offline.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from PIL import Image


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    """Path to skimage's astronaut.png (512x512 RGB, one face)."""
    import skimage.data

    path = Path(skimage.data.__file__).parent / "astronaut.png"
    assert path.is_file(), f"scikit-image sample photo missing: {path}"
    return path


@pytest.fixture(scope="session")
def grace_hopper_path() -> Path:
    """Path to matplotlib's grace_hopper.jpg (512x600 RGB, one face)."""
    import matplotlib.cbook

    path = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    assert path.is_file(), f"matplotlib sample photo missing: {path}"
    return path


@pytest.fixture(scope="session")
def two_faces_path(
    tmp_path_factory: pytest.TempPathFactory, astronaut_path: Path, grace_hopper_path: Path
) -> Path:
    """A PNG with both photos side by side (two faces) on a white canvas."""
    left = Image.open(astronaut_path).convert("RGB")
    right = Image.open(grace_hopper_path).convert("RGB")
    canvas = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    path = tmp_path_factory.mktemp("photos") / "two_faces.png"
    canvas.save(path)
    return path


@pytest.fixture(scope="session")
def start_app():
    """Start the web app (not blocking) on a free 127.0.0.1 port; the caller closes what it returns."""
    from storyface.app.ui import launch

    def start(model, data_dir, **kwargs):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return launch(model, host="127.0.0.1", port=port, data_dir=data_dir, block=False, **kwargs)

    return start
