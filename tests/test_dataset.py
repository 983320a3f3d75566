"""Contract of the font-writer data set: fonts -> writers -> shards -> WordSets.

Most tests build from DejaVu fonts that ship inside matplotlib (no network); one fetches two
small families with npm into a temporary cache and is skipped where npm or the network is missing.
"""

from __future__ import annotations

import json
import shutil
import warnings
import zlib
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from scriptvit_lib import dataset, fonts, render
from scriptvit_lib.cli import UserError, main

MPL_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
# 5 families -> sorted index 4 ("dejavuserif-bold") is the TEST family
FAMILIES = ["DejaVuSans", "DejaVuSans-Bold", "DejaVuSansMono", "DejaVuSerif", "DejaVuSerif-Bold"]
WORDS = 16


@pytest.fixture(scope="session")
def fonts_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fonts")
    for name in FAMILIES:
        shutil.copy(MPL_FONTS / f"{name}.ttf", d)
    return d


def build(out, fonts_dir, **kw):
    args = dict(fonts_dir=fonts_dir, words_per_writer=WORDS, seed=0, workers=1) | kw
    return dataset.build_dataset(out, **args)


@pytest.fixture(scope="session")
def built(tmp_path_factory, fonts_dir) -> Path:
    return build(tmp_path_factory.mktemp("built") / "ds", fonts_dir)


def shard_arrays(root: Path) -> dict[str, np.ndarray]:
    out = {}
    for p in sorted((root / "shards").glob("*.npz")):
        with np.load(p) as z:
            out[p.stem] = z["images"]
    return out


def test_layout_and_loader(built):
    for name in ["writers.json", "manifest.csv", "build.json", "shards"]:
        assert (built / name).exists(), name
    writers = json.loads((built / "writers.json").read_text())
    assert [w["id"] for w in writers] == [f"{f.lower()}-0" for f in FAMILIES]
    assert {"id", "family", "font_file", "weight", "style", "split"} <= set(writers[0])
    assert (built / writers[0]["font_file"]).is_file()  # fonts copied in: self-contained
    sets = dataset.load_font_dataset(built)
    assert set(sets) == {"train", "val", "test"}
    assert sum(len(s) for s in sets.values()) == WORDS * len(FAMILIES)
    for s in sets["train"].samples + sets["test"].samples:
        assert s.image.dtype == np.uint8 and s.image.shape[0] == 32 and s.image.shape[1] >= 4
        assert s.image.min() < 128 and s.image.max() > 200  # dark ink on white paper
    info = json.loads((built / "build.json").read_text())
    assert info["counts"]["writers"] == len(FAMILIES) and info["seed"] == 0


def test_split_is_writer_disjoint_and_val_words_unseen(built):
    sets = dataset.load_font_dataset(built)
    train_w = set(sets["train"].writers) | set(sets["val"].writers)
    assert set(sets["test"].writers) == {"dejavuserif-bold-0"}  # sorted index 4
    assert not train_w & set(sets["test"].writers)
    family = {w["id"]: w["family"] for w in json.loads((built / "writers.json").read_text())}
    assert not {family[w] for w in train_w} & {family[w] for w in sets["test"].writers}
    for w in sets["val"].writers:
        seen = {s.text.lower() for s in sets["train"].of_writer(w)}
        for s in sets["val"].of_writer(w):
            assert s.text.lower() not in seen
            assert zlib.crc32(s.text.lower().encode()) % 10 == 0


def test_same_seed_same_pixels_also_in_parallel(built, fonts_dir, tmp_path):
    again = build(tmp_path / "again", fonts_dir, workers=2)
    a, b = shard_arrays(built), shard_arrays(again)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    other = shard_arrays(build(tmp_path / "other", fonts_dir, seed=1))
    assert not any(a[k].shape == other[k].shape and np.array_equal(a[k], other[k]) for k in a)


