"""Style images as people have them -> word images the way ScriptViT saw words in training.

ScriptViT (arXiv 2511.18307) conditions on k word images of one writer, each 32 px high,
dark ink on white, tightly cropped. People have phone photos of a note, scans of a page, a
transparent PNG from a tablet. `prepare_style_images` turns any of those into such words:

    load      path | PIL | numpy -> grey float [H, W] in [0, 1], 1 = white: EXIF orientation
              applied, alpha composited on white, 16-bit and palette images scaled/expanded;
              sides under 8 or over 20 000 px are refused; over 2500 px it is reduced
    polarity  flattened and thresholded both ways round: the reading whose "ink" is thin
              strokes (not the thicker ground between them) wins; dark-on-light on a tie
    flatten   paper brightness estimated by a grey *closing* (max then min filter, a window
              far wider than a stroke, so ink disappears from it) on a block-max-reduced copy,
              smoothed and divided out: paper = 1 everywhere, shadows and gradients gone
    ink       Otsu threshold on the flattened image -> blobs; kept when they have a dark core
              (hysteresis), are not much thicker than the median blob's strokes (the table
              around the paper, a thumb) and not specks. A *soft* ink map in [0, 1] is
              stretched between the paper grain and the typical stroke darkness, so
              anti-aliased edges stay grey (the model saw grey edges)
    deskew    (optional) the rotation within ±8° that makes the horizontal ink profile
              sharpest (text lines are bands); the ink map is rotated back
    rules     ruled lines (notebook paper) erased: straight ink runs along a row or column
              longer than a quarter of the image and 30 stroke widths
    lines     row profile -> line cores: within each block of rows between blank rows, runs
              of rows with >= 30 % of the block's typical row ink (lines whose descenders
              touch the next line's ascenders still part at the thin rows between them);
              cores much lower than the others (a T's bar, a row of loops) are not lines.
              Every blob goes to the line whose core its centre is nearest, so descenders
              that hang into the next line's band stay with their own word
    words     within a line, columns without ink, read after undoing the slant (the shear
              that makes the column profile sharpest); a run of them wider than `WORD_GAP`
              x the line's x-height separates two words. Letter gaps are ~0.1-0.4
              x-heights, word spaces ~0.5-1.2; 0.45 split 67 of 95 test lines written in 19
              script fonts (whose spaces are narrower than most hands') and kept 91 of 95
              single words whole. A "word" smaller than half an x-height both ways (a stray
              dot) is dropped; soft edge pixels go with their nearest blob
    place     each word scaled so its line's x-height becomes `X_HEIGHT` px and its baseline
              lands on row `BASELINE` of 32, as `render.py` lays out every training word; ink
              that would leave the 32 rows shrinks the word about its baseline instead; crop
              to the ink ± `MARGIN` px like the training words

x-height and baseline come from the row profile of a line (`core_band`). Words of one line
share their line's numbers, so they keep their relative size; a lone word is measured on its
own (noisier: ~2 px on a 9 px x-height). Every problem with the input is one `UserError`
naming the image.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from .errors import UserError

HEIGHT = 32  # rows of a model word image
X_HEIGHT = 9.0  # px; training writers draw 7.5-10.5 (render.WriterStyle), median ~9
BASELINE = 22.0  # row of the baseline; training writers 21-23
EDGE = 1.25  # rows kept free at top and bottom (as render.EDGE)
MARGIN = 2  # paper columns left and right of the ink (as the training crops)
INK_TONE = 30  # grey level of solid ink; training words' darkest pixel has median ~25
MIN_SIDE, MAX_SIDE = 8, 20_000  # px; anything outside is not a photo of handwriting
WORK_SIDE = 2500  # larger inputs are reduced first: a page photo still has x-height >> 9 px
MIN_CONTRAST = 0.15  # ink must be at least this much darker than the paper (fraction of white)
WORD_GAP = 0.45  # a blank run of columns wider than this many x-heights separates words
DESKEW_MAX = 8.0  # degrees

ImageLike = str | Path | Image.Image | np.ndarray


# --- 1. load ----------------------------------------------------------------------------------
def _check_size(h: int, w: int, name: str) -> None:
    if min(h, w) < MIN_SIDE:
        raise UserError(f"{name} is {w}x{h} px: too small to hold handwriting (need >= {MIN_SIDE} px)")
    if max(h, w) > MAX_SIDE:
        raise UserError(f"{name} is {w}x{h} px: too large (at most {MAX_SIDE} px a side; crop or shrink it)")


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _from_array(a: np.ndarray, name: str) -> np.ndarray:
    """uint8/uint16/bool/float array [H, W] | [H, W, 1|3|4] -> grey float32 [H, W], 1 = white."""
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        pass
    elif a.ndim != 2:
        raise UserError(f"{name}: expected an image array [H, W] or [H, W, 3|4], got shape {a.shape}")
    _check_size(a.shape[0], a.shape[1], name)
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif a.dtype == np.uint16 or (a.dtype.kind in "iu" and a.max(initial=0) > 255):
        a = a.astype(np.float32) / 65535.0
    elif a.dtype.kind in "iu":
        a = a.astype(np.float32) / 255.0
    elif a.dtype.kind == "f":
        a = np.nan_to_num(a.astype(np.float32))
        a = a / 255.0 if a.max(initial=0) > 1.0 else a
    else:
        raise UserError(f"{name}: unsupported array type {a.dtype}")
    a = np.clip(a, 0.0, 1.0)
    if a.ndim == 2:
        return a
    if a.shape[2] == 1:
        return a[..., 0]
    grey = _luminance(a[..., :3])
    if a.shape[2] == 4:
        alpha = a[..., 3]
        on_white = grey * alpha + (1.0 - alpha)
        # ink drawn *only* in the alpha channel (any colour on transparency, even white)
        if np.ptp(on_white) < MIN_CONTRAST and np.ptp(alpha) >= MIN_CONTRAST:
            return 1.0 - alpha
        return on_white
    return grey


def _from_pil(img: Image.Image, name: str) -> np.ndarray:
    _check_size(img.height, img.width, name)
    try:
        img = ImageOps.exif_transpose(img)  # phone photos store "rotate me" in EXIF
    except Exception:  # a broken EXIF block: take the pixels as they are
        pass
    if img.mode in ("P", "PA", "LA", "La", "RGBa") or "transparency" in img.info:
        img = img.convert("RGBA")
    if max(img.size) >= 2 * WORK_SIDE and img.mode in ("L", "RGB", "RGBA"):
        img = img.reduce(max(img.size) // WORK_SIDE)  # box-average big photos early: less memory
    if img.mode.startswith("I;16") or img.mode == "I":  # 16-bit (or 32-bit int) grey
        a = np.asarray(img)
        return _from_array(a.astype(np.uint16) if a.max(initial=0) > 255 else a.astype(np.uint8), name)
    if img.mode == "F":
        return _from_array(np.asarray(img), name)
    if img.mode not in ("L", "RGB", "RGBA"):
        img = img.convert("RGB")  # 1, CMYK, YCbCr, LAB, HSV
    return _from_array(np.asarray(img), name)


def load_grey(src: ImageLike, name: str | None = None) -> np.ndarray:
    """Path, PIL image or array -> grey float32 [H, W] in [0, 1], 1 = white (see module doc)."""
    if isinstance(src, (str, Path)):
        path = Path(src)
        name = name or str(path)
        if not path.is_file():
            raise UserError(
                f"cannot read style image {name}: {'a folder' if path.is_dir() else 'no such file'}"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # big photos are fine
                img = Image.open(path)
            with img:
                _check_size(img.height, img.width, name)  # before decoding a huge file
                f = WORK_SIDE / max(img.size)
                if f < 0.5:  # JPEG decodes at 1/2, 1/4 or 1/8 scale for free
                    img.draft(img.mode, (int(img.width * f) + 1, int(img.height * f) + 1))
                img.load()
                return _from_pil(img, name)
        except UserError:
            raise
        except Image.DecompressionBombError:
            raise UserError(f"{name} is too large to be a photo of handwriting") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise UserError(f"cannot read style image {name}: not an image, or a corrupt one ({e})") from None
    name = name or "style image"
    if isinstance(src, Image.Image):
        return _from_pil(src, name)
    if isinstance(src, np.ndarray):
        return _from_array(src, name)
    raise UserError(f"{name}: expected a file path, a PIL image or a numpy array, got {type(src).__name__}")


# --- 2. polarity, illumination, ink ------------------------------------------------------------
def _reduce(grey: np.ndarray, side: int) -> np.ndarray:
    h, w = grey.shape
    f = side / max(h, w)
    if f >= 1:
        return grey
    size = (max(MIN_SIDE, round(w * f)), max(MIN_SIDE, round(h * f)))
    return np.asarray(Image.fromarray(grey, "F").resize(size, Image.Resampling.BOX))


def estimate_background(grey: np.ndarray) -> np.ndarray:
    """Paper brightness under every pixel of dark-on-light `grey` [H, W] (same shape).

    A grey closing with a window of a quarter of the short side (15..301 px) removes every
    dark structure narrower than the window - strokes - and keeps the slow light gradient.
    It runs on a copy reduced by block *maxima* (the paper, not the ink, survives), then
    is smoothed and stretched back.
    """
    h, w = grey.shape
    window = int(np.clip(min(h, w) / 4, 15, 301))
    d = max(1, window // 15)  # reduce so the window is ~15 px
    hp, wp = -(-h // d) * d, -(-w // d) * d
    padded = np.pad(grey, ((0, hp - h), (0, wp - w)), mode="edge")
    small = padded.reshape(hp // d, d, wp // d, d).max(axis=(1, 3))  # [h/d, w/d]
    size = max(3, window // d) | 1
    bg = ndimage.grey_closing(small, size=(size, size), mode="nearest")
    bg = ndimage.uniform_filter(bg, size=size, mode="nearest")
    bg = np.asarray(Image.fromarray(bg.astype(np.float32), "F").resize((wp, hp), Image.Resampling.BILINEAR))
    return np.maximum(bg[:h, :w], grey)  # paper is never darker than what we see


def otsu(values: np.ndarray, bins: int = 256) -> float:
    """Threshold in [0, 1] that maximises the between-class variance of `values`."""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(hist.sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centres)
    w1 = 1 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m0[-1] * w0 - m0) ** 2 / (w0 * w1)
    return float(edges[int(np.nanargmax(np.where((w0 > 0) & (w1 > 0), between, np.nan))) + 1])


def stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width of a binary ink mask: 2 x area / edge pixels."""
    inner = ndimage.binary_erosion(mask, structure=np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]]))
    edge = int(mask.sum() - inner.sum())
    return 2.0 * mask.sum() / edge if edge else 1.0


