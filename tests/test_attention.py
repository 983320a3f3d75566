"""attention.py: per-character maps on the style canvases, and style interpolation (tiny model)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from scriptvit_lib import attention as A
from scriptvit_lib import viz
from scriptvit_lib.config import ScriptViTConfig
from scriptvit_lib.generator import ScriptViT
from scriptvit_lib.writer import Writer
from tests.fixtures_iam import draw_word

CFG = replace(ScriptViTConfig.preset("tiny"), dec_layers=2, blank_patches="drop")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ScriptViT(CFG).eval()


def words(texts, ink=20):
    return [draw_word(t, height=32, ink=ink) for t in texts]


@pytest.fixture(scope="module")
def writer(model):
    return Writer.from_images(words(["quiet", "morning", "garden"]), model, preprocess=False)


def test_looking_does_not_change_the_output(model, writer):
    ids = torch.tensor([[5, 12, 7, 30]])
    with torch.no_grad():
        plain = model.decode(writer.memory(), ids)
        looked, attn = model.decode(writer.memory(), ids, return_attention=True)
    assert torch.equal(plain, looked)
    assert attn.shape == (1, CFG.dec_layers, CFG.dec_heads, 4, writer.memory().tokens.shape[1])


def test_character_maps_are_distributions_on_ink_patches(model, writer):
    r = A.character_attention(writer, "gig")
    k, (hs, ws), p = 3, CFG.style_size, CFG.patch_size
    assert r.maps.shape == (3, k, hs, ws) and r.patches.shape == (3, k * (hs // p) * (ws // p))
    torch.testing.assert_close(r.patches.sum(1), torch.ones(3))  # every character: sums to 1
    torch.testing.assert_close(r.share_per_image().sum(1), torch.ones(3))
    # drop mode: patches without a token (blank) get exactly nothing
    has_token = torch.zeros(r.patches.shape[1], dtype=torch.bool)
    has_token[writer.memory().positions[0]] = True
    assert (r.patches[:, ~has_token] == 0).all() and (~has_token).any()
    assert r.label == "mean of 2 layers, mean of 2 heads"
    assert r.image.shape == (32, 3 * CFG.char_width)
    one = A.character_attention(writer, "gig", layer=1, head=0)
    assert one.label == "layer 1, head 0"
    expected = A.scatter_to_patches(one.attention[1, 0], writer.memory(), r.patches.shape[1])
    torch.testing.assert_close(one.patches, expected)
    grid = A.layer_head_maps(r, 2, writer.memory())
    assert grid.shape == (CFG.dec_layers + 1, CFG.dec_heads + 1, k, hs, ws)
    torch.testing.assert_close(grid[-1, -1], r.maps[2])  # the mean corner is the default map


def test_drop_and_mask_give_the_same_maps(model, writer):
    masked = ScriptViT(replace(CFG, blank_patches="mask")).eval()
    masked.load_state_dict(model.state_dict())
    w2 = Writer.from_images(writer.words, masked, preprocess=False)
    a, b = A.character_attention(writer, "ab"), A.character_attention(w2, "ab")
    torch.testing.assert_close(a.patches, b.patches, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(a.image.astype(int), b.image.astype(int), atol=1)


def test_model_with_canvases_matches_writer(model, writer):
    from scriptvit_lib.sampler import place_on_canvas

    canvases, widths = zip(*(place_on_canvas(writer.words[i], CFG.style_size) for i in writer.chosen))
    r = A.character_attention(model, "ab", style=torch.stack(canvases), style_widths=torch.tensor(widths))
    torch.testing.assert_close(r.patches, A.character_attention(writer, "ab").patches)


def test_interpolation_endpoints_and_padding(model, writer):
    other = Writer.from_images(words(["a", "of"], ink=90), model, preprocess=False)
    ma, mb = writer.memory(), other.memory()
    assert ma.tokens.shape[1] != mb.tokens.shape[1]  # different token counts
    n = max(ma.tokens.shape[1], mb.tokens.shape[1])
    mid = A.interpolate_styles(ma, mb, 0.5)
    assert mid.tokens.shape == (1, n, CFG.d_model) and mid.positions is None
    assert torch.equal(mid.pad_mask, A.pad_memory(ma, n).pad_mask & A.pad_memory(mb, n).pad_mask)
    strip = A.interpolation_strip(model, ma, mb, "hello", alphas=(0.0, 0.5, 1.0))
    assert len(strip) == 3
    assert np.array_equal(strip[0], A.decode_words(model, ma, ["hello"])[0])  # alpha 0 = writer A
    assert np.array_equal(strip[2], A.decode_words(model, mb, ["hello"])[0])  # alpha 1 = writer B
    with pytest.raises(AssertionError):
        A.interpolate_styles(ma, mb, 1.5)


def test_plots(writer):
    r = A.character_attention(writer, "gig")
    fig = viz.plot_character_attention(r.image, r.canvases, r.maps, r.text, label=r.label)
    assert len(fig.axes) == 1 + 3 and r.label in fig.axes[0].get_title(loc="left")
    grid = A.layer_head_maps(r, 0, writer.memory())
    fig = viz.plot_attention_grid(r.canvases, grid, row_labels=[0, 1, "mean"], col_labels=[0, 1, "mean"])
    assert len(fig.axes) == 9
