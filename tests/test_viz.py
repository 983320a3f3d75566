"""Each plot the notebooks show, called once with fixed arguments (what a notebook cell does)."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from scriptvit_lib import viz


def canvases(k: int = 3, size: tuple[int, int] = (32, 128)) -> torch.Tensor:
    """[K, 1, H, W] paper canvases with a dark bar (a 'word') of growing width at the left."""
    x = torch.ones(k, 1, *size)
    for i in range(k):
        x[i, 0, 12:20, : 20 * (i + 1)] = -1.0
    return x


def test_show_words_takes_uint8_and_float_images():
    words = [np.full((32, 50), 255, np.uint8), torch.zeros(1, 32, 80)]
    fig = viz.show_words(words, titles=["a", "b"], suptitle="two words")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["a", "b"]
    assert fig.axes[0].get_xlim() == fig.axes[1].get_xlim()  # one pixel scale


def test_plot_patch_grid_draws_grid_blank_tint_and_width():
    x = canvases()
    blank = (x.unflatten(2, (4, 8)).unflatten(4, (16, 8)).amin(dim=(3, 5)) > 0.75)[:, 0]  # [K, 4, 16]
    fig = viz.plot_patch_grid(x, 8, blank, widths=[20, 40, 60], titles=["w0", "w1", "w2"])
    assert len(fig.axes) == 3  # wide canvases: one under the other
    ax = fig.axes[1]
    assert len(ax.images) == 2  # the canvas and the blank tint
    assert len(ax.lines) == (4 + 1) + (16 + 1) + 1  # grid lines + the word's end
    assert ax.get_title() == "w1"


def test_plot_attention_rows_and_mark():
    x = canvases(k=2, size=(32, 64))
    weights = torch.softmax(torch.randn(3, 2 * 4 * 8, generator=torch.Generator().manual_seed(0)), -1)
    fig = viz.plot_attention(weights, x, 8, row_labels="abc", mark=9)
    assert len(fig.axes) == 3 * 2
    assert fig.axes[0].get_ylabel() == "a" and fig.axes[4].get_ylabel() == "c"
    assert [len(ax.patches) for ax in fig.axes] == [1, 0] * 3  # token 9 is in image 0, every row
    pixel_map = viz.plot_attention(torch.rand(2, 32, 64), x, 1)  # one value per pixel
    assert len(pixel_map.axes) == 2


def test_plot_column_scores():
    img = torch.ones(1, 32, 48)
    scores, inside = torch.tensor([1.0, -0.5, 0.2, 0.0, 0.3, 0.1]), torch.arange(6) < 4
    fig = viz.plot_column_scores(img, scores, 8, mask=inside, labels="abcdef", title="D")
    top, bottom = fig.axes
    assert top.get_title(loc="left") == "D"
    assert len(bottom.patches) == 6 and len(bottom.texts) == 6