def light_on_dark(grey: np.ndarray) -> bool:
    """True when the strokes are lighter than their ground (chalk, white pen, dark mode).

    Flatten the image both ways round and threshold it: taken the right way round the ink is
    thin strokes; taken the wrong way round the "ink" is the ground between the strokes -
    counters, letter gaps, line gaps - which is thicker. Dark-on-light wins unless the other
    reading is clearly thinner. Glare and shadows are flattened away in both readings.
    """

    def thickness(g: np.ndarray) -> float:
        flat = g / np.maximum(estimate_background(g), 1e-3)
        mask = flat < min(otsu(np.clip(flat, 0, 1)), 1 - MIN_CONTRAST)
        return stroke_width(mask) if mask.sum() >= 10 else np.inf

    return thickness(1.0 - grey) < 0.7 * thickness(grey)


def writing_mask(flat: np.ndarray, t: float) -> tuple[np.ndarray, float]:
    """Pixels darker than `t` in flattened `flat` -> the blobs that are writing, stroke width.

    * hysteresis: a blob must reach well below `t` somewhere (paper grain and JPEG noise
      only just cross it; every real stroke has a dark core);
    * the typical stroke half-width is the median over blobs of their largest inscribed
      radius; blobs more than 3x as thick are not writing (the table around the paper, a
      thumb, a shadow the flattening left, an ink blot) and blobs smaller than half a
      stroke-sized square are specks.
    """
    mask = flat < t
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return mask, 1.0
    lab = labels[mask]  # per-blob statistics over the ink pixels only (fast on big pages)
    strong = (t + float(np.percentile(flat[mask], 10))) / 2
    darkest = np.full(n + 1, np.inf)
    np.minimum.at(darkest, lab, flat[mask])
    areas = np.bincount(lab, minlength=n + 1)
    radius = np.zeros(n + 1)
    np.maximum.at(radius, lab, ndimage.distance_transform_edt(mask)[mask])
    darkest, areas, radius = darkest[1:], areas[1:], radius[1:]
    keep = (darkest < strong) & (areas >= 3)
    if not keep.any():
        return np.zeros_like(mask), 1.0
    r0 = float(np.median(radius[keep]))
    sw = 2.0 * r0
    keep &= (radius <= 3 * r0 + 1) & (areas >= 0.5 * sw * sw)
    return np.concatenate([[False], keep])[labels], sw


