"""Contract tests of the ScriptViT generator and the networks that train it."""

from __future__ import annotations

import pytest
import torch

from scriptvit_lib.charset import Charset
from scriptvit_lib.config import ScriptViTConfig
from scriptvit_lib.discriminator import Discriminator
from scriptvit_lib.generator import ScriptViT
from scriptvit_lib.losses import ctc_loss, g_hinge_loss, writer_ce_loss
from scriptvit_lib.recognizer import Recognizer
from scriptvit_lib.style_encoder import StyleMemory
from scriptvit_lib.writer_classifier import WriterClassifier

torch.set_num_threads(1)
CS = Charset()


def style_batch(cfg: ScriptViTConfig, b: int, k: int, seed: int = 0):
    """Random-ink 'words' ~ 40-100 px wide, 16 px high, left-aligned on paper canvases."""
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.style_size
    x = torch.ones(b, k, 1, h, w)
    widths = torch.randint(40, min(100, w) + 1, (b, k), generator=g)
    for i in range(b):
        for j in range(k):
            ink = torch.rand(16, int(widths[i, j]), generator=g) < 0.3
            x[i, j, 0, h // 2 - 8 : h // 2 + 8, : int(widths[i, j])] = torch.where(ink, -1.0, 1.0)
    return x, widths


def texts(words: list[str]):
    ids = torch.zeros(len(words), max(map(len, words)), dtype=torch.long)
    for i, w in enumerate(words):
        ids[i, : len(w)] = torch.tensor(CS.encode(w))
    return ids, torch.tensor([len(w) for w in words])


@pytest.mark.parametrize("preset", ["tiny", "cpu"])
@pytest.mark.parametrize("k", [1, 15])
def test_generator_contract(preset, k):
    cfg = ScriptViTConfig.preset(preset)
    torch.manual_seed(0)
    g = ScriptViT(cfg).eval()
    style, sw = style_batch(cfg, 2, k)
    words = ["a", "x" * 40]  # text lengths 1 and 40
    ids, lengths = texts(words)
    with torch.no_grad():
        img, attn = g(style, ids, lengths, style_widths=sw, return_attention=True)
    assert img.shape == (2, 1, 32, 16 * 40)
    assert g.output_widths(lengths).tolist() == [16, 640]
    assert img.min() >= -1 and img.max() <= 1
    assert (img[0, ..., 16:] == 1).all()  # 1-char word: paper right of 16 px
    mem = g.encode_style(style, sw)
    assert attn.shape == (2, cfg.dec_layers, cfg.dec_heads, 40, mem.tokens.shape[1])
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, cfg.dec_layers, cfg.dec_heads, 40))
    # the networks that judge it take the same images
    d = Discriminator.from_config(cfg).eval()
    r = Recognizer.from_config(cfg)
    w = WriterClassifier.from_config(cfg)
    with torch.no_grad():
        assert d(img).shape == (2, 80)
        assert r(img).shape == (2, 160, cfg.num_classes)
        assert w(img, g.output_widths(lengths)).shape == (2, cfg.num_writers)


