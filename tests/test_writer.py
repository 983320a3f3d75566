"""`Writer` and `scriptvit write`: pictures + text -> handwriting, with a tiny random model."""

import numpy as np
import pytest
import torch
from PIL import Image

from scriptvit_lib.cli import UserError, main
from scriptvit_lib.config import ScriptViTConfig
from scriptvit_lib.generator import ScriptViT
from scriptvit_lib.writer import PAD, Writer, crop_to_ink, parse_text
from tests.fixtures_iam import draw_word

STYLE_TEXTS = ("quiet", "morning", "garden", "letters", "Sunday", "harbour", "old")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ScriptViT(ScriptViTConfig.preset("tiny")).eval()


@pytest.fixture(scope="module")
def style():
    return [draw_word(t, height=64) for t in STYLE_TEXTS]  # 7 clean word pictures


@pytest.fixture(scope="module")
def writer(model, style):
    return Writer.from_images(style, model=model)


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def test_k_and_notes(model, style, writer):
    assert writer.k == 5 and len(writer.words) == 7 and len(writer.chosen) == 5
    assert any("using 5 of them" in n for n in writer.notes)
    assert Writer.from_images(style, model=model, seed=0).chosen == writer.chosen  # deterministic
    few = Writer.from_images(style[:2], model=model)
    assert few.k == 2 and any("fewer than k = 5" in n for n in few.notes)
    assert Writer.from_images(style, model=model, k=7).chosen == list(range(7))
    for bad in (0, 16):
        with pytest.raises(UserError, match="k must be between 1 and 15"):
            Writer.from_images(style, model=model, k=bad)


def test_model_ready_words_skip_preprocessing(model, tmp_path):
    words = [draw_word(t, height=32) for t in ("ready", "words")]
    w = Writer.from_images(words, model=model, preprocess=False)
    assert all(np.array_equal(a, b) for a, b in zip(w.words, words))
    with pytest.raises(UserError, match=r"uint8 \[32, w\]"):
        Writer.from_images([draw_word("tall", height=48)], model=model, preprocess=False)
    model.save_pretrained(tmp_path / "m")  # a model folder works as well as a model
    assert Writer.from_images(words, model=tmp_path / "m", preprocess=False).k == 2


def test_write_is_deterministic_and_cropped(writer):
    a = writer.write("Hello there", seed=3)
    assert a.mode == "L" and a.height >= 32
    assert np.array_equal(pixels(a), pixels(writer.write("Hello there", seed=3)))
    assert np.array_equal(writer.write_array("Hello there", seed=3), pixels(a))
    # the model pads 16 px a character; words are cropped to their ink before joining
    word = np.full((32, 64), 255, np.uint8)
    word[10:20, 5:30] = 0
    assert crop_to_ink(word).shape == (32, 25)


def test_write_batch_equals_write(writer, monkeypatch):
    texts = ["one two", "three", "Hello there, friend", "one"]
    calls = []
    decode = writer.model.decode
    monkeypatch.setattr(writer.model, "decode", lambda *a, **k: calls.append(1) or decode(*a, **k))
    batch = writer.write_batch(texts, seed=1)
    assert len(calls) == 1  # every word of every text in one padded decode call
    monkeypatch.undo()
    for text, img in zip(texts, batch):
        alone = writer.write(text, seed=1)
        assert img.size == alone.size
        assert np.abs(pixels(img) - pixels(alone)).max() <= 2


def test_wrapping_never_exceeds_the_width(writer):
    text = "the quick brown fox jumps over the lazy dog and runs far away\n\nnew paragraph here"
    for width in (160, 260, 400):
        page = writer.write_lines(text, width=width)
        assert page.width == width
        ink_cols = np.nonzero((pixels(page) < 255).any(axis=0))[0]
        assert PAD <= ink_cols.min() and ink_cols.max() < width - PAD  # the margins stay paper
    one_line = writer.write_lines("the quick brown fox")
    assert one_line.height < writer.write_lines("the quick\nbrown fox").height
    assert writer.write_lines("a\nb").height < writer.write_lines("a\n\nb").height  # paragraph gap
    with pytest.warns(UserWarning, match="wider than|more than"):
        wide = writer.write_lines("incomprehensibilities", width=60)
    assert wide.width > 60  # the one long word gets its own line, sticking out