def ink_map(grey: np.ndarray, name: str = "style image") -> tuple[np.ndarray, float]:
    """grey [H, W] (1 = white) -> soft ink [H, W] in [0, 1] (1 = solid ink), stroke width px.

    Raises UserError when there is nothing darker than the paper.
    """
    probe = ndimage.uniform_filter(_reduce(grey, 800), size=3)  # small, and blind to single-pixel noise
    if probe.max() - probe.min() < MIN_CONTRAST:
        raise UserError(f"no ink found in {name}: the image is (nearly) one flat colour")
    if light_on_dark(probe):
        grey = 1.0 - grey
    flat = np.clip(grey / np.maximum(estimate_background(grey), 1e-3), 0, 1)  # paper = 1
    t = otsu(flat)
    writing, sw = writing_mask(flat, t)
    if writing.sum() < 10:
        raise UserError(f"no ink found in {name}: no marks that look like writing")
    solid = float(np.percentile(flat[writing], 30))  # a typical stroke core
    if 1.0 - solid < MIN_CONTRAST:
        raise UserError(f"no ink found in {name}: nothing is clearly darker than the paper")
    paper = flat[flat >= t]
    grain = 1.4826 * float(np.median(np.abs(paper - np.median(paper))))  # robust std of the paper
    cut = min(1.0 - max(3 * grain, 0.04), t + 0.5 * (1 - t))  # lighter than this: paper
    ink = np.clip((cut - flat) / max(cut - solid, 1e-3), 0, 1)
    # keep the soft edges around the writing, nothing else
    near = ndimage.binary_dilation(writing, iterations=max(1, round(sw / 2)))
    return np.where(near, ink, 0.0).astype(np.float32), sw


