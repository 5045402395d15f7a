"""The face stage on real photos: loading, the one-face rule, headshots, masks, encoders."""

from __future__ import annotations

import hashlib
import struct
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from storyface.errors import (
    FaceError,
    ImageError,
    InputError,
    ModelError,
    NoFaceError,
    SeveralFacesError,
)
from storyface.faces import (
    FACE_ENCODERS,
    DetectedFace,
    Headshot,
    cosine_similarity,
    crop_headshot,
    detect_faces,
    detect_one_face,
    get_face_encoder,
    landmark_masks,
    load_image,
    parsing_masks,
    photo_sha256,
    prepare_headshot,
)
from storyface.faces.masks import _label_groups

PARSING_LABELS = [
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
]  # fmt: skip


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def photos(astronaut_path: Path, grace_hopper_path: Path) -> dict[str, Image.Image]:
    return {"astronaut": load_image(astronaut_path), "grace_hopper": load_image(grace_hopper_path)}


@pytest.fixture(scope="session")
def headshots(photos: dict[str, Image.Image]) -> dict[str, Headshot]:
    return {name: prepare_headshot(im) for name, im in photos.items()}


@pytest.fixture(scope="session")
def tiny_segformer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight SegFormer with CelebAMask-HQ labels in a shuffled order."""
    import torch
    from transformers import (
        SegformerConfig,
        SegformerForSemanticSegmentation,
        SegformerImageProcessor,
    )

    labels = PARSING_LABELS[::-1]  # order must not matter: labels are matched by name
    config = SegformerConfig(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
        patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 1], mlp_ratios=[2, 2],
        decoder_hidden_size=16, id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )  # fmt: skip
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("segformer")
    SegformerForSemanticSegmentation(config).save_pretrained(path)
    SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    config = ViTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        image_size=32, patch_size=8,
    )  # fmt: skip
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vit")
    ViTModel(config, add_pooling_layer=False).save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def encoded(im: Image.Image, fmt: str = "PNG") -> bytes:
    buf = BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A small valid PNG whose header claims width x height: a decompression bomb's calling card."""
    data = bytearray(encoded(Image.new("L", (64, 64))))
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    return bytes(data)


# ---------------------------------------------------------------- loading


def test_load_image_returns_rgb_copy(photos: dict[str, Image.Image]) -> None:
    src = photos["astronaut"]
    out = load_image(src)
    assert out.mode == "RGB" and out.size == (512, 512) and out is not src


@pytest.mark.parametrize(
    "mode, fmt",
    [("L", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("1", "PNG"), ("CMYK", "JPEG"),
     ("I;16", "PNG")],
)  # fmt: skip
def test_any_mode_loads_as_8bit_rgb(photos: dict[str, Image.Image], mode: str, fmt: str) -> None:
    photo = photos["grace_hopper"]
    gray = np.asarray(photo.convert("L"))  # [600, 512] uint8
    wide = Image.fromarray(gray.astype(np.uint16) * 257)  # the same picture as 16-bit
    data = encoded(wide if mode == "I;16" else photo.convert(mode), fmt)
    assert Image.open(BytesIO(data)).mode == mode  # the file really is in that mode
    out = load_image(data)
    arr = np.asarray(out)
    assert out.mode == "RGB" and arr.dtype == np.uint8 and arr.shape == (600, 512, 3)
    luma = np.asarray(out.convert("L"), dtype=float)
    assert abs(luma.mean() - gray.mean()) < 15  # the picture survives, not clipped or inverted
    if mode == "I;16":  # rescaled to 8 bits, not clipped to white
        assert np.abs(arr[..., 0].astype(int) - gray).max() <= 1


def test_transparency_goes_on_white() -> None:
    im = Image.new("RGBA", (80, 80), (255, 0, 0, 255))
    im.paste((0, 0, 0, 0), (0, 0, 40, 80))  # left half fully transparent black
    arr = np.asarray(load_image(encoded(im)))
    assert tuple(arr[10, 10]) == (255, 255, 255) and tuple(arr[10, 70]) == (255, 0, 0)


def test_animated_image_uses_first_frame() -> None:
    frames = [Image.new("RGB", (80, 80), c) for c in ("red", "blue")]
    buf = BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    r, g, b = np.asarray(load_image(buf.getvalue()))[40, 40]
    assert r > 200 and b < 50


@pytest.mark.parametrize(
    "orientation, stored", [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)]
)
def test_exif_rotated_photo_is_found(
    tmp_path: Path, photos: dict[str, Image.Image], orientation: int, stored: Image.Transpose
) -> None:
    upright = photos["grace_hopper"]
    sideways = upright.transpose(stored)  # what a phone writes before tagging the rotation
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    sideways.save(path, quality=95, exif=exif)
    with pytest.raises(NoFaceError):
        detect_one_face(sideways)  # proves the EXIF tag, not luck, makes the difference
    loaded = load_image(path)
    assert loaded.size == upright.size
    face = detect_one_face(loaded)
    expected = detect_one_face(upright).box
    assert np.abs(np.subtract(face.box, expected)).max() < 12


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nobody.jpg")