def test_variations(writer):
    renders = writer.variations("hello world", 3, seed=2)
    assert len(renders) == 3
    assert np.array_equal(pixels(renders[0]), pixels(writer.write_lines("hello world", seed=2)))
    assert not all(
        r.size == renders[0].size and np.array_equal(pixels(r), pixels(renders[0])) for r in renders[1:]
    )


def test_text_errors(writer):
    for empty in ("", "   \n\t "):
        with pytest.raises(UserError, match="nothing to write"):
            writer.write(empty)
    with pytest.raises(UserError, match=r"cannot write: 'é' '→'.*replace_unknown="):
        writer.write("café → bar")
    cleaned = parse_text("café → bar", writer.charset, replace_unknown="?")
    assert cleaned == [[["caf?", "?", "bar"]]]
    assert parse_text("café → bar", writer.charset, replace_unknown="") == [[["caf", "bar"]]]
    assert writer.write("café", replace_unknown="?").size == writer.write("caf?").size
    with pytest.raises(UserError, match="no style words"):
        Writer(writer.model, [])


def test_missing_model_says_how_to_train(tmp_path, style):
    with pytest.raises(UserError, match=r"no trained model at .*scriptvit train"):
        Writer.from_images(style, model=tmp_path / "nothing-here")


# --- the CLI ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, model, style):
    root = tmp_path_factory.mktemp("cli")
    model.save_pretrained(root / "model")
    paths = []
    for text, img in zip(STYLE_TEXTS[:3], style):
        paths.append(str(root / f"{text}.png"))
        Image.fromarray(img).save(paths[-1])
    return root, paths


def test_cli_writes_png(cli_files, capsys):
    root, styles = cli_files
    out = root / "out" / "hello.png"
    argv = [
        "write",
        "--style",
        *styles,
        "--text",
        "Hello world",
        "-o",
        str(out),
        "--model",
        str(root / "model"),
    ]
    assert main(argv) == 0
    img = Image.open(out)
    assert img.format == "PNG" and img.height >= 32
    assert "fewer than k = 5" in capsys.readouterr().err
    assert main([*argv, "--variations", "2", "--width", "200"]) == 0
    assert Image.open(root / "out" / "hello_2.png").width == 200


def test_cli_text_file(cli_files, tmp_path):
    root, styles = cli_files
    (tmp_path / "t.txt").write_text("Dear Sam,\nthank you!\n\nJo", encoding="utf-8")
    out = tmp_path / "letter.png"
    argv = ["write", "--style", *styles, "--text-file", str(tmp_path / "t.txt"), "-o", str(out)]
    assert main([*argv, "--model", str(root / "model"), "--width", "300"]) == 0
    assert Image.open(out).width == 300


@pytest.mark.parametrize(
    "args, message",
    [
        (["--text", "café"], "cannot write: 'é'"),
        (["--text", "  "], "nothing to write"),
        (["--text", "hi", "--model", "{root}/no-model"], "scriptvit train"),
        (["--text", "hi", "--style", "{root}/missing.png"], "missing.png: no such file"),
        (["--text", "hi", "--style", "{root}/corrupt.png"], "corrupt.png"),
        (["--text", "hi", "--k", "99"], "k must be between"),
        (["--text-file", "{root}/nope.txt"], "cannot read --text-file"),
    ],
)
def test_cli_errors_are_one_line(cli_files, capsys, args, message):
    root, styles = cli_files
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    args = [a.format(root=root) for a in args]
    argv = ["write", "-o", str(root / "x.png"), "--model", str(root / "model")]
    argv += args if "--style" in args else [*args, "--style", *styles]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("scriptvit: error: ") and message in err[-1], err
    assert not any("Traceback" in line for line in err)


# --- test-time adaptation -------------------------------------------------------------------------
def _critic(model):
    from scriptvit_lib.writer_classifier import WriterClassifier

    torch.manual_seed(3)
    return WriterClassifier(num_writers=3, ch=model.config.wcls_ch).eval()