def test_resume_rerenders_only_missing_or_broken_shards(built, fonts_dir, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(built, root)
    shards = root / "shards"
    (shards / "dejavusans-0.npz").unlink()
    broken = shards / "dejavuserif-0.npz"
    broken.write_bytes(broken.read_bytes()[:200])  # truncated, as by a crash
    kept = {p.name: p.stat().st_mtime_ns for p in shards.glob("*.npz") if p != broken}
    build(root, fonts_dir)
    for name, mtime in kept.items():
        assert (shards / name).stat().st_mtime_ns == mtime, f"{name} was rendered again"
    ref, now = shard_arrays(built), shard_arrays(root)
    for k in ["dejavusans-0", "dejavuserif-0"]:
        np.testing.assert_array_equal(ref[k], now[k])
    assert json.loads((root / "build.json").read_text())["rendered"] == 2


def test_one_writer_never_writes_a_word_twice_the_same(built):
    meta = dataset.load_writers(built)[0]
    a = dataset.render_word(meta, "handwriting", np.random.default_rng(1))
    b = dataset.render_word(meta, "handwriting", np.random.default_rng(2))
    c = dataset.render_word(meta, "handwriting", np.random.default_rng(1))
    assert a.shape[0] == b.shape[0] == 32
    assert a.shape != b.shape or not np.array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_writers_of_one_family_differ(fonts_dir, tmp_path):
    root = build(tmp_path / "ds", fonts_dir, writers_per_family=2, words_per_writer=2)
    w0, w1 = dataset.load_writers(root)[:2]
    assert (w0["id"], w1["id"]) == ("dejavusans-0", "dejavusans-1")
    assert w0["style"] != w1["style"]


def test_glyph_variation_gives_later_writers_letters_of_their_own(fonts_dir, tmp_path):
    plain = build(tmp_path / "plain", fonts_dir, writers_per_family=2, words_per_writer=4)
    varied = build(
        tmp_path / "varied", fonts_dir, writers_per_family=2, words_per_writer=4, glyph_variation=1.0
    )
    a = {w["id"]: w for w in dataset.load_writers(plain)}
    b = {w["id"]: w for w in dataset.load_writers(varied)}
    for wid, w in a.items():
        if wid.endswith("-0"):  # the first writer keeps the font's letters: same style, same pixels
            assert b[wid]["style"] == w["style"] and "glyphs" not in w["style"]
            np.testing.assert_array_equal(shard_arrays(plain)[wid], shard_arrays(varied)[wid])
        else:  # the others: the same draw of slant, size, ink..., plus letter shapes of their own
            seed = b[wid]["style"]["glyph_seed"]
            assert b[wid]["style"] == w["style"] | {"glyphs": 1.0, "glyph_seed": seed}
    w1 = b["dejavusans-1"]
    style = render.WriterStyle(**w1["style"])
    assert style.glyph("a") == style.glyph("a") != style.glyph("b")  # per letter, fixed
    assert render.WriterStyle(**a["dejavusans-1"]["style"]).glyph("a") == (1.0, 1.0, 0.0, 0.0)
    # the same word by the same writer (same per-sample draw): letters change, the word stays a word
    rng = 3
    w1_font = a["dejavusans-1"]
    mine = dataset.render_word(w1 | {"font_file": varied / w1["font_file"]}, "handwriting", rng)
    font_s = dataset.render_word(w1_font | {"font_file": plain / w1_font["font_file"]}, "handwriting", rng)
    assert mine.shape[0] == font_s.shape[0] == 32
    assert abs(mine.shape[1] - font_s.shape[1]) < 0.25 * font_s.shape[1]
    ink_mine, ink_font = (255 - mine.astype(float)).sum(), (255 - font_s.astype(float)).sum()
    assert abs(ink_mine - ink_font) < 0.3 * ink_font
    if mine.shape == font_s.shape:
        assert not np.array_equal(mine, font_s)
    with pytest.raises(UserError, match="glyph-variation"):
        build(tmp_path / "bad", fonts_dir, glyph_variation=-1)
    with pytest.raises(UserError, match="writers-per-family 2 or more"):  # else it would change nothing
        build(tmp_path / "bad", fonts_dir, glyph_variation=1.0)
    from scriptvit_lib.data import load_data

    with pytest.raises(UserError, match="dejavusans-1 differs.*style.*--glyph-variation"):
        load_data([plain, varied])  # an extra folder must give the writers the same letters


def test_coverage_sees_tofu_and_drops_fonts_without_lowercase(tmp_path):
    assert fonts.coverage(MPL_FONTS / "DejaVuSans.ttf", "ab\u4e00") == {"a", "b"}  # no CJK
    symbols = MPL_FONTS / "STIXSizOneSymReg.ttf"  # big brackets only: letters would be tofu
    assert fonts.coverage(symbols, "a(b)") == {"(", ")"}
    meta = {"font_file": str(symbols), "style": render.WriterStyle.sample(np.random.default_rng(0))}
    assert dataset.render_word(meta, "(", 0).shape[0] == 32
    shutil.copy(MPL_FONTS / "DejaVuSans.ttf", tmp_path)
    shutil.copy(symbols, tmp_path)
    with pytest.warns(UserWarning, match="stixsizonesymreg.*0 of 26"):
        fams = fonts.families_from_dir(tmp_path)
    assert [f.name for f in fams] == ["dejavusans"]


def test_family_lists(tmp_path):
    assert len(fonts.resolve_families("core")) == 38
    assert fonts.resolve_families("all") == fonts.shipped_families()
    assert fonts.resolve_families("Caveat, kalam") == ["caveat", "kalam"]
    listed = tmp_path / "fams.txt"
    listed.write_text("# my hands\ncaveat\nkalam  # neat\n\n")
    assert fonts.resolve_families(str(listed)) == ["caveat", "kalam"]
    listed.write_text("caveat\ncomic-sans\n")
    with pytest.raises(UserError, match="comic-sans"):
        fonts.resolve_families(str(listed))


def test_bad_inputs_are_user_errors(fonts_dir, tmp_path):
    with pytest.raises(UserError, match="not-a-font-family"):
        dataset.build_dataset(tmp_path / "a", families="caveat,not-a-font-family")
    with pytest.raises(UserError, match="empty"):
        build(tmp_path / "b", fonts_dir, vocab=[])
    with pytest.raises(UserError, match="not a built"):
        dataset.load_font_dataset(tmp_path)
    bad = tmp_path / "badfonts"
    bad.mkdir()
    (bad / "broken.ttf").write_bytes(b"not a font")
    with pytest.raises(UserError, match="broken.ttf"):
        fonts.families_from_dir(bad)


def test_missing_npm_points_to_fonts_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SCRIPTVIT_CACHE", str(tmp_path))  # nothing cached
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="npm is missing.*--fonts-dir"):
        dataset.build_dataset(tmp_path / "ds", families="caveat")


