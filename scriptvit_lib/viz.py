"""Plots the notebooks show: pure functions of tensors, each returning a matplotlib `Figure`.

Nothing here runs a model, shows or saves a figure: a notebook calls the model, hands the
tensors over and displays (or saves) what comes back, so a test can call the same function
with fixed arguments. Images are either uint8 [H, W] (255 = paper, as in `words.py`) or float
in [-1, 1] (+1 = paper, as the model sees them), with or without a channel axis of 1.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

PX = 1 / 48  # inches per image pixel: a 32-px word is 2/3 inch high


def _gray(image) -> np.ndarray:
    """Any word image -> float [H, W] in [0, 1] (1 = paper)."""
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    a = a.squeeze(0) if a.ndim == 3 else a
    assert a.ndim == 2, f"expected an image [H, W] or [1, H, W], got shape {a.shape}"
    return a / 255.0 if a.dtype == np.uint8 else (a.astype(np.float32) + 1) / 2


def _np(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def show_words(images, titles=None, *, suptitle: str | None = None) -> Figure:
    """A column of word images (or canvases) at one pixel scale, each framed and titled."""
    imgs = [_gray(im) for im in images]
    widest, heights = max(im.shape[1] for im in imgs), [im.shape[0] for im in imgs]
    fig = Figure(figsize=(max(2.0, widest * PX), sum(heights) * PX + 0.3 * len(imgs) + 0.3))
    grid = fig.add_gridspec(len(imgs), 1, height_ratios=heights)
    for i, im in enumerate(imgs):
        ax = fig.add_subplot(grid[i])
        ax.imshow(im, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xlim(-0.5, widest - 0.5)  # same pixel scale in every row
        ax.set_title("" if titles is None else str(titles[i]), fontsize=8, loc="left", pad=2)
        ax.add_patch(
            Rectangle((-0.5, -0.5), im.shape[1], im.shape[0], fill=False, ec="0.6", lw=0.8, clip_on=False)
        )
        ax.axis("off")  # the grey frame shows where this image (and its padding) ends
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout(pad=0.3)
    return fig


def _grid(fig_rows: int, k: int, h: int, w: int) -> tuple[int, int, tuple[float, float]]:
    """Subplot grid and figure size for `fig_rows` rows of K canvases of H x W px.

    One row of wide canvases (32x128) is stacked one under the other; otherwise a row per
    `fig_rows`, K canvases side by side.
    """
    wide = w >= 2 * h
    pw = 2.4 if wide else 2.0  # inches per canvas
    nr, nc = (k, 1) if (fig_rows == 1 and wide) else (fig_rows, k)
    return nr, nc, (nc * pw + 0.8, nr * (pw * h / w + 0.3) + 0.3)


def plot_patch_grid(images, patch_size: int, blank=None, *, widths=None, titles=None) -> Figure:
    """Style canvases [K, (1,) H, W] with their patch grid; blank patches tinted red.

    `blank`: [K, gh, gw] or [K, gh*gw] bool (True = no ink), e.g. `PatchEmbedding`'s mask;
    `widths`: [K] px, drawn as a dashed blue line where the word ends and padding begins.
    """
    imgs = [_gray(im) for im in images]
    k, (h, w), p = len(imgs), imgs[0].shape, patch_size
    gh, gw = h // p, w // p
    nr, nc, size = _grid(1, k, h, w)
    fig = Figure(figsize=size)
    for i in range(k):
        ax = fig.add_subplot(nr, nc, i + 1)
        ax.imshow(imgs[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        for y in range(0, h + 1, p):
            ax.axhline(y - 0.5, color="0.6", lw=0.4)
        for x in range(0, w + 1, p):
            ax.axvline(x - 0.5, color="0.6", lw=0.4)
        if blank is not None:
            tint = np.zeros((gh, gw, 4))
            tint[_np(blank[i]).reshape(gh, gw).astype(bool)] = (1.0, 0.2, 0.2, 0.3)
            ax.imshow(tint, extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="nearest")
        if widths is not None:
            ax.axvline(float(widths[i]) - 0.5, color="tab:blue", ls="--", lw=1)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7, pad=2)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(pad=0.3)
    return fig


def plot_attention(weights, images, patch_size: int, *, row_labels=None, mark=None) -> Figure:
    """Heat maps of weights over the tokens of K canvases, drawn on the canvases.

    `weights`: [K*N] or [R, K*N], image-major like `PatchEmbedding`'s tokens (N = patches per
    canvas); one figure row per R (e.g. a query patch, or a character). Any non-negative map
    works: with `patch_size=1` it is one value per pixel (e.g. |gradient|). Each row has its
    own colour scale (0 .. its max); exact zeros (masked tokens) are left undrawn.
    `mark`: a token index (into K*N) outlined in green.
    """
    imgs = [_gray(im) for im in images]
    k, (h, w), p = len(imgs), imgs[0].shape, patch_size
    wts = _np(weights).reshape(-1, k, h // p, w // p)  # [R, K, gh, gw]
    rows = wts.shape[0]
    nr, nc, size = _grid(rows, k, h, w)
    fig = Figure(figsize=size)
    for r in range(rows):
        vmax = max(float(wts[r].max()), 1e-12)
        for i in range(k):
            ax = fig.add_subplot(nr, nc, r * k + i + 1)
            ax.imshow(imgs[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            heat = np.ma.masked_equal(np.kron(wts[r, i], np.ones((p, p))), 0)  # per pixel; 0 = not drawn
            ax.imshow(heat, cmap="YlOrRd", vmin=0, vmax=vmax, alpha=0.65, interpolation="nearest")
            if mark is not None and int(mark) // (wts.shape[2] * wts.shape[3]) == i:
                y, x = divmod(int(mark) % (wts.shape[2] * wts.shape[3]), wts.shape[3])
                ax.add_patch(Rectangle((x * p - 0.5, y * p - 0.5), p, p, fill=False, ec="lime", lw=1.5))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0 and row_labels is not None:
                ax.set_ylabel(str(row_labels[r]), rotation=0, ha="right", va="center", fontsize=9)
            if r == 0:
                ax.set_title(f"style image {i}", fontsize=7, pad=2)
    fig.tight_layout(pad=0.3)
    return fig


def plot_column_scores(image, scores, stride: int, *, mask=None, labels=None, title: str = "") -> Figure:
    """A word image over one bar per `stride`-px column (e.g. D's logits, stride 8).

    `mask` [C] bool greys out columns outside the word; `labels` [C] are written on the bars
    (e.g. the recognizer's best character per column).
    """
    img, s = _gray(image), _np(scores)
    m = np.ones(len(s), bool) if mask is None else _np(mask).astype(bool)
    h, w = img.shape
    width = max(3.0, w * PX * 2)  # inches; the image row gets the height that keeps its aspect
    img_h = (width - 0.6) * h / w
    fig = Figure(figsize=(width, img_h + 1.8))
    grid = fig.add_gridspec(2, 1, height_ratios=[img_h, 1.4])
    top = fig.add_subplot(grid[0])
    bottom = fig.add_subplot(grid[1], sharex=top)  # bar c sits under pixels c*stride .. (c+1)*stride
    top.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest", aspect="auto")
    top.set_xlim(-0.5, w - 0.5)
    top.axis("off")
    top.set_title(title, fontsize=8, loc="left", pad=2)
    x = np.arange(len(s)) * stride + stride / 2 - 0.5
    bottom.bar(x, s, width=stride * 0.9, color=np.where(m, "tab:blue", "0.8"))
    bottom.axhline(0, color="k", lw=0.5)
    bottom.tick_params(labelsize=7)
    if labels is not None:
        for xi, si, lab in zip(x, s, labels):
            bottom.text(xi, si, str(lab), ha="center", va="bottom", fontsize=6)
    fig.tight_layout(pad=0.3)
    return fig


# --- per-character attention (attention.py) -------------------------------------------------------
def _canvas_stack(canvases, heat=None, gap: int = 4) -> tuple[np.ndarray, np.ma.MaskedArray | None]:
    """K canvases (and K heat maps [K, H, W]) stacked top to bottom with `gap` px of white between."""
    imgs = [_gray(im) for im in canvases]
    w = imgs[0].shape[1]
    grey = np.concatenate(sum(([im, np.ones((gap, w))] for im in imgs), [])[:-1])
    if heat is None:
        return grey, None
    h = _np(heat)
    parts = sum(([hi, np.zeros((gap, w))] for hi in h), [])[:-1]
    return grey, np.ma.masked_equal(np.concatenate(parts), 0)  # zero (masked / dropped) = not drawn


def _overlay(ax, grey, heat, vmax: float) -> None:
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    if heat is not None:
        ax.imshow(heat, cmap="YlOrRd", vmin=0, vmax=max(vmax, 1e-12), alpha=0.65, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_character_attention(
    word, canvases, maps, text: str, *, char_width: int = 16, chars=None, label: str = ""
) -> Figure:
    """A generated word over one column per character: the K style canvases (stacked) with that
    character's attention drawn on them.

    `word`: the generated image [32, char_width * L] (uncropped, character i = columns
    i*char_width ..); `maps`: [L, K, H, W] per-pixel weights (e.g. `CharacterAttention.maps`);
    `chars`: which character indices to show (default all); `label`: the layer/head choice,
    written in the title. Each column has its own colour scale (0 .. its max).
    """
    chars = list(range(len(text))) if chars is None else [int(c) for c in chars]
    m = _np(maps)
    img = _gray(word)
    stacks = [_canvas_stack(canvases, m[c]) for c in chars]
    sh, sw = stacks[0][0].shape
    cols = len(chars)
    fig = Figure(figsize=(max(4.0, cols * sw * PX * 1.4 + 0.4), (img.shape[0] + sh) * PX * 1.4 + 1.2))
    grid = fig.add_gridspec(2, cols, height_ratios=[img.shape[0] * 3, sh])
    top = fig.add_subplot(grid[0, :])
    top.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for c in chars:
        top.add_patch(
            Rectangle(
                (c * char_width - 0.5, -0.5), char_width, img.shape[0], fill=False, ec="tab:red", lw=1.2
            )
        )
    top.axis("off")
    top.set_title(f"'{text}' as generated; attention: {label}", fontsize=8, loc="left", pad=2)
    for j, (c, (grey, heat)) in enumerate(zip(chars, stacks)):
        ax = fig.add_subplot(grid[1, j])
        _overlay(ax, grey, heat, float(m[c].max()))
        ax.set_title(f"{c}: '{text[c]}'", fontsize=8, pad=2)
    fig.tight_layout(pad=0.3)
    return fig


def plot_attention_grid(canvases, maps, *, row_labels, col_labels, title: str = "") -> Figure:
    """A grid of attention maps over the same K canvases: maps [R, C, K, H, W] (e.g. one character's
    map per layer (rows) and head (columns), with a mean row and column). Each cell has its own
    colour scale, so compare *where*, not how much."""
    m = _np(maps)
    rows, cols = m.shape[:2]
    grey, _ = _canvas_stack(canvases)
    sh, sw = grey.shape
    cw = max(1.0, sw * PX * 0.9)
    fig = Figure(figsize=(cols * cw + 0.8, rows * cw * sh / sw + 0.3 * rows + 0.5))
    for r in range(rows):
        for c in range(cols):
            ax = fig.add_subplot(rows, cols, r * cols + c + 1)
            _overlay(ax, *_canvas_stack(canvases, m[r, c]), float(m[r, c].max()))
            if r == 0:
                ax.set_title(str(col_labels[c]), fontsize=7, pad=2)
            if c == 0:
                ax.set_ylabel(str(row_labels[r]), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 0.96 if title else 1))  # keep the title clear of the cells
    return fig