def test_directory_is_not_a_photo(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not a file"):
        load_image(tmp_path)


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("Once upon a time there was a photo that was really a story.\n")
    with pytest.raises(ImageError, match="not an image"):
        load_image(path)


@pytest.mark.parametrize(
    "data", [b"", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))]
)
def test_empty_or_random_bytes(data: bytes) -> None:
    with pytest.raises(ImageError):
        load_image(data)


def test_truncated_jpeg(grace_hopper_path: Path) -> None:
    data = grace_hopper_path.read_bytes()
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_too_many_pixels_is_refused_before_decoding() -> None:
    bomb = png_claiming_size(8000, 6000)  # 48 Mpx > 40 Mpx, a few hundred bytes on disk
    with pytest.raises(ImageError, match="48 Mpx"):
        load_image(bomb)


def test_pillow_bomb_guard_becomes_image_error() -> None:
    bomb = png_claiming_size(30000, 30000)  # 900 Mpx: Pillow itself refuses to open it
    with pytest.raises(ImageError, match="too many pixels"):
        load_image(bomb, max_pixels=10**10)


def test_too_many_bytes(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="limit is 25 MB"):
        load_image(b"\xff" * 25_000_001)
    path = tmp_path / "big.png"
    path.write_bytes(encoded(Image.new("RGB", (100, 100))) + b"\0" * 5000)
    with pytest.raises(ImageError, match="MB"):
        load_image(path, max_bytes=1000)


def test_too_small_image() -> None:
    with pytest.raises(ImageError, match="at least 64 px"):
        load_image(encoded(Image.new("RGB", (200, 40), "white")))


def test_photo_sha256_hashes_file_bytes(astronaut_path: Path) -> None:
    expected = hashlib.sha256(astronaut_path.read_bytes()).hexdigest()
    assert photo_sha256(astronaut_path) == photo_sha256(str(astronaut_path)) == expected
    assert photo_sha256(astronaut_path.read_bytes()) == expected


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_each_photo_has_exactly_one_face(photos: dict[str, Image.Image], name: str) -> None:
    image = photos[name]
    faces = detect_faces(image)
    assert len(faces) == 1
    face = detect_one_face(image)
    left, top, right, bottom = face.box
    assert 0 <= left < right <= image.width and 0 <= top < bottom <= image.height
    assert right - left > 80 and face.score > 0.5
    lm = face.landmarks
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    nose, mouth, chin = lm[30], lm[48:68].mean(0), lm[8]
    assert eye_l[0] < nose[0] < eye_r[0]
    assert max(eye_l[1], eye_r[1]) < nose[1] < mouth[1] < chin[1]
    for x, y in (eye_l, eye_r, nose, mouth):  # inner features lie inside the detector's box
        assert left <= x <= right and top <= y <= bottom


def test_astronaut_weak_false_faces_are_filtered(photos: dict[str, Image.Image]) -> None:
    """Why min_score exists: with upsampling dlib also reports parts of the spacesuit."""
    raw = detect_faces(photos["astronaut"], min_score=-1.0)
    assert len(raw) >= 2 and raw[0].score > 1.0 and all(f.score < 0.5 for f in raw[1:])


def test_two_faces_are_refused_with_count_and_places(two_faces_path: Path) -> None:
    image = load_image(two_faces_path)
    faces = detect_faces(image)
    assert len(faces) == 2
    assert sorted((f.box[0] + f.box[2]) / 2 > 512 for f in faces) == [False, True]  # one per half
    with pytest.raises(SeveralFacesError, match="Found 2 faces") as info:
        detect_one_face(image)
    for face in faces:
        assert str(face.box) in str(info.value)


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_no_face(kind: str) -> None:
    rng = np.random.default_rng(0)
    arr = (
        np.full((256, 256, 3), 200, np.uint8)
        if kind == "blank"
        else rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    )
    with pytest.raises(NoFaceError, match="No face found"):
        detect_one_face(Image.fromarray(arr))


