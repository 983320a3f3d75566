"""Draw the example style images in this folder (run once; the images are committed).

    python examples/make_style_examples.py          # needs the npm font cache (scriptvit data build)

* `phone_photo_line.jpg` - a line written in "Shadows Into Light" and "photographed": cream
  paper, blue ink, light falling off to one corner, a shadow, a 4° tilt, sensor noise, JPEG,
  far larger than needed, stored sideways with an EXIF "rotate me" tag as phones do.
* `clean_words/*.png` - four words in "Homemade Apple", dark ink on white, as a scanner or a
  tablet app would give them.

Both families are TEST families of the font dataset (never trained on), so these are unseen hands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from scriptvit_lib.fonts import cache_dir, load_font

HERE = Path(__file__).resolve().parent
LINE = "Meet me at the old harbour on Sunday"
WORDS = ("quiet", "morning", "letters", "garden")


def font_file(family: str) -> Path:
    files = sorted((cache_dir() / family).glob("*-latin-400-normal.woff*"))
    if not files:
        raise SystemExit(f"font {family} is not in {cache_dir()}: run `scriptvit data build` first")
    return files[0]


def ink_of(text: str, family: str, size: int, pad: int) -> np.ndarray:
    """Text drawn at `size` px -> ink coverage float [H, W] in [0, 1] (1 = ink)."""
    font = load_font(font_file(family), size)
    x0, y0, x1, y1 = font.getbbox(text)
    im = Image.new("L", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), 0)
    ImageDraw.Draw(im).text((pad - x0, pad - y0), text, font=font, fill=255)
    return np.asarray(im, np.float32) / 255.0


def phone_photo(rng: np.random.Generator) -> Image.Image:
    ink = ink_of(LINE, "shadows-into-light", 96, pad=140)
    h, w = ink.shape
    paper, pen = np.array([238, 228, 196], np.float32), np.array([35, 45, 120], np.float32)
    rgb = paper * (1 - ink[..., None]) + pen * ink[..., None]
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    light = 1.0 - 0.35 * xx * (0.5 + yy)  # falls off to the right and down
    light *= 1.0 - 0.25 * np.clip((0.35 - ((xx - 0.1) ** 2 + (yy - 0.9) ** 2) ** 0.5) / 0.35, 0, 1)  # shadow
    rgb = np.clip(rgb * light[..., None] + rng.normal(0, 3.0, rgb.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(0.8))
    img = img.rotate(4.0, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(150, 140, 120))
    return img.rotate(90, expand=True)  # the sensor's way round; EXIF says how to turn it back


def clean_word(text: str) -> Image.Image:
    ink = ink_of(text, "homemade-apple", 72, pad=12)
    return Image.fromarray((255 - ink * 215).astype(np.uint8))


def main() -> None:
    rng = np.random.default_rng(0)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    phone_photo(rng).save(HERE / "phone_photo_line.jpg", quality=72, exif=exif.tobytes())
    (HERE / "clean_words").mkdir(exist_ok=True)
    for word in WORDS:
        clean_word(word).save(HERE / "clean_words" / f"{word}.png", optimize=True)
    print(f"wrote {HERE / 'phone_photo_line.jpg'} and {len(WORDS)} words in {HERE / 'clean_words'}")


if __name__ == "__main__":
    main()