# --- 3. deskew --------------------------------------------------------------------------------
def skew_angle(ink: np.ndarray, max_deg: float = DESKEW_MAX) -> float:
    """Degrees to rotate `ink` (counter-clockwise, scipy's sense) so its text lines are level."""
    small = _reduce(ink, 600)
    ys, xs = np.nonzero(small > 0.3)
    if len(ys) < 20:
        return 0.0
    wts = small[ys, xs]
    x, y = xs - xs.mean(), ys - ys.mean()

    def sharpness(deg: float) -> float:
        a = np.deg2rad(deg)
        rows = np.round(y * np.cos(a) - x * np.sin(a)).astype(int)
        hist = np.bincount(rows - rows.min(), weights=wts)
        return float((hist**2).sum())

    coarse = np.arange(-max_deg, max_deg + 1e-6, 0.5)
    best = coarse[int(np.argmax([sharpness(a) for a in coarse]))]
    fine = np.arange(best - 0.5, best + 0.5 + 1e-6, 0.1)
    best = float(fine[int(np.argmax([sharpness(a) for a in fine]))])
    return best if abs(best) >= 0.3 else 0.0


def deskew(ink: np.ndarray) -> tuple[np.ndarray, float]:
    angle = skew_angle(ink)
    if angle == 0.0:
        return ink, 0.0
    return np.clip(ndimage.rotate(ink, angle, reshape=True, order=1, cval=0.0), 0, 1), angle


