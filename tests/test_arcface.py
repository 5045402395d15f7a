"""The ArcFace-style ONNX face encoder, on small random-weight models the tests build with ``onnx``.

These models check the plumbing (alignment, normalisation, shapes, errors); their scores mean
nothing about faces. Real weights (e.g. AuraFace) are needed for real likeness scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from storyface.errors import InputError, ModelError
from storyface.faces import FACE_ENCODERS, Headshot, get_face_encoder, prepare_headshot
from storyface.faces.arcface import (
    ARCFACE_TEMPLATE,
    ArcFaceEncoder,
    align_face,
    five_points,
    similarity_transform,
    to_blob,
)

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

DIM = 16


def save_model(path: Path, nodes, inputs, outputs, initializers=()) -> Path:
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def face_input(size: int = 112, name: str = "input.1"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 3, size, size])


def linear_model(path: Path, seed: int = 0, size: int = 112) -> tuple[Path, np.ndarray, np.ndarray]:
    """Flatten -> Gemm: a random linear map [3 * size * size] -> [DIM], as (path, W, b)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3 * size * size, DIM)).astype(np.float32) * 0.01
    b = rng.standard_normal(DIM).astype(np.float32)
    nodes = [helper.make_node("Flatten", ["input.1"], ["flat"], axis=1), helper.make_node("Gemm", ["flat", "W", "b"], ["embedding"])]
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", DIM])
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")]
    return save_model(path, nodes, [face_input(size)], [out], inits), w, b


def channel_mean_model(path: Path) -> Path:
    """GlobalAveragePool -> Flatten: outputs each input channel's mean, [N, 3]."""
    nodes = [helper.make_node("GlobalAveragePool", ["input.1"], ["pooled"]), helper.make_node("Flatten", ["pooled"], ["emb"], axis=1)]
    return save_model(path, nodes, [face_input()], [helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["N", 3])])


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    return linear_model(tmp_path_factory.mktemp("onnx") / "arcface.onnx")


@pytest.fixture(scope="module")
def headshot(astronaut_path) -> Headshot:
    return prepare_headshot(astronaut_path)


def landmarks_at(points: np.ndarray) -> np.ndarray:
    """68 dlib landmarks whose eye centres, nose tip and mouth corners are exactly ``points`` [5, 2]."""
    lm = np.full((68, 2), 256.0)
    lm[36:42], lm[42:48], lm[30], lm[48], lm[54] = points[0], points[1], points[2], points[3], points[4]
    return lm


# -- alignment ---------------------------------------------------------------------------------


def test_similarity_transform_recovers_a_known_similarity():
    angle, scale, shift = np.deg2rad(20), 3.1, np.array([140.0, 95.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    photo = ARCFACE_TEMPLATE @ (scale * rot).T + shift  # the template placed in a photo
    m = similarity_transform(photo, ARCFACE_TEMPLATE)
    np.testing.assert_allclose(m[:, :2], rot.T / scale, atol=1e-9)
    np.testing.assert_allclose(photo @ m[:, :2].T + m[:, 2], ARCFACE_TEMPLATE, atol=1e-9)
    np.testing.assert_allclose(five_points(landmarks_at(photo)), photo)


def test_align_face_puts_the_five_points_on_the_template_in_pixels():
    """Coloured dots at the 5 points of a rotated, scaled face land on the template (within half a pixel)."""
    angle, scale, shift = np.deg2rad(-15), 3.0, np.array([90.0, 160.0])  # the face stays inside the photo
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    photo_points = ARCFACE_TEMPLATE @ (scale * rot).T + shift
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255)]
    image = Image.new("RGB", (512, 512), "white")
    draw = ImageDraw.Draw(image)
    for (x, y), colour in zip(photo_points, colours):  # pixel-index centres; PIL's ellipse box is inclusive
        draw.ellipse((x - 6, y - 6, x + 6, y + 6), fill=colour)
    face = np.asarray(align_face(image, landmarks_at(photo_points)), dtype=np.int16)  # [112, 112, 3]
    assert face.shape == (112, 112, 3)
    for target, colour in zip(ARCFACE_TEMPLATE, colours):
        hit = np.abs(face - colour).sum(-1) < 60  # [112, 112]
        ys, xs = np.nonzero(hit)
        assert len(xs) > 10, colour
        assert np.hypot(xs.mean() - target[0], ys.mean() - target[1]) < 0.5, (colour, xs.mean(), ys.mean(), target)


def test_real_photo_landmarks_land_near_the_template(headshot, grace_hopper_path):
    for shot, eyes_px, all_px in ((headshot, 4.0, 8.0), (prepare_headshot(grace_hopper_path), 2.0, 2.0)):
        points = five_points(shot.landmarks)
        m = similarity_transform(points, ARCFACE_TEMPLATE)
        error = np.linalg.norm(points @ m[:, :2].T + m[:, 2] - ARCFACE_TEMPLATE, axis=1)  # [5] px
        assert error[:2].max() < eyes_px and error.max() < all_px, error  # Eileen's wide smile: ~7 px