def test_too_small_face_is_a_face_error(photos: dict[str, Image.Image]) -> None:
    with pytest.raises(FaceError, match="only .* px wide") as info:
        detect_one_face(photos["astronaut"], min_face_px=200)
    assert not isinstance(info.value, (NoFaceError, SeveralFacesError))


# ---------------------------------------------------------------- alignment and masks


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_headshot_is_aligned_and_framed(headshots: dict[str, Headshot], name: str) -> None:
    hs = headshots[name]
    assert hs.image.mode == "RGB" and hs.image.size == (512, 512) and hs.size == 512
    lm = hs.landmarks
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    assert abs(eye_l[1] - eye_r[1]) < 1.0  # eyes level
    assert 0.35 < (lm[16, 0] - lm[0, 0]) / 512 < 0.55  # face ~40-50% of the width
    assert abs((eye_l[0] + eye_r[0]) / 2 - 256) < 20  # centred horizontally
    assert 0.4 < eye_l[1] / 512 < 0.55 and lm[8, 1] < 500  # room for hair above, chin inside


def test_rotated_photo_gives_level_eyes(photos: dict[str, Image.Image]) -> None:
    tilted = photos["grace_hopper"].rotate(10, expand=True, fillcolor="white")
    hs = crop_headshot(tilted, detect_one_face(tilted))
    lm = hs.landmarks
    assert abs(lm[36:42, 1].mean() - lm[42:48, 1].mean()) < 1.0


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_masks_cover_face_and_hair(headshots: dict[str, Headshot], name: str) -> None:
    hs = headshots[name]
    ys, xs = np.mgrid[:512, :512]
    for mask in (hs.face_mask, hs.hair_mask):
        assert mask.shape == (512, 512) and mask.dtype == np.float32
        assert mask.min() >= 0.0 and mask.max() <= 1.0
    face, hair = hs.face_mask, hs.hair_mask
    assert 0.1 < face.mean() < 0.4 and hair.mean() > 0.05
    face_cx, face_cy = (face * xs).sum() / face.sum(), (face * ys).sum() / face.sum()
    assert abs(face_cx - 256) < 25 and abs(face_cy - 256) < 50
    nose_x, nose_y = hs.landmarks[30].round().astype(int)
    assert face[nose_y, nose_x] == 1.0 and hair[nose_y, nose_x] == 0.0
    assert (hair * ys).sum() / hair.sum() < face_cy - 50  # hair sits above the face
    eye_y = hs.landmarks[36:48, 1].mean()
    assert hair[ys < eye_y].sum() > 2 * hair[ys >= eye_y].sum()
    assert np.minimum(face, hair).sum() < 0.1 * face.sum()  # disjoint but for the soft edges


def test_landmark_masks_scale_with_size(headshots: dict[str, Headshot]) -> None:
    hs = headshots["astronaut"]
    face, hair = landmark_masks(hs.landmarks / 2, 256)
    assert face.shape == hair.shape == (256, 256)
    assert (
        abs(face.mean() - hs.face_mask.mean()) < 0.02
        and abs(hair.mean() - hs.hair_mask.mean()) < 0.02
    )


@pytest.mark.parametrize("pad", ["white", "edge"])
def test_crop_leaving_the_photo_is_padded(photos: dict[str, Image.Image], pad: str) -> None:
    face = detect_one_face(photos["grace_hopper"])
    left, top, right, bottom = face.box
    tight = photos["grace_hopper"].crop(face.box)  # the headshot's square reaches far beyond this
    moved = DetectedFace(
        (0, 0, right - left, bottom - top), face.score, face.landmarks - (left, top)
    )
    arr = np.asarray(crop_headshot(tight, moved, pad=pad).image).astype(int)  # [512, 512, 3]
    assert (arr.reshape(-1, 3) == 0).all(axis=1).mean() < 0.001  # no black frame
    if pad == "white":
        assert (arr[:8, :8] == 255).all() and (arr[-8:, -8:] == 255).all()
    else:  # the photo's corner pixel, repeated outwards
        assert np.abs(arr[0, 0] - np.asarray(tight)[0, 0]).max() < 12


# ---------------------------------------------------------------- parsing model


