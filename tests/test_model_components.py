"""Contract tests of each model component (tiny sizes; seconds on one CPU core)."""

from __future__ import annotations

import json

import pytest
import torch
from einops import rearrange

from scriptvit_lib.charset import Charset
from scriptvit_lib.cnn_style_encoder import CNNStyleEncoder
from scriptvit_lib.config import PRESETS, ScriptViTConfig
from scriptvit_lib.content_encoder import ContentEncoder
from scriptvit_lib.discriminator import Discriminator, width_mask
from scriptvit_lib.fusion import FusionDecoder
from scriptvit_lib.losses import ctc_loss, d_hinge_loss, g_hinge_loss, writer_ce_loss
from scriptvit_lib.patch_embedding import PatchEmbedding
from scriptvit_lib.recognizer import Recognizer
from scriptvit_lib.style_encoder import ViTStyleEncoder, drop_tokens
from scriptvit_lib.synthesis import SynthesisNetwork, UpBlock
from scriptvit_lib.writer_classifier import WriterClassifier

torch.set_num_threads(1)


def style_words(b: int, k: int, size: tuple[int, int], width: int = 40, seed: int = 0) -> torch.Tensor:
    """[B, K, 1, H, W] paper (+1) canvases with random dark strokes in a 16-px band at the left."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    x = torch.ones(b, k, 1, h, w)
    top = h // 2 - 8
    ink = torch.rand(b, k, 1, 16, width, generator=g) < 0.3
    x[..., top : top + 16, :width] = torch.where(ink, -1.0, 1.0)
    return x


# --- config --------------------------------------------------------------------------------
def test_presets_json_round_trip(tmp_path):
    for name in PRESETS:
        cfg = ScriptViTConfig.preset(name)
        again = ScriptViTConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg
    cfg.save(tmp_path / "c.json")
    assert ScriptViTConfig.load(tmp_path / "c.json") == cfg
    assert ScriptViTConfig.preset("paper").style_size == (224, 224)
    with pytest.raises(KeyError):
        ScriptViTConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown config field"):
        ScriptViTConfig.from_dict({"bogus": 1})
    with pytest.raises(AssertionError, match="divisible"):
        ScriptViTConfig(style_size=(30, 64), patch_size=8)


# --- patch embedding -----------------------------------------------------------------------
def test_patch_embedding_linear_equals_strided_conv():
    pe = PatchEmbedding(image_size=(32, 64), patch_size=8, dim=24)
    img = torch.randn(3, 1, 32, 64)
    by_linear = pe.proj(rearrange(img, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=8, p2=8))
    by_conv = rearrange(pe.as_conv()(img), "b d h w -> b (h w) d")
    torch.testing.assert_close(by_linear, by_conv, rtol=1e-5, atol=1e-5)


def test_patch_embedding_shapes_and_blank_mask():
    pe = PatchEmbedding(image_size=(32, 64), patch_size=8, dim=16, max_images=15)
    x = torch.ones(2, 3, 1, 32, 64)
    x[0, 1, 0, 9, 17] = -1.0  # one ink pixel: image 1, patch row 1, col 2
    x[1, 0, 0, 0, 60] = -1.0  # ink in the last column, but beyond the word's width below
    tokens, blank = pe(x, widths=torch.tensor([[64, 64, 64], [40, 64, 64]]))
    assert tokens.shape == (2, 3 * 32, 16) and blank.shape == (2, 3 * 32)
    assert (~blank[0]).sum() == 1 and not blank[0, 32 + 1 * 8 + 2]
    assert blank[1].all()  # the only ink lies right of width 40
    # blank tokens still carry position + image embeddings, so the three images differ
    assert not torch.allclose(tokens[0, :32], tokens[0, 32:64])


# --- ViT style encoder ---------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 15])
@pytest.mark.parametrize("mode", ["keep", "mask", "drop"])
def test_vit_style_encoder_contract(k, mode):
    enc = ViTStyleEncoder(
        image_size=(32, 64), patch_size=8, dim=32, depth=1, heads=2, out_dim=48, blank_patches=mode
    )
    style = style_words(2, k, (32, 64))
    mem = enc(style, torch.full((2, k), 40))
    n_all = k * 32
    assert mem.tokens.shape[0] == 2 and mem.tokens.shape[-1] == 48
    assert mem.pad_mask.shape == mem.tokens.shape[:2] and mem.pad_mask.dtype == torch.bool
    if mode == "drop":
        assert mem.tokens.shape[1] < n_all  # blank patches are gone
    else:
        assert mem.tokens.shape[1] == n_all
    assert mem.pad_mask.any() == (mode == "mask")
    assert torch.isfinite(mem.tokens).all()


def test_drop_and_mask_give_the_same_memory():
    torch.manual_seed(0)
    kw = dict(image_size=(32, 64), patch_size=8, dim=32, depth=2, heads=2, out_dim=32)
    masked = ViTStyleEncoder(**kw, blank_patches="mask").eval()
    dropped = ViTStyleEncoder(**kw, blank_patches="drop").eval()
    dropped.load_state_dict(masked.state_dict())
    style = style_words(3, 4, (32, 64))
    style[2, :, :, :, 16:] = 1.0  # sample 2 has much less ink than the others
    m, d = masked(style), dropped(style)
    kept_m, _, idx = drop_tokens(m.tokens, m.pad_mask)
    torch.testing.assert_close(kept_m[~d.pad_mask], d.tokens[~d.pad_mask], rtol=1e-5, atol=1e-5)
    # positions say which canvas patch each kept token is: the unmasked ones of "mask" mode
    assert torch.equal(d.positions, idx)
    for b in range(3):
        n = int((~d.pad_mask[b]).sum())
        assert torch.equal(d.positions[b, :n], m.positions[b][~m.pad_mask[b]])
    assert d.pad_mask[2].any()  # padded up to the largest count in the batch
    # "keep" lets blank tokens take part, so its ink tokens differ from "mask"
    kept = ViTStyleEncoder(**kw, blank_patches="keep").eval()
    kept.load_state_dict(masked.state_dict())
    assert not torch.allclose(kept(style).tokens[~m.pad_mask], m.tokens[~m.pad_mask], atol=1e-4)


def test_all_blank_style_keeps_one_token():
    for mode in ("mask", "drop"):
        enc = ViTStyleEncoder(
            image_size=(32, 64), patch_size=8, dim=16, depth=1, heads=2, out_dim=16, blank_patches=mode
        )
        mem = enc(torch.ones(2, 3, 1, 32, 64))
        assert (~mem.pad_mask).sum(dim=1).tolist() == [1, 1]
        assert torch.isfinite(mem.tokens).all()


# --- CNN style encoder ---------------------------------------------------------------------
def test_cnn_style_encoder_contract():
    enc = CNNStyleEncoder(image_size=(32, 128), out_dim=32, enc_layers=1, heads=4)
    mem = enc(style_words(2, 3, (32, 128)), torch.tensor([[40, 128, 64], [20, 20, 20]]))
    assert mem.tokens.shape == (2, 3 * 4, 32)  # 1 x 4 tokens per 32x128 image (stride 32)
    assert mem.pad_mask.tolist()[1] == [False, True, True, True] * 3
    assert mem.pad_mask[0].tolist() == [False, False, True, True] + [False] * 4 + [False, False, True, True]


# --- content + fusion ----------------------------------------------------------------------
def test_content_encoder():
    enc = ContentEncoder(num_classes=81, dim=16)
    q = enc(torch.tensor([[5, 7, 0, 0], [5, 0, 0, 0]]))
    assert q.shape == (2, 4, 16)
    torch.testing.assert_close(q[0, 0], q[1, 0])  # same char, same position
    assert not torch.allclose(q[0, 2], q[0, 3])  # padding rows differ by their position code
    assert enc.embed.weight[0].abs().sum() == 0


def test_fusion_attention_sums_to_one_and_ignores_masked_tokens():
    torch.manual_seed(0)
    dec = FusionDecoder(dim=32, layers=2, heads=4, ff=64).eval()
    q, mem = torch.randn(2, 5, 32), torch.randn(2, 9, 32)
    mem_pad = torch.zeros(2, 9, dtype=torch.bool)
    mem_pad[0, 3:] = True
    mem_pad[1, ::2] = True
    text_pad = torch.tensor([[False] * 5, [False, False, True, True, True]])
    out, attn = dec(q, mem, text_pad=text_pad, memory_pad=mem_pad, return_attention=True)
    assert out.shape == (2, 5, 32) and attn.shape == (2, 2, 4, 5, 9)  # [B, layers, heads, L, N]
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 2, 4, 5))
    assert (attn.masked_select(mem_pad[:, None, None, None, :].expand_as(attn)) == 0).all()
    assert torch.equal(out, dec(q, mem, text_pad=text_pad, memory_pad=mem_pad))
    # a masked token's content cannot matter
    mem2 = mem.clone()
    mem2[mem_pad] = 100.0
    torch.testing.assert_close(out, dec(q, mem2, text_pad=text_pad, memory_pad=mem_pad), rtol=0, atol=1e-5)


def test_fusion_reads_one_shared_memory_as_its_copies():
    """A memory of batch 1 (one writer, many words: the fast path of `Writer`) gives what the
    same memory copied to every word gives, attention maps included."""
    torch.manual_seed(0)
    dec = FusionDecoder(dim=32, layers=2, heads=4, ff=64).eval()
    q, mem = torch.randn(3, 5, 32), torch.randn(1, 9, 32)
    mem_pad = torch.zeros(1, 9, dtype=torch.bool)
    mem_pad[0, 6:] = True
    text_pad = torch.zeros(3, 5, dtype=torch.bool)
    text_pad[1, 2:] = True
    out, attn = dec(q, mem, text_pad=text_pad, memory_pad=mem_pad, return_attention=True)
    out3, attn3 = dec(
        q, mem.expand(3, -1, -1), text_pad=text_pad, memory_pad=mem_pad.expand(3, -1), return_attention=True
    )
    assert attn.shape == attn3.shape == (3, 2, 4, 5, 9)
    torch.testing.assert_close(out, out3, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(attn, attn3, rtol=1e-5, atol=1e-6)
    with pytest.raises(AssertionError, match="batch"):
        dec(q, torch.randn(2, 9, 32))


# --- synthesis -----------------------------------------------------------------------------
def test_upsampling_conv_is_nearest_x2_then_the_5x5_conv():
    """`UpBlock` folds its 5x5 kernel into four 3x3 phase kernels + pixel shuffle: the same map
    (values and gradients) as HWT's nearest x2 upsampling followed by the 5x5 conv."""
    torch.manual_seed(0)
    up = UpBlock(6, 4)
    x = torch.randn(2, 6, 4, 7, requires_grad=True)
    ref = up.conv(torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    fast = up.upsample_conv(x)
    assert fast.shape == ref.shape == (2, 4, 8, 14)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(ref)
    grads_ref = torch.autograd.grad(ref, (x, up.conv.weight, up.conv.bias), g)
    grads_fast = torch.autograd.grad(fast, (x, up.conv.weight, up.conv.bias), g)
    for a, b in zip(grads_fast, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_synthesis_width_paper_and_batch_independence():
    torch.manual_seed(0)
    syn = SynthesisNetwork(in_dim=16, channels=32, res_blocks=1, char_width=16).eval()
    h = torch.randn(2, 6, 16)
    img = syn(h, torch.tensor([6, 2]))
    assert img.shape == (2, 1, 32, 96)
    assert img.min() >= -1 and img.max() <= 1
    assert (img[1, ..., 32:] == 1).all()  # beyond 2 chars: exactly paper
    assert not (img[1, ..., :32] == 1).all()
    alone = syn(h[1:, :2], torch.tensor([2]))
    torch.testing.assert_close(alone, img[1:, ..., :32], rtol=1e-4, atol=1e-5)
    wide = SynthesisNetwork(in_dim=16, channels=32, res_blocks=1, char_width=24)
    assert wide(h, torch.tensor([6, 1])).shape == (2, 1, 32, 144)


# --- discriminator, recognizer, writer classifier, losses --------------------------------------
@pytest.mark.parametrize("width", [16, 72, 200])
def test_critics_on_any_width(width):
    x = torch.rand(2, 1, 32, width) * 2 - 1
    widths = torch.tensor([width, 16])
    d = Discriminator(ch=8)
    assert d(x).shape == (2, width // 8)
    for head in ("linear", "lstm"):
        r = Recognizer(num_classes=81, ch=8, head=head, hidden=16)
        lp = r(x, widths)
        assert lp.shape == (2, width // 4, 81)
        torch.testing.assert_close(lp.exp().sum(-1), torch.ones(2, width // 4))
    assert Recognizer.output_lengths(widths).tolist() == [width // 4, 4]
    w = WriterClassifier(num_writers=7, ch=8).eval()  # eval: spectral norm stops its power steps
    assert w(x, widths).shape == (2, 7)
    torch.testing.assert_close(w(x, torch.tensor([width, width])), w(x))


def test_width_mask_and_hinge_losses():
    m = width_mask(torch.tensor([16, 40]), 5)
    assert m.tolist() == [[True, True, False, False, False], [True] * 5]
    assert Discriminator(ch=8).output_widths(torch.tensor([16, 40, 41])).tolist() == [2, 5, 6]
    real, fake = torch.full((2, 5), 2.0), torch.full((2, 5), -2.0)
    assert d_hinge_loss(real, fake, m, m) == 0
    real[~m], fake[~m] = -50.0, 50.0  # outside the words: must not count
    assert d_hinge_loss(real, fake, m, m) == 0
    assert d_hinge_loss(torch.zeros(2, 5), torch.zeros(2, 5)) == 2
    assert g_hinge_loss(fake, m) == 2.0


def test_ctc_and_writer_losses():
    cs = Charset()
    ids = torch.tensor([cs.encode("ab") + [0], cs.encode("abc")])
    lengths = torch.tensor([2, 3])
    path = torch.tensor(
        [[ids[0, 0], 0, ids[0, 1], 0, 0, 0], [ids[1, 0], ids[1, 0], ids[1, 1], 0, ids[1, 2], 0]]
    )
    lp = torch.full((2, 6, 81), -30.0).scatter(2, path[..., None], 0.0).log_softmax(-1)
    assert ctc_loss(lp, ids, torch.tensor([6, 6]), lengths) < 1e-3
    assert Recognizer.greedy_decode(lp, torch.tensor([6, 6]), cs) == ["ab", "abc"]
    wrong = torch.tensor([cs.encode("ba") + [0], cs.encode("cba")])
    assert ctc_loss(lp, wrong, torch.tensor([6, 6]), lengths) > 10
    with pytest.raises(AssertionError, match="blank"):
        ctc_loss(lp, ids, torch.tensor([6, 6]), torch.tensor([3, 3]))  # the pad 0 read as a char
    assert ctc_loss(lp, ids, torch.tensor([1, 1]), lengths) == 0  # impossible -> zeroed
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    assert writer_ce_loss(logits, torch.tensor([0, -1])) < 0.01
    assert writer_ce_loss(logits, torch.tensor([1, -1])) > 4
    assert writer_ce_loss(logits, torch.tensor([-1, -1])) == 0