def remove_rules(ink: np.ndarray, stroke: float) -> np.ndarray:
    """Erase ruled lines (notebook paper, a form's boxes): runs of ink along a row or a column
    longer than a quarter of the image and 30 strokes - no letter has such a stroke."""
    out = ink.copy()
    for axis in (1, 0):
        n = ink.shape[axis]
        length = int(max(30 * stroke, n / 4))
        if length >= n:
            continue
        on = (ink > 0.25).astype(np.float32)
        full = ndimage.uniform_filter1d(on, length, axis=axis) > 1 - 1e-3  # centre of a full run
        rule = ndimage.uniform_filter1d(full.astype(np.float32), length, axis=axis) > 0  # the run
        rule = ndimage.binary_dilation(rule, iterations=1) & (ink > 0)  # and its soft edges
        out[rule] = 0.0
    return out


# --- 4. lines, x-height, words -----------------------------------------------------------------
def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of every run of True."""
    d = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]))


def core_band(ink: np.ndarray) -> tuple[int, int]:
    """Rows [top, bottom) of the x-height band of one line's (soft) ink.

    The band is the run of rows with the largest total of (row ink - 0.4 x the densest row):
    rows of the x-band are dense, ascender and descender rows thin, and a thin row inside the
    band (between an 'e's bar and its bottom) costs less than the dense rows around it gain.
    On the training words this finds the x-height within ~2 px and the baseline within ~1.2
    px from one 32-px word (no bias); a whole line, with many letters, is far steadier.
    """
    prof = ink.sum(axis=1).astype(np.float64)
    gain = prof - 0.4 * prof.max()
    best, run, start, top, bottom = -np.inf, 0.0, 0, 0, 1
    for i, g in enumerate(gain):  # maximum-sum run (Kadane)
        run, start = (g, i) if run <= 0 else (run + g, start)
        if run > best:
            best, top, bottom = run, start, i + 1
    rows = np.nonzero(prof > 0.02 * prof.max())[0]
    tall = rows[-1] + 1 - rows[0]
    # all-caps words and digits have no x-band below their tops: call 0.8 of the ink the x-height;
    # and an x-band under a quarter of the ink is a long horizontal stroke, not the x-band
    x_h = int(np.clip(bottom - top, max(1, round(0.25 * tall)), max(1, round(0.8 * tall))))
    return int(bottom - x_h), int(bottom)


def line_of_blobs(mask: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Blob labels 1..n of `mask` -> their line index (top to bottom), as [n + 1] ints (0 -> -1)."""
    prof = mask.sum(axis=1).astype(np.float64)
    cores = []
    for a, b in _runs(prof > 0):  # blocks of rows between blank rows; lines may still touch
        p = ndimage.uniform_filter1d(prof[a:b], size=3)
        cores += [(a + a2, a + b2) for a2, b2 in _runs(p >= 0.3 * np.percentile(p[p > 0], 90))]
    heights = [b - a for a, b in cores]
    low = max(0.3 * max(heights), 0.5 * float(np.median(heights)))
    cores = [(a, b) for a, b in cores if b - a >= low]  # a T's bar, an i's dot, a row of loops: not lines
    ys = np.nonzero(mask)[0]
    lab = labels[mask]
    centres = np.bincount(lab, weights=ys, minlength=n + 1)[1:] / np.bincount(lab, minlength=n + 1)[1:]
    dist = np.stack([np.maximum(0, np.maximum(a - centres, centres - (b - 1))) for a, b in cores])
    return np.concatenate([[-1], dist.argmin(axis=0)])