# -- normalisation, shape, determinism ------------------------------------------------------------


def test_normalisation_is_insightfaces_rgb_minus_127_5_over_127_5(tmp_path):
    encoder = get_face_encoder("arcface", model=channel_mean_model(tmp_path / "means.onnx"))
    assert encoder.dim == 3
    photo_points = ARCFACE_TEMPLATE * 3 + 50
    solid = Image.new("RGB", (512, 512), (255, 128, 0))  # R, G, B
    shot = Headshot(solid, np.zeros((512, 512)), np.zeros((512, 512)), landmarks_at(photo_points), (0, 0, 1, 1))
    raw = np.array([1.0, 0.5 / 127.5, -1.0])  # (255 - 127.5) / 127.5, (128 - 127.5) / 127.5, (0 - 127.5) / 127.5
    np.testing.assert_allclose(encoder.encode(shot), raw / np.linalg.norm(raw), atol=1e-6)
    blob = to_blob(Image.new("RGB", (112, 112), (255, 128, 0)))
    assert blob.shape == (1, 3, 112, 112) and blob.dtype == np.float32
    np.testing.assert_allclose(blob[0, :, 5, 7], raw, atol=1e-7)  # NCHW, RGB order


def test_embedding_is_the_models_output_on_the_aligned_face_l2_normalised(linear, headshot):
    path, w, b = linear
    encoder = get_face_encoder("arcface", model=str(path))
    vector = encoder.encode(headshot)
    assert vector.shape == (DIM,) and vector.dtype == np.float32 and encoder.dim == DIM
    assert abs(float(np.linalg.norm(vector)) - 1) < 1e-6
    blob = (np.asarray(align_face(headshot.image, headshot.landmarks), np.float32) - 127.5) / 127.5  # [112, 112, 3]
    expected = blob.transpose(2, 0, 1).reshape(-1) @ w + b  # [DIM]
    np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), atol=1e-5)


def test_encoding_is_deterministic_and_differs_between_people(linear, headshot, grace_hopper_path):
    path = linear[0]
    a, b = ArcFaceEncoder(path), ArcFaceEncoder(path)
    assert np.array_equal(a.encode(headshot), a.encode(headshot))
    assert np.array_equal(a.encode(headshot), b.encode(headshot))
    assert not np.allclose(a.encode(headshot), a.encode(prepare_headshot(grace_hopper_path)), atol=1e-3)


def test_registered_and_usable_for_the_prior_and_for_eval(linear, astronaut_path, two_faces_path):
    from storyface.eval import references_from, score_panel
    from storyface.identity.subject import subject_from_photo

    assert "arcface" in FACE_ENCODERS
    encoder = get_face_encoder("arcface", model=linear[0])
    subject, _ = subject_from_photo(astronaut_path, "Eileen Collins", encoder)
    assert subject.features.shape == (DIM,) and subject.face_encoder == "arcface"
    refs = references_from({"Eileen Collins": astronaut_path}, encoder)
    score = score_panel(Image.open(two_faces_path), refs, ["Eileen Collins"], encoder)
    assert len(score.faces) == 2 and -1 <= score.similarities["Eileen Collins"] <= 1


# -- errors -------------------------------------------------------------------------------------


def test_a_missing_model_argument_or_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match=r"needs model=<path to an ArcFace-style \.onnx file>"):
        get_face_encoder("arcface")
    with pytest.raises(ModelError, match="no such file"):
        get_face_encoder("arcface", model=tmp_path / "absent.onnx")


def test_a_file_that_is_not_onnx_is_a_model_error(tmp_path):
    fake = tmp_path / "weights.onnx"
    fake.write_bytes(b"this is not a protobuf \x00\xff" * 10)
    with pytest.raises(ModelError, match="weights.onnx is not a usable ONNX model"):
        ArcFaceEncoder(fake)


def test_a_model_with_the_wrong_input_size_is_a_model_error(tmp_path):
    path, _, _ = linear_model(tmp_path / "small.onnx", size=64)
    with pytest.raises(ModelError, match=r"small.onnx takes .*64, 64.*\[N, 3, 112, 112\]"):
        ArcFaceEncoder(path)


def test_a_model_whose_output_is_not_a_vector_is_a_model_error(tmp_path):
    identity = [helper.make_node("Identity", ["input.1"], ["same"])]
    out = helper.make_tensor_value_info("same", TensorProto.FLOAT, ["N", 3, 112, 112])
    path = save_model(tmp_path / "map.onnx", identity, [face_input()], [out])
    with pytest.raises(ModelError, match=r"map.onnx outputs float32 \[1, 3, 112, 112\].*one vector"):
        ArcFaceEncoder(path)