def test_parsing_masks_map_labels_by_name(
    tiny_segformer: Path, headshots: dict[str, Headshot]
) -> None:
    image = headshots["grace_hopper"].image.resize((120, 100))
    face, hair = parsing_masks(image, str(tiny_segformer))
    assert face.shape == hair.shape == (100, 120) and face.dtype == hair.dtype == np.float32
    assert face.min() >= 0 and hair.min() >= 0 and (face + hair).max() <= 1.0 + 1e-5
    labels = PARSING_LABELS[::-1]
    face_ids, hair_ids = _label_groups(dict(enumerate(labels)), "tiny")
    assert {labels[i] for i in face_ids} == {
        "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "mouth", "u_lip", "l_lip",
    }  # fmt: skip
    assert [labels[i] for i in hair_ids] == ["hair"]


def test_prepare_headshot_with_parsing_model(tiny_segformer: Path, grace_hopper_path: Path) -> None:
    hs = prepare_headshot(grace_hopper_path, size=256, parsing_model=str(tiny_segformer))
    assert hs.image.size == (256, 256) and hs.face_mask.shape == hs.hair_mask.shape == (256, 256)


def test_parsing_model_without_face_labels() -> None:
    with pytest.raises(ModelError, match="not a face-parsing model"):
        _label_groups({0: "cat", 1: "dog"}, "pets")
    with pytest.raises(ModelError, match="Cannot load face-parsing model"):
        parsing_masks(Image.new("RGB", (64, 64)), "/nonexistent/segformer")


# ---------------------------------------------------------------- encoders


@pytest.fixture(scope="session")
def dlib_variants(photos: dict[str, Image.Image]) -> dict[str, Headshot]:
    a, g = photos["astronaut"], photos["grace_hopper"]
    return {
        "astronaut": prepare_headshot(a),
        "astronaut_flipped": prepare_headshot(a.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        "grace_hopper": prepare_headshot(g),
        "grace_hopper_small": prepare_headshot(g.resize((300, 352), Image.Resampling.LANCZOS)),
    }


def test_dlib_separates_people(dlib_variants: dict[str, Headshot]) -> None:
    enc = get_face_encoder("dlib")
    raw = {k: enc.descriptor(v) for k, v in dlib_variants.items()}
    same = [("astronaut", "astronaut_flipped"), ("grace_hopper", "grace_hopper_small")]
    different = [
        (a, g)
        for a in ("astronaut", "astronaut_flipped")
        for g in ("grace_hopper", "grace_hopper_small")
    ]
    dist = {pair: float(np.linalg.norm(raw[pair[0]] - raw[pair[1]])) for pair in same + different}
    assert max(dist[p] for p in same) < 0.4 and min(dist[p] for p in different) > 0.6, dist
    unit = {k: enc.encode(v) for k, v in dlib_variants.items()}
    assert all(v.shape == (128,) and v.dtype == np.float32 for v in unit.values())
    assert all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in unit.values())
    cos_same = min(cosine_similarity(unit[a], unit[b]) for a, b in same)
    cos_diff = max(cosine_similarity(unit[a], unit[b]) for a, b in different)
    assert cos_same > cos_diff + 0.05


def test_dlib_jitters_option(dlib_variants: dict[str, Headshot]) -> None:
    enc = get_face_encoder("dlib", num_jitters=2)
    assert enc.name == "dlib" and enc.dim == 128
    plain = get_face_encoder("dlib").encode(dlib_variants["astronaut"])
    assert cosine_similarity(enc.encode(dlib_variants["astronaut"]), plain) > 0.98
    with pytest.raises(InputError):
        get_face_encoder("dlib", num_jitters=-1)


def test_unknown_encoder_lists_choices() -> None:
    with pytest.raises(InputError, match="arcface, dlib, vit") as info:
        get_face_encoder("facenet")
    assert "facenet" in str(info.value) and set(FACE_ENCODERS) == {"arcface", "dlib", "vit"}


def test_vit_needs_a_model() -> None:
    with pytest.raises(InputError, match="model="):
        get_face_encoder("vit")
    with pytest.raises(ModelError, match="Cannot load ViT"):
        get_face_encoder("vit", model="/nonexistent/fr-vit")


def test_vit_encoder_returns_unit_cls_vector(
    tiny_vit: Path, headshots: dict[str, Headshot]
) -> None:
    enc = get_face_encoder("vit", model=str(tiny_vit))
    assert enc.name == "vit" and enc.dim == 32
    a, g = (enc.encode(headshots[k]) for k in ("astronaut", "grace_hopper"))
    assert a.shape == g.shape == (32,) and a.dtype == np.float32
    assert abs(np.linalg.norm(a) - 1) < 1e-5 and not np.allclose(a, g)
    np.testing.assert_allclose(enc.encode(headshots["astronaut"]), a, atol=1e-6)  # deterministic
