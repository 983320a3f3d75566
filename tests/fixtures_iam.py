"""Tiny IAM look-alikes for tests/test_iam.py, drawn at test time (no IAM data, no network).

`make_raw_iam` writes the exact IAM layout by hand (not through `iam.make_iam_fixture`), with
the oddities real IAM has: header comments, 'err' words, a word outside the charset, an empty
(corrupt) png and a missing one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from scriptvit_lib.words import WordSample, WordSet


def draw_word(text: str, height: int = 48, ink: int = 20) -> np.ndarray:
    """Dark text on white, `height` px high, width following the text."""
    try:
        font = ImageFont.load_default(size=int(height * 0.6))
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        font = ImageFont.load_default()
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    img = Image.new("L", (max(8, right - left + 8), height), 255)
    ImageDraw.Draw(img).text((4 - left, (height - (bottom - top)) // 2 - top), text, fill=ink, font=font)
    return np.asarray(img, dtype=np.uint8).copy()


def synthetic_sets(writers=("w1", "w2", "w3"), words=("the", "Move", "A-2")) -> dict[str, WordSet]:
    """train = all writers but the last; test = the last. Heights 32 like the loader gives."""
    sets = {"train": [], "test": []}
    for k, wr in enumerate(writers):
        split = "test" if k == len(writers) - 1 else "train"
        sets[split] += [WordSample(wr, t, draw_word(t, height=32, ink=10 * k)) for t in words]
    return {name: WordSet(s) for name, s in sets.items()}


# form -> writer, as forms.txt has it; four words a form
FORMS = {
    "a01-000u": "000",
    "a01-003": "001",
    "b02-010": "002",
    "c03-007x": "003",
    "d04-050": "004",
    "e05-111": "005",
}
TEXTS = ["A", "MOVE", "to", "stop"]
ERR = "a01-000u-01-01"  # segmentation 'err'
UNKNOWN = "b02-010-00-01"  # 'café': é is outside the charset
CORRUPT = "c03-007x-01-00"  # an empty png, like IAM's a01-117-05-02
MISSING = "d04-050-01-01"  # listed in words.txt, no file
SPACED = "e05-111-01-01"  # a transcription with a space in it


def make_raw_iam(root: Path) -> dict[str, tuple[str, str, tuple[int, int]]]:
    """Write IAM's layout under root; return word id -> (writer, text, (h, w) as drawn)."""
    root = Path(root)
    words, lines = {}, []
    for k, (form, writer) in enumerate(FORMS.items()):
        folder = root / "words" / form.split("-")[0] / form
        folder.mkdir(parents=True)
        for j, base in enumerate(TEXTS):
            wid = f"{form}-{j // 2:02d}-{j % 2:02d}"
            text = {UNKNOWN: "café", SPACED: "to be"}.get(wid, base)
            image = draw_word(text, height=40 + 4 * k)  # varied heights: the loader rescales
            if wid == CORRUPT:
                (folder / f"{wid}.png").write_bytes(b"")
            elif wid != MISSING:
                Image.fromarray(image).save(folder / f"{wid}.png")
            h, w = image.shape
            status = "err" if wid == ERR else "ok"
            lines.append(f"{wid} {status} 176 {100 + 50 * j} {300 + 80 * k} {w} {h} NN {text}")
            words[wid] = (writer, text, (h, w))
    header = [
        "#--- words.txt (a test fixture in IAM's format) ---",
        "#",
        "# format: word-id ok|err graylevel x y w h grammatical-tag transcription",
        "#",
    ]
    (root / "ascii").mkdir()
    (root / "ascii" / "words.txt").write_text("\n".join(header + lines) + "\n")
    forms = ["# form-id writer-id sentences words-ok words lines-ok lines"]
    forms += [f"{form} {writer} 2 prt 7 5 4 2" for form, writer in FORMS.items()]
    (root / "ascii" / "forms.txt").write_text("\n".join(forms) + "\n")
    return words