def slant(ys: np.ndarray, xs: np.ndarray) -> float:
    """Shear s (dx per dy up) that makes the columns of ink points sharpest: upright strokes
    then stand in single columns, and the gaps between slanted words open up."""
    if len(ys) > 40_000:
        keep = np.random.default_rng(0).choice(len(ys), 40_000, replace=False)
        ys, xs = ys[keep], xs[keep]

    def sharpness(s: float) -> float:
        cols = np.round(xs + s * (ys - ys.max())).astype(int)
        return float((np.bincount(cols - cols.min()).astype(np.float64) ** 2).sum())

    shears = np.arange(-0.7, 1.0 + 1e-6, 0.05)
    return float(shears[int(np.argmax([sharpness(s) for s in shears]))])


def word_of_blobs(ys, xs, lab, blobs: np.ndarray, x_height: float) -> dict[int, int]:
    """Ink points (rows, cols, blob label) of one line -> {blob label: word index, left to right}.

    Columns are read after undoing the slant; a run of empty columns wider than `WORD_GAP` x
    the x-height separates two words. A blob lies in one word (it cannot cross an empty column).
    """
    xs_u = np.round(xs + slant(ys, xs) * (ys - ys.max())).astype(int)
    x0 = xs_u.min()
    used = np.zeros(xs_u.max() - x0 + 1, bool)
    used[xs_u - x0] = True
    word_at = np.zeros(len(used), int)  # column -> word index
    for a, _ in [(a, b) for a, b in _runs(~used) if b - a > WORD_GAP * x_height]:
        word_at[a:] += 1
    left = ndimage.minimum(xs_u - x0, lab, blobs).astype(int)
    return {int(b): int(word_at[c]) for b, c in zip(blobs, left)}


def segment(ink: np.ndarray, split: bool = True) -> list[tuple[np.ndarray, float, float]]:
    """Soft ink of an image -> its words as (soft ink crop, line x-height, baseline row in the crop).

    Every ink pixel belongs to the blob nearest to it (so soft edges go with their stroke),
    every blob to a line, every blob of a line to a word.
    """
    mask = ink > 0.5
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return []
    _, (iy, ix) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    owner = labels[iy, ix]  # [H, W] nearest blob of every pixel
    line_of = line_of_blobs(mask, labels, n)
    ys, xs = np.nonzero(mask)
    lab = labels[ys, xs]
    out = []
    for line in range(line_of.max() + 1):
        blobs = np.nonzero(line_of == line)[0]
        if len(blobs) == 0:
            continue
        on = line_of[lab] == line
        r0, r1 = max(ys[on].min() - 2, 0), min(ys[on].max() + 3, ink.shape[0])  # + soft edges
        line_ink = np.where(np.isin(owner[r0:r1], blobs), ink[r0:r1], 0.0)
        top, bottom = core_band(line_ink)
        x_height = float(bottom - top)
        word_of = word_of_blobs(ys[on], xs[on], lab[on], blobs, x_height) if split else {}
        words: dict[int, list[int]] = {}
        for b in blobs:
            words.setdefault(word_of.get(int(b), 0), []).append(int(b))
        for w in sorted(words):
            sel = np.isin(owner[r0:r1], words[w]) & (line_ink > 0)
            rr, cc = np.nonzero(sel.any(axis=1))[0], np.nonzero(sel.any(axis=0))[0]
            if rr[-1] - rr[0] + 1 < 0.5 * x_height and cc[-1] - cc[0] + 1 < 0.5 * x_height:
                continue  # a dot or a speck on its own
            crop = np.where(sel, line_ink, 0.0)[:, cc[0] : cc[-1] + 1]
            out.append((crop, x_height, float(bottom)))
    return out