def test_adapt_fits_every_memory_to_its_own_style_words(model, style):
    plain = Writer.from_images(style, model=model)
    adapted = Writer.from_images(style, model=model).adapt(
        STYLE_TEXTS, steps=4, lr=0.1, critic=_critic(model)
    )
    for draw in (0, 1):  # each draw (its own words and order) gets its own fitted memory
        a, p = adapted.memory(draw), plain.memory(draw)
        assert a.tokens.shape == p.tokens.shape and not torch.allclose(a.tokens, p.tokens)
        assert not a.tokens.requires_grad
    assert adapted.memory(0) is adapted.memory(0)  # cached: adapted once
    assert not np.array_equal(pixels(adapted.write("Hello")), pixels(plain.write("Hello")))
    with pytest.raises(UserError, match="7 style words but 2 texts"):
        plain.adapt(["two", "texts"], critic=_critic(model))
    with pytest.raises(UserError, match="unknown"):
        plain.adapt([*STYLE_TEXTS[:6], "café"], critic=_critic(model))
    with pytest.raises(UserError, match="pass critic="):
        plain.adapt(STYLE_TEXTS)  # a model object has no folder to find W in


def test_adapt_with_the_discriminators_features_too(model, style):
    from scriptvit_lib.discriminator import Discriminator

    torch.manual_seed(4)
    disc = Discriminator(ch=model.config.d_ch).eval()
    kw = dict(steps=4, lr=0.1, critic=_critic(model))
    w_only = Writer.from_images(style, model=model).adapt(STYLE_TEXTS, **kw)
    w_and_d = Writer.from_images(style, model=model).adapt(STYLE_TEXTS, feat_d=7.0, discriminator=disc, **kw)
    assert w_and_d._adapt[0].discriminator is disc and w_only._adapt[0].discriminator is None
    assert not torch.allclose(w_and_d.memory(0).tokens, w_only.memory(0).tokens)
    with pytest.raises(UserError, match="pass discriminator="):
        Writer.from_images(style, model=model).adapt(STYLE_TEXTS, feat_d=7.0, **kw)
    with pytest.raises(UserError, match=">= 0"):
        Writer.from_images(style, model=model).adapt(STYLE_TEXTS, feat_d=-1.0, discriminator=disc, **kw)


def test_cli_style_texts_adapt_with_the_folders_critics(cli_files, tmp_path, capsys):
    import shutil

    from scriptvit_lib.trainer import save_critics

    root, styles = cli_files
    argv = ["write", "--style", *styles, "--text", "Hi", "--style-texts", " ".join(STYLE_TEXTS[:3])]
    assert main([*argv, "-o", str(tmp_path / "x.png"), "--model", str(root / "model")]) == 2
    assert "has no critics.safetensors" in capsys.readouterr().err  # a folder without critics: clear error
    shutil.copytree(root / "model", tmp_path / "m")
    model = ScriptViT.from_pretrained(tmp_path / "m")
    save_critics({"W": _critic(model).state_dict()}, tmp_path / "m")
    out = tmp_path / "adapted.png"
    assert main([*argv, "-o", str(out), "--model", str(tmp_path / "m"), "--adapt-steps", "3"]) == 0
    assert "adapting the style to its 3 words" in capsys.readouterr().err
    plain = tmp_path / "plain.png"
    assert main([*argv[:-2], "-o", str(plain), "--model", str(tmp_path / "m")]) == 0
    assert not np.array_equal(pixels(Image.open(out)), pixels(Image.open(plain)))
    with_d = [*argv, "-o", str(tmp_path / "d.png"), "--model", str(tmp_path / "m"), "--adapt-steps", "3"]
    assert main([*with_d, "--adapt-feat-d", "7"]) == 2  # W only in the folder: D is missing
    assert "holds no discriminator D" in capsys.readouterr().err
    assert main([*argv[:-2], "-o", str(plain), "--model", str(tmp_path / "m"), "--adapt-feat-d", "7"]) == 2
    assert "give --style-texts too" in capsys.readouterr().err
    from scriptvit_lib.discriminator import Discriminator

    torch.manual_seed(4)
    d = Discriminator(ch=model.config.d_ch)
    save_critics({"W": _critic(model).state_dict(), "D": d.state_dict()}, tmp_path / "m")
    assert main([*with_d, "--adapt-feat-d", "7"]) == 0
    assert not np.array_equal(pixels(Image.open(tmp_path / "d.png")), pixels(Image.open(out)))