def test_cli_builds_and_reports_errors_in_one_line(fonts_dir, tmp_path, capsys):
    vocab = tmp_path / "words.txt"
    vocab.write_text("minimum\nquick\n")
    args = [
        "data",
        "build",
        "--out",
        str(tmp_path / "ds"),
        "--fonts-dir",
        str(fonts_dir),
        "--words",
        "3",
        "--workers",
        "1",
        "--vocab",
        str(vocab),
    ]
    assert main(args) == 0
    texts = {s.text for ws in dataset.load_font_dataset(tmp_path / "ds").values() for s in ws}
    assert texts <= {"minimum", "quick"}
    rare = ["data", "build", "--out", str(tmp_path / "rare"), "--fonts-dir", str(fonts_dir), "--words", "4"]
    assert main([*rare, "--workers", "1", "--rare-letters", "--only-train"]) == 0
    made = dataset.load_font_dataset(tmp_path / "rare")
    assert not made["test"] and all(
        set(s.text.lower()) & set("jkqvxz") for s in made["train"] if s.text.isalpha()
    )
    assert main(["data", "build", "--families", "comic-sans"]) == 2
    assert "unknown font family comic-sans" in capsys.readouterr().err


def test_rare_letter_vocabulary_asks_for_every_letter_equally():
    words, freq = dataset.default_vocabulary()
    rare, weight = dataset.rare_letter_vocabulary("zq")
    assert rare and all(("z" in w.lower()) or ("q" in w.lower()) for w in rare)
    assert abs(weight.sum() - 1) < 1e-9
    mass = {c: weight[[c in w.lower() for w in rare]].sum() for c in "zq"}
    assert (
        mass["z"] >= 0.5 and mass["q"] >= 0.5
    )  # each letter is drawn half the time (words with both count twice)
    running = freq[[("z" in w) for w in words]].sum() / freq.sum()
    assert running < 0.01 and mass["z"] > 50 * running  # running text asks for 'z' fifty times less often
    with pytest.raises(UserError, match="lower-case letters"):
        dataset.rare_letter_vocabulary("z!")


def test_only_train_rare_letter_folder_adds_words_to_the_same_writers(built, fonts_dir, tmp_path):
    from scriptvit_lib.data import load_data

    extra = build(tmp_path / "rare", fonts_dir, rare_letters="zq", splits=("train",))
    full = {w["id"]: w for w in json.loads((built / "writers.json").read_text())}
    mine = json.loads((extra / "writers.json").read_text())
    assert [w["id"] for w in mine] == [i for i, w in full.items() if w["split"] == "train"]
    assert all(w["style"] == full[w["id"]]["style"] for w in mine)  # the same hands
    sets = dataset.load_font_dataset(extra)
    assert not sets["test"]
    texts = [s.text for ws in sets.values() for s in ws]
    worded = [t for t in texts if t.isalpha()]  # punctuation and numbers come as in running text
    assert len(worded) >= 0.7 * len(texts) and all(set(t.lower()) & {"z", "q"} for t in worded)
    both, alone = load_data([built, extra]), dataset.load_font_dataset(built)
    for split in ("train", "val"):
        assert len(both[split]) == len(alone[split]) + len(sets[split])
    assert len(both["test"]) == len(alone["test"]) and set(both["train"].writers) == set(
        alone["train"].writers
    )
    other = build(tmp_path / "rare1", fonts_dir, rare_letters="zq", splits=("train",), seed=1)
    with pytest.raises(UserError, match="differs.*style.*same --seed"):
        load_data([built, other])
    with pytest.raises(UserError, match="not both"):
        build(tmp_path / "x", fonts_dir, rare_letters="z", vocab=["quiz"])


