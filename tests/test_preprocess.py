"""Style pictures as people have them -> 32-px word images; every bad input is one clear error."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scriptvit_lib.cli import UserError
from scriptvit_lib.preprocess import (
    BASELINE,
    HEIGHT,
    ink_map,
    load_grey,
    prepare_style_images,
    preprocess_image,
    skew_angle,
)
from tests.fixtures_iam import draw_word

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def assert_words(words, n=None):
    assert n is None or len(words) == n, f"{len(words)} words, expected {n}"
    for w in words:
        assert w.dtype == np.uint8 and w.ndim == 2 and w.shape[0] == HEIGHT, (w.dtype, w.shape)
        assert w.min() < 100, "no solid ink"
        assert (w[:, :1] == 255).all() and (w[:, -1:] == 255).all(), "margins are paper"
        assert w.shape[1] >= 8


@pytest.fixture(scope="module")
def word():
    return draw_word("Handwriting", height=120)  # uint8, dark on white, 120 px high


def _lighting(h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    return 0.55 + 0.45 * (1 - xx / w) * (1 - 0.5 * yy / h)  # light falls off to one side


def _photo_like(word: np.ndarray, kind: str):
    ink = 1 - word.astype(np.float32) / 255
    h, w = ink.shape
    if kind == "array":
        return word
    if kind == "rotated":
        padded = Image.fromarray(np.pad(word, 40, constant_values=255))
        return padded.rotate(5, resample=Image.Resampling.BICUBIC, fillcolor=255)
    if kind == "coloured":  # blue ink on yellow paper under uneven light
        paper, pen = np.array([240, 220, 150]), np.array([30, 40, 140])
        rgb = (paper * (1 - ink[..., None]) + pen * ink[..., None]) * _lighting(h, w)[..., None]
        return Image.fromarray(rgb.astype(np.uint8))
    if kind == "inverted":  # chalk on a board
        return 255 - word
    if kind == "rgba":  # black strokes, the background fully transparent (and black underneath)
        rgba = np.zeros((h, w, 4), np.uint8)
        rgba[..., 3] = (ink * 255).astype(np.uint8)
        return Image.fromarray(rgba, "RGBA")
    if kind == "16bit":
        return Image.fromarray(word.astype(np.uint16) * 257)  # mode I;16
    if kind == "palette":
        return Image.fromarray(word).convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["array", "rotated", "coloured", "inverted", "rgba", "16bit", "palette"])
def test_photo_like_inputs_become_one_32px_word(word, kind):
    words = preprocess_image(_photo_like(word, kind))
    assert_words(words, n=1)


def test_sixteen_bit_png_and_scale_invariance(tmp_path, word):
    path = tmp_path / "word16.png"
    _photo_like(word, "16bit").save(path)
    assert Image.open(path).mode.startswith("I")
    (big,) = preprocess_image(path)
    (small,) = preprocess_image(draw_word("Handwriting", height=48))
    # any input size lands on the same training layout: similar width, ink around the baseline
    assert abs(big.shape[1] - small.shape[1]) <= 0.15 * small.shape[1]
    rows = np.nonzero((big < 128).any(axis=1))[0]
    assert rows[0] < BASELINE < rows[-1] + 3


def test_rotated_line_is_deskewed(word):
    line = np.concatenate([word, np.full((word.shape[0], 60), 255, np.uint8), word], axis=1)
    tilted = Image.fromarray(np.pad(line, 60, constant_values=255)).rotate(5, fillcolor=255)
    ink, _ = ink_map(np.asarray(tilted, np.float32) / 255)
    assert abs(abs(skew_angle(ink)) - 5) < 1.0


def test_a_line_splits_into_words():
    line = draw_word("the  quick  brown", height=90)  # a typeface's space is narrow: use two
    assert_words(preprocess_image(line), n=3)
    assert_words(preprocess_image(line, split=False), n=1)


def test_phone_photo_example_gives_its_eight_words():
    path = EXAMPLES / "phone_photo_line.jpg"  # sideways + EXIF orientation, cream paper, shadow, 4° tilt
    assert Image.open(path).getexif().get(0x0112) == 6
    assert load_grey(path).shape[1] > load_grey(path).shape[0]  # EXIF applied: a landscape line
    words, notes = prepare_style_images([path])
    assert_words(words, n=8)  # "Meet me at the old harbour on Sunday"
    assert notes == [f"{path}: 8 words"]


def test_a_page_splits_into_lines_and_words():
    rows = [draw_word(t, height=70) for t in ("one  two", "three  four  five", "six")]
    width = max(r.shape[1] for r in rows)
    page = np.concatenate([np.pad(r, ((0, 10), (0, width - r.shape[1])), constant_values=255) for r in rows])
    assert_words(preprocess_image(page), n=6)


def test_notebook_paper_rules_are_erased():
    line = draw_word("the  quick  brown", height=90)
    rgb = np.stack([line] * 3, axis=-1).astype(np.int16)
    rgb = np.pad(rgb, ((30, 30), (60, 60), (0, 0)), constant_values=250)
    for y in range(12, rgb.shape[0], 40):  # light blue rules across the page, touching the letters
        rgb[y : y + 2] = np.minimum(rgb[y : y + 2], [150, 180, 230])
    rgb[:, 40:42] = np.minimum(rgb[:, 40:42], [230, 120, 120])  # the red margin line
    assert_words(preprocess_image(rgb.astype(np.uint8)), n=3)


# --- bad input: one clear UserError each ---------------------------------------------------------
def test_missing_file_is_named(tmp_path):
    with pytest.raises(UserError, match=r"cannot read style image .*nope\.png: no such file"):
        preprocess_image(tmp_path / "nope.png")


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"hello, not an image"])
def test_corrupt_file_is_named(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(UserError, match=r"cannot read style image .*broken\.png"):
        preprocess_image(path)


def test_truncated_png_is_named(tmp_path, word):
    path = tmp_path / "cut.png"
    Image.fromarray(word).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UserError, match=r"cut\.png"):
        preprocess_image(path)


@pytest.mark.parametrize("image", [np.full((60, 200), 255, np.uint8), np.full((60, 200, 3), 90, np.uint8)])
def test_no_ink(image):
    with pytest.raises(UserError, match="no ink found"):
        preprocess_image(image)


def test_only_noise_is_no_ink():
    rng = np.random.default_rng(0)
    speckled = np.full((80, 300), 250, np.uint8)
    speckled[rng.integers(0, 80, 15), rng.integers(0, 300, 15)] = 150  # isolated faint pixels
    with pytest.raises(UserError, match="no ink found"):
        preprocess_image(speckled)


def test_absurd_sizes(tmp_path):
    with pytest.raises(UserError, match="too small"):
        preprocess_image(np.zeros((5, 100), np.uint8))
    huge = tmp_path / "huge.png"
    Image.new("1", (30_000, 10), 1).save(huge)
    with pytest.raises(UserError, match=r"huge\.png is 30000x10 px: too large"):
        preprocess_image(huge)


def test_bad_types_and_empty_list():
    with pytest.raises(UserError, match="no style images"):
        prepare_style_images([])
    with pytest.raises(UserError, match="expected a file path"):
        preprocess_image(42)
    with pytest.raises(UserError, match="expected an image array"):
        preprocess_image(np.zeros((2, 40, 40, 3), np.uint8))