# --- 5. placement -------------------------------------------------------------------------------
def place_word(ink: np.ndarray, x_height: float, baseline: float) -> np.ndarray | None:
    """Soft ink [h, w] of one word (its columns, any rows), its line's x-height and baseline row
    (source px) -> uint8 [32, w'] laid out like a training word; None if nothing is left."""
    rows = np.nonzero((ink > 0.05).any(axis=1))[0]
    cols = np.nonzero((ink > 0.05).any(axis=0))[0]
    if len(rows) == 0:
        return None
    top, bottom, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    s = X_HEIGHT / max(x_height, 1.0)  # output px per source px
    up, down = (baseline - top) * s, (bottom - baseline) * s  # ink above / below the baseline
    room = HEIGHT - 2 * EDGE
    if up + down > room:  # shrink about the baseline
        s *= room / (up + down)
        up, down = up * room / (up + down), down * room / (up + down)
        base = EDGE + up
    else:
        base = float(np.clip(BASELINE, EDGE + up, HEIGHT - EDGE - down))
    out_w = int(np.ceil((x1 - x0) * s)) + 2 * MARGIN + 2
    # source box that maps onto the [32, out_w] output, padded so it lies inside the array
    left, src_top = x0 - (MARGIN + 1) / s, baseline - base / s
    box_w, box_h = out_w / s, HEIGHT / s
    pad = int(np.ceil(max(box_w, box_h))) + 2
    padded = np.pad(ink.astype(np.float32), pad)
    box = (left + pad, src_top + pad, left + pad + box_w, src_top + pad + box_h)
    small = Image.fromarray(padded, "F").resize((out_w, HEIGHT), Image.Resampling.BICUBIC, box=box)
    img = np.round(255.0 - np.clip(np.asarray(small), 0, 1) * (255 - INK_TONE)).astype(np.uint8)
    used = np.nonzero((img < 200).any(axis=0))[0]
    if len(used) == 0:
        return None
    return np.ascontiguousarray(img[:, max(used[0] - MARGIN, 0) : used[-1] + MARGIN + 1])


# --- the whole pipeline -------------------------------------------------------------------------
def preprocess_image(
    src: ImageLike, *, name: str | None = None, split: bool = True, deskew_lines: bool = True
) -> list[np.ndarray]:
    """One style image (a word, a line or a page) -> its words as uint8 [32, w] (255 = paper).

    `split=False` keeps every line whole (for an image that is one word with wide letter gaps).
    """
    name = name or (str(src) if isinstance(src, (str, Path)) else "style image")
    grey = _reduce(load_grey(src, name), WORK_SIDE)
    ink, stroke = ink_map(grey, name)
    if deskew_lines:
        ink, _ = deskew(ink)
    ink = remove_rules(ink, stroke)
    words = [place_word(crop, x_h, base) for crop, x_h, base in segment(ink, split)]
    words = [w for w in words if w is not None]
    if not words:
        raise UserError(f"no ink found in {name}: no word-sized marks")
    return words


def prepare_style_images(
    sources: Sequence[ImageLike], *, split: bool = True, deskew_lines: bool = True
) -> tuple[list[np.ndarray], list[str]]:
    """Many style images -> (all their words, uint8 [32, w]; one note per image on what was found)."""
    if isinstance(sources, (str, Path, Image.Image, np.ndarray)):
        sources = [sources]
    if len(sources) == 0:
        raise UserError("no style images given: pass one or more photos or scans of your handwriting")
    words, notes = [], []
    for i, src in enumerate(sources):
        name = str(src) if isinstance(src, (str, Path)) else f"style image #{i + 1}"
        got = preprocess_image(src, name=name, split=split, deskew_lines=deskew_lines)
        words += got
        notes.append(f"{name}: {len(got)} word{'s' * (len(got) != 1)}")
    return words, notes