def test_writer_grid_figure(built, tmp_path):
    fig = dataset.writer_grid_figure(built, text="Hello", n_writers=4, path=tmp_path / "w.png")
    assert len(fig.axes) == 4 and (tmp_path / "w.png").stat().st_size > 0


def test_npm_fetch_caches_family_with_license(monkeypatch, tmp_path):
    if shutil.which("npm") is None:
        pytest.skip("npm not installed")
    monkeypatch.setenv("SCRIPTVIT_CACHE", str(tmp_path))
    monkeypatch.setenv("npm_config_fetch_retries", "0")  # offline: fail fast, then skip
    monkeypatch.setenv("npm_config_fetch_timeout", "15000")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fams, skipped = fonts.fetch_families(["indie-flower", "reenie-beanie"])
    if skipped:
        pytest.skip(f"npm could not fetch fonts (offline?): {[str(w.message) for w in caught]}")
    folder = tmp_path / "fonts" / "indie-flower"
    assert (folder / "LICENSE").is_file() and list(folder.glob("*-latin-400-normal.woff*"))
    monkeypatch.setattr(shutil, "which", lambda name: None)  # cached now: npm not needed
    again, _ = fonts.fetch_families(["indie-flower", "reenie-beanie"])
    assert again == fams
    img = render.render_text(
        str(fams[0].files[400]),
        render.WriterStyle.sample(np.random.default_rng(0)),
        "Quick",
        np.random.default_rng(0),
    )
    assert img.shape[0] == 32 and img.dtype == np.uint8


def test_default_vocabulary_has_no_common_profanity():
    words, freqs = dataset.default_vocabulary()
    assert len(words) == len(freqs) > 20000
    assert not [w for w in words if dataset.offensive(w)]
    assert dataset.offensive("Fucking") and dataset.offensive("bullshit")
    assert not any(dataset.offensive(w) for w in ("cocoa", "grape", "scrape", "therapist", "class"))


def test_bench_char_widths_fits_on_training_words_and_writes_the_model_config(built, tmp_path):
    import subprocess
    import sys

    from scriptvit_lib.charset import Charset
    from scriptvit_lib.config import ScriptViTConfig
    from scriptvit_lib.generator import ScriptViT

    script = Path(__file__).resolve().parents[1] / "bench" / "char_widths.py"
    ScriptViT(ScriptViTConfig.preset("tiny", width_mode="predicted")).save_pretrained(tmp_path / "m")
    run = [sys.executable, str(script), str(tmp_path / "m"), "--data", str(built)]
    out = subprocess.run(run + ["--dry-run"], check=True, capture_output=True, text=True).stdout
    assert (
        "by character widths" in out and ScriptViT.from_pretrained(tmp_path / "m").config.char_widths is None
    )
    subprocess.run(run, check=True, capture_output=True, text=True)
    cfg = ScriptViT.from_pretrained(tmp_path / "m").config
    cs = Charset()
    r = cfg.char_widths
    assert r[cs.encode("m")[0]] > r[cs.encode("n")[0]] > r[cs.encode("i")[0]]  # in every font here
    # a run folder: its model_config.json gets the same widths (a resume then trains with them)
    (tmp_path / "run").mkdir()
    ScriptViTConfig.preset("tiny", width_mode="predicted").save(tmp_path / "run" / "model_config.json")
    subprocess.run([sys.executable, str(script), str(tmp_path / "run"), "--data", str(built)], check=True)
    assert ScriptViTConfig.load(tmp_path / "run" / "model_config.json").char_widths == r
    empty = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "nothing"), "--data", str(built)],
        capture_output=True,
        text=True,
    )
    assert empty.returncode != 0 and "neither a model folder" in empty.stderr
    ScriptViT(ScriptViTConfig.preset("tiny")).save_pretrained(tmp_path / "fixed")  # width_mode "fixed"
    bad = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "fixed"), "--data", str(built)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "fixed width" in bad.stderr and "Traceback" not in bad.stderr
