"""Render a word as a particular imaginary writer would write it: 32 px high, like IAM words.

A *writer* is a font plus a `WriterStyle` drawn once from the writer's own random generator:
slant, stroke thickness, letter spacing, x-height, baseline height and wobble, ink tone. A font
alone writes every word identically; the style makes many writers out of one font, and each
render adds small per-sample variation (elastic jitter, rotation, scale, pressure, noise) so
that the same writer never writes the same word twice in exactly the same way.

The pipeline works at S = 4 times the final resolution, then box-averages S x S blocks
(antialiasing):

    draw each character at its kerned position (+ spacing, + baseline wobble)   ink [S*32, W]
    -> one inverse warp: elastic field + rotation + slant + width/size           ink [S*32, W']
    -> S x S mean -> ink tone, pressure, noise -> crop to the ink +- 2 px       uint8 [32, w]

The vertical layout is fixed like a line of IAM text: the baseline sits at row `style.baseline`
(≈ 22 of 32), ascenders and capitals rise above it, descenders fall below; a sample whose ink
would leave the 32 rows is shrunk about its baseline instead of clipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter
from scipy.ndimage import map_coordinates

from .fonts import coverage, load_font

HEIGHT = 32  # output rows
S = 4  # supersampling factor
REF = 200  # font size (px) at which font metrics are measured
EDGE = 1.25  # rows kept free of ink at top and bottom (room for the elastic jitter)


@dataclass
class WriterStyle:
    """Writer-level parameters, in output pixels unless said otherwise."""

    x_height: float  # height of 'x'
    baseline: float  # baseline row, from the top
    slant: float  # extra shear, dx per dy (> 0 leans right)
    width: float  # horizontal stretch factor
    spacing: float  # extra gap between letters, in x-heights
    thickness: float  # target stroke width
    wobble: float  # baseline wobble amplitude
    wobble_period: float  # wobble wavelength, in x-heights
    ink: float  # gray level of full ink (0 = black)
    jitter: float  # elastic displacement scale
    noise: float  # std of additive pixel noise (gray levels)
    glyphs: float = 0.0  # strength of the writer's own letter shapes (0 = the font's glyphs as drawn)
    glyph_seed: int = 0  # draws those shapes: one fixed change per character, the same in every word

    @classmethod
    def sample(cls, rng: np.random.Generator) -> WriterStyle:
        u = rng.uniform
        return cls(
            x_height=u(7.5, 10.5),
            baseline=u(21.0, 23.0),
            slant=u(-0.15, 0.3),
            width=u(0.85, 1.2),
            spacing=u(-0.05, 0.2),
            thickness=u(1.1, 2.3),
            wobble=u(0.0, 0.8),
            wobble_period=u(3.0, 8.0),
            ink=u(0.0, 90.0),
            jitter=u(0.25, 0.6),
            noise=u(0.0, 4.0),
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        seed = int(d.pop("glyph_seed"))
        out = {k: round(float(v), 4) for k, v in d.items()}
        if self.glyphs <= 0:  # writers of the font's own letters keep the dict (and shard keys) they had
            del out["glyphs"]
        else:
            out["glyph_seed"] = seed
        return out

    def glyph(self, ch: str) -> tuple[float, float, float, float]:
        """This writer's fixed change of character `ch`: (x scale, y scale, shear, baseline shift in
        x-heights) - e.g. an 'a' always narrower and more upright than the font's, a 'g' whose
        descender is always longer. Drawn from (glyph_seed, ch) only, so every word agrees."""
        if self.glyphs <= 0:
            return 1.0, 1.0, 0.0, 0.0
        r = np.random.default_rng([int(self.glyph_seed), ord(ch)])
        g = self.glyphs
        return (
            float(np.exp(np.clip(r.normal(0, 0.12 * g), -0.4, 0.4))),
            float(np.exp(np.clip(r.normal(0, 0.08 * g), -0.3, 0.3))),
            float(np.clip(r.normal(0, 0.12 * g), -0.4, 0.4)),
            float(np.clip(r.normal(0, 0.06 * g), -0.2, 0.2)),
        )


@dataclass(frozen=True)
class FontMetrics:
    """Per-font shape facts, as fractions of the font size."""

    x_height: float
    ascender: float  # height of 'bdhkl' above the baseline
    descender: float  # depth of 'gjpqy' below it
    stroke: float  # typical stroke width


@lru_cache(maxsize=256)
def font_metrics(path: str) -> FontMetrics:
    font = load_font(path, REF)
    have = coverage(path)
    ascent, descent = font.getmetrics()

    def median_y(chars, side, default):  # bbox with anchor "ls": y = 0 is the baseline, up < 0
        ys = [font.getbbox(c, anchor="ls")[side] for c in chars if c in have]
        return abs(float(np.median(ys))) if ys else default

    x_h = median_y("acemnorsuvwxz", 1, 0.45 * ascent)
    asc = median_y("bdfhklt", 1, 0.8 * ascent)
    desc = median_y("gjpqy", 3, 0.8 * descent)
    # stroke width ~ 2 * area / perimeter of the ink of a few round letters
    word = "".join(c for c in "ohnmae" if c in have) or "".join(sorted(have - {" "}))[:6]
    x0, y0, x1, y1 = font.getbbox(word or " ")
    im = Image.new("L", (x1 - x0 + 4, y1 - y0 + 4), 0)
    ImageDraw.Draw(im).text((2 - x0, 2 - y0), word, font=font, fill=255)
    mask = np.asarray(im) > 127
    edge = mask & ~(np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1))
    stroke = 2 * mask.sum() / edge.sum() if edge.sum() else 0.08 * REF
    return FontMetrics(max(x_h, 1) / REF, max(asc, 1) / REF, max(desc, 1) / REF, stroke / REF)


def render_text(font_path: str, style: WriterStyle, text: str, rng: np.random.Generator) -> np.ndarray:
    """One sample of `text` by the writer (font, style) -> uint8 [32, W], 255 = paper."""
    if not text:
        raise ValueError("cannot render an empty word")
    m = font_metrics(str(font_path))
    # --- size: x-height from the style, capped so ascenders/descenders keep their room
    fit = (HEIGHT - 2 * EDGE) / (m.ascender + m.descender)  # largest size whose ascenders+descenders fit
    # in caps-only fonts 'x' is as tall as 'h': count such an x-height as 0.65 of the ascender
    x_ratio = min(m.x_height, 0.65 * m.ascender)
    size0 = min(style.x_height / x_ratio, fit)  # the writer's usual font size (output px)
    size = min(size0 * np.exp(rng.normal(0, 0.04)), fit)
    x_h = size * x_ratio
    # the baseline moves from the writer's habit only as far as the font's ascenders/descenders need
    baseline = float(np.clip(style.baseline, EDGE + size * m.ascender, HEIGHT - EDGE - size * m.descender))
    font = load_font(font_path, max(4, round(size * S)))
    # --- stroke width (decided at the usual size): thicken with a stroke, or thin by erosion
    delta = (style.thickness - m.stroke * size0) * S / 2  # per side, hi-res px
    stroke_w = float(np.clip(delta, 0, 4))  # Pillow >= 11.1 takes fractional stroke widths
    erode = delta <= -1.0 and m.stroke * size0 * S >= 4

    # --- draw characters one by one: kerned positions + spacing + wobbly baseline
    gap = style.spacing * x_h * S
    pad = int((x_h + 4) * S)  # room for swashes that reach left of a letter's origin
    varied = style.glyphs > 0  # letters of the writer's own (`WriterStyle.glyph`)
    advance = [font.getlength(ch) for ch in text]
    glyphs = [style.glyph(ch) for ch in text] if varied else []
    extra = [(sx - 1) * adv for (sx, *_), adv in zip(glyphs, advance)]  # a wider letter moves the rest
    width = int(font.getlength(text) + gap * len(text) + 2 * pad + 2 * stroke_w + 1 + max(0.0, sum(extra)))
    width += pad if varied else 0  # sheared letters may lean past the last one's box
    rows = HEIGHT * S * 2  # generous; the warp below picks the final 32*S rows
    base_y = rows / 2
    canvas = Image.new("L", (width, rows), 0)  # ink = 255 while drawing
    draw = ImageDraw.Draw(canvas)
    letter = dict(font=font, fill=255, anchor="ls", stroke_width=stroke_w, stroke_fill=255)
    phase = rng.uniform(0, 2 * np.pi)
    period = style.wobble_period * x_h * S
    shift = 0.0
    for i, ch in enumerate(text):
        x = pad + font.getlength(text[: i + 1]) - advance[i] + gap * i + shift  # keeps kerning
        x += rng.normal(0, 0.04) * x_h * S  # a hand never places letters exactly
        y = base_y + S * (style.wobble * np.sin(2 * np.pi * x / period + phase) + rng.normal(0, 0.2))
        if not varied:
            draw.text((x, y), ch, **letter)
            continue
        sx, sy, sh, dy = glyphs[i]
        layer = Image.new("L", canvas.size, 0)
        ImageDraw.Draw(layer).text((x, y), ch, **letter)
        # forward map about the letter's baseline centre o: p' = o + [[sx, sh*sy], [0, sy]] (p - o) + (0, dy);
        # PIL's AFFINE wants the inverse (output pixel -> where to read)
        ox, oy = x + advance[i] / 2, y
        ty = dy * x_h * S
        a, b, e = 1 / sx, -sh / sx, 1 / sy
        c = ox - a * (ox + (sx - 1) * advance[i] / 2) - b * (oy + ty)
        f = oy - e * (oy + ty)
        inverse = (a, b, c, 0, e, f)
        layer = layer.transform(layer.size, Image.Transform.AFFINE, inverse, Image.Resampling.BILINEAR)
        canvas = ImageChops.lighter(canvas, layer)
        shift += extra[i]
    if erode:
        canvas = canvas.filter(ImageFilter.MinFilter(3))
    ink = np.asarray(canvas, dtype=np.float32) / 255.0  # [2*32*S, width]
    return _finish(ink, base_y, baseline, style, rng)


def _finish(
    ink: np.ndarray, base_y: float, baseline: float, style: WriterStyle, rng: np.random.Generator
) -> np.ndarray:
    """Warp the hi-res ink into the 32-row layout, downsample, add tone and noise."""
    ys, xs = np.nonzero(ink > 0.2)
    if len(ys) == 0:
        raise ValueError("the font drew no ink for this word")
    pts = np.stack([xs - 0.0, ys - base_y])  # [2, N], relative to the baseline
    # forward linear map (x right, y down): rotate(theta) @ shear/stretch
    theta = np.deg2rad(rng.normal(0, 1.0))
    slant = style.slant + rng.normal(0, 0.03)
    shear = np.array([[style.width * np.exp(rng.normal(0, 0.03)), -slant], [0.0, 1.0]])
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    A = rot @ shear
    out = A @ pts
    # shrink about the baseline if the ink would come closer than EDGE to the top or bottom
    b = baseline * S
    top, bottom = out[1].min(), out[1].max()
    f = min(1.0, (b - EDGE * S) / max(-top, 1e-6), (HEIGHT * S - EDGE * S - b) / max(bottom, 1e-6))
    A, out = A * f, out * f
    margin = 4 * S
    x0 = out[0].min() - margin
    cols = int(np.ceil((out[0].max() - x0 + margin) / S)) * S
    # inverse map: for every output pixel, where to read the hi-res ink
    yy, xx = np.mgrid[0 : HEIGHT * S, 0:cols].astype(np.float32)  # [32*S, cols]
    dx, dy = _elastic(yy.shape, style.jitter * S, rng)
    rel = np.stack([xx.ravel() + x0 + dx.ravel(), yy.ravel() - b + dy.ravel()])
    src = np.linalg.inv(A) @ rel
    warped = map_coordinates(ink, [src[1] + base_y, src[0]], order=1, cval=0.0).reshape(yy.shape)
    # --- S x S mean = antialiased output; pressure (gamma), ink tone, noise
    small = warped.reshape(HEIGHT, S, cols // S, S).mean(axis=(1, 3))  # [32, cols/S]
    small = np.clip(small, 0, 1) ** np.exp(rng.normal(0, 0.12))
    tone = np.clip(style.ink + rng.normal(0, 6), 0, 140)
    img = 255.0 - small * (255.0 - tone)
    img += rng.normal(0, style.noise, img.shape) * (0.3 + small)  # noise mostly on the ink
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    used = np.nonzero((img < 200).any(axis=0))[0]
    lo, hi = (used[0], used[-1]) if len(used) else (0, img.shape[1] - 1)
    return np.ascontiguousarray(img[:, max(lo - 2, 0) : hi + 3])


def _elastic(shape: tuple[int, int], scale: float, rng: np.random.Generator):
    """A smooth random displacement field (dx, dy): a sum of Gaussian bumps ~6 px apart with
    random heights, normalised so each pixel moves with std `scale`. Separable: By @ h @ Bx.T."""
    h, w = shape
    step = 6 * S

    def basis(n, centers, width):  # [n, len(centers)], rows of unit norm
        b = np.exp(-0.5 * ((np.arange(n)[:, None] - centers[None]) / width) ** 2)
        return b / np.linalg.norm(b, axis=1, keepdims=True)

    by = basis(h, np.linspace(0, h - 1, 3), h / 2)  # [h, 3]
    bx = basis(w, np.arange(-step, w + 2 * step, step, dtype=float), step)  # [w, gx]
    heights = rng.normal(0, scale, (2, by.shape[1], bx.shape[1]))
    rows = heights @ bx.T  # [2, 3, w]
    # by @ rows as 3 outer products: tiny, and no BLAS threads fighting the worker processes
    return [sum(np.outer(by[:, j], r[j]) for j in range(by.shape[1])) for r in rows]  # 2 x [h, w]


def render_word(writer_meta: dict, text: str, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Render `text` for a writer described like an entry of writers.json -> uint8 [32, W].

    `writer_meta` needs "font_file" (an existing path) and "style" (a `WriterStyle` dict).
    """
    rng = np.random.default_rng(rng)
    style = writer_meta["style"]
    style = style if isinstance(style, WriterStyle) else WriterStyle(**style)
    return render_text(str(writer_meta["font_file"]), style, text, rng)