@pytest.mark.parametrize("encoder", ["vit", "cnn"])
def test_every_generator_parameter_gets_a_gradient(encoder):
    cfg = ScriptViTConfig.preset("tiny", style_encoder=encoder, cnn_enc_layers=1)
    torch.manual_seed(0)
    g, d = ScriptViT(cfg), Discriminator.from_config(cfg)
    r = Recognizer.from_config(cfg)
    w = WriterClassifier.from_config(cfg)
    style, sw = style_batch(cfg, 3, 2)
    ids, lengths = texts(["hello", "ab", "scriptvit"])
    fake = g(style, ids, lengths, style_widths=sw)
    widths = g.output_widths(lengths)
    logits = d(fake)
    loss = g_hinge_loss(logits, d.width_mask(widths, logits.shape[1]))
    loss = loss + ctc_loss(r(fake), ids, r.output_lengths(widths), lengths)
    loss = loss + writer_ce_loss(w(fake, widths), torch.tensor([0, 3, -1]))
    loss.backward()
    no_grad = [n for n, p in g.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == [], f"parameters without gradient: {no_grad}"


def test_mask_and_drop_generate_the_same_words():
    torch.manual_seed(0)
    cfg = ScriptViTConfig.preset("tiny", blank_patches="mask", vit_depth=2)
    g_mask = ScriptViT(cfg).eval()
    g_drop = ScriptViT(ScriptViTConfig.preset("tiny", blank_patches="drop", vit_depth=2)).eval()
    g_drop.load_state_dict(g_mask.state_dict())
    style, sw = style_batch(cfg, 2, 5)
    ids, lengths = texts(["word", "ink"])
    with torch.no_grad():
        a, attn = g_mask(style, ids, lengths, style_widths=sw, return_attention=True)
        b = g_drop(style, ids, lengths, style_widths=sw)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # masked (blank) style tokens get exactly zero attention
    pad = g_mask.encode_style(style, sw).pad_mask
    assert pad.any()
    assert (attn.masked_select(pad[:, None, None, None, :].expand_as(attn)) == 0).all()


def test_return_attention_does_not_change_the_images_and_padding_is_paper():
    cfg = ScriptViTConfig.preset("tiny")
    torch.manual_seed(0)
    g = ScriptViT(cfg).eval()
    style, sw = style_batch(cfg, 2, 3)
    ids, lengths = texts(["handwriting", "pen"])
    with torch.no_grad():
        img, _ = g(style, ids, lengths, style_widths=sw, return_attention=True)
        assert torch.equal(img, g(style, ids, lengths, style_widths=sw))
        assert (img[1, ..., 3 * 16 :] == 1).all() and not (img[1, ..., : 3 * 16] == 1).all()
        # "pen" alone, from a cached one-writer memory, equals "pen" padded in the batch
        mem = g.encode_style(style[1:], sw[1:])
        alone = g.decode(mem, ids[1:, :3], lengths[1:])
        torch.testing.assert_close(alone, img[1:, ..., :48], rtol=1e-4, atol=1e-5)
        # a memory of batch 1 broadcasts over many words
        many = g.decode(mem, ids, lengths)
        assert many.shape == img.shape


def test_vit_and_cnn_are_interchangeable_by_config():
    out = {}
    for enc in ("vit", "cnn"):
        cfg = ScriptViTConfig.preset("tiny", style_encoder=enc)
        g = ScriptViT(cfg).eval()
        style, sw = style_batch(cfg, 2, 4)
        ids, lengths = texts(["ab", "abc"])
        mem = g.encode_style(style, sw)
        assert isinstance(mem, StyleMemory) and mem.tokens.shape[-1] == cfg.d_model
        with torch.no_grad():
            out[enc] = g.decode(mem, ids, lengths).shape
    assert out["vit"] == out["cnn"] == (2, 1, 32, 48)


def test_save_load_round_trip_is_bit_exact(tmp_path):
    cfg = ScriptViTConfig.preset("tiny", style_encoder="cnn")  # has BatchNorm buffers too
    torch.manual_seed(0)
    g = ScriptViT(cfg)
    style, sw = style_batch(cfg, 2, 3)
    ids, lengths = texts(["round", "trip"])
    g(style, ids, lengths, style_widths=sw)  # a train-mode pass moves BatchNorm running stats
    g.eval()
    g.save_pretrained(tmp_path / "ckpt", metadata={"step": 7})
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    again = ScriptViT.from_pretrained(tmp_path / "ckpt").eval()
    assert again.config == cfg
    with torch.no_grad():
        assert torch.equal(
            g(style, ids, lengths, style_widths=sw), again(style, ids, lengths, style_widths=sw)
        )


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        ScriptViT.from_pretrained(tmp_path / "missing")
    ckpt = ScriptViT(ScriptViTConfig()).save_pretrained(tmp_path / "c")
    (ckpt / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="safetensors"):
        ScriptViT.from_pretrained(ckpt)
    ScriptViT(ScriptViTConfig()).save_pretrained(ckpt)
    ScriptViTConfig.preset("tiny", d_model=64).save(ckpt / "config.json")
    with pytest.raises(ValueError, match="do not match"):
        ScriptViT.from_pretrained(ckpt)
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config"):
        ScriptViT.from_pretrained(ckpt)
    (ckpt / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        ScriptViT.from_pretrained(ckpt)


def test_paper_preset_single_forwards():
    cfg = ScriptViTConfig.preset("paper")
    torch.manual_seed(0)
    g = ScriptViT(cfg).eval()
    style, sw = style_batch(cfg, 1, 5)
    ids, lengths = texts(["ViT"])
    with torch.no_grad():
        img = g(style, ids, lengths, style_widths=sw)
        assert img.shape == (1, 1, 32, 48) and torch.isfinite(img).all()
        assert g.encode_style(style, sw).tokens.shape == (1, 5 * 196, 512)  # 14 x 14 patches x k
        # k = 15 through the style encoder, dropping blank patches to keep it fast
        g.style_encoder.blank_patches = "drop"
        style, sw = style_batch(cfg, 1, 15)
        mem = g.encode_style(style, sw)
        assert mem.tokens.shape[-1] == 512 and mem.tokens.shape[1] < 15 * 196
