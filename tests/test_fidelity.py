"""Style-fidelity measures: the sharpness statistic separates real from blurred words, the
hand-crafted judge attributes real words to their writers, the baselines are built as stated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from scriptvit_lib.config import ScriptViTConfig
from scriptvit_lib.data import mini_dataset
from scriptvit_lib.evaluate import halves
from scriptvit_lib.features import JudgeConfig, train_judges
from scriptvit_lib.fidelity import (
    centroid_geometry,
    loo_top1,
    mean_memory,
    nearest_centroid_top1,
    per_writer_attribution,
    per_writer_correlations,
    per_writer_figure,
    sharpness,
    style_fidelity,
    style_memory,
    style_separability,
    style_statistics,
    write_texts,
)
from scriptvit_lib.generator import ScriptViT
from scriptvit_lib.metrics import retrieval_top1

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return mini_dataset(ROOT / "data" / "fonts-mini", words_per_writer=40)


def _bench_module(name: str = "style_fidelity"):
    """A script of bench/ (not a package) loaded as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def blur3(im: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(im).filter(ImageFilter.BoxBlur(1)))  # 3x3 box


def test_sharpness_separates_real_words_from_blurred_ones(data):
    words = [s.image for s in data["train"]][:200]
    real = np.mean([sharpness(im) for im in words])
    blurred = np.mean([sharpness(blur3(im)) for im in words])
    assert blurred < 0.8 * real  # the 20 % band would flag the blur
    assert sharpness(np.full((32, 40), 255, np.uint8)) == 0.0  # no ink, no edges


def test_style_statistics_see_width_and_slant():
    img = np.full((32, 60), 255, np.uint8)
    img[8:24, 10:50:8] = 0  # six vertical strokes
    base = style_statistics(img, "abc")
    wide = np.asarray(Image.fromarray(img).resize((90, 32), Image.NEAREST))
    assert style_statistics(wide, "abc")[12] == pytest.approx(1.5 * base[12], rel=0.1)  # px per char
    slanted = np.asarray(
        Image.fromarray(img).transform((60, 32), Image.AFFINE, (1, 0.5, -8, 0, 1, 0), fillcolor=255)
    )
    assert np.abs(style_statistics(slanted, "abc")[:8] - base[:8]).sum() > 0.3  # orientations moved


def test_hand_crafted_judge_attributes_real_words_to_their_writers(data):
    a, b = halves(data["train"], 12, seed=0)
    sa = np.stack([style_statistics(s.image, s.text) for s in a])
    sb = np.stack([style_statistics(s.image, s.text) for s in b])
    wa, wb = [s.writer for s in a], [s.writer for s in b]
    right = nearest_centroid_top1(sb, wb, sa, wa)
    assert right > 0.5  # 8 writers: chance 0.125
    wrong = nearest_centroid_top1(sb, list(np.roll(np.array(wb), 12)), sa, wa)  # labels of the next writer
    assert wrong < 0.3


def test_mean_memory_pools_every_writers_tokens(data):
    torch.manual_seed(0)
    model = ScriptViT(ScriptViTConfig.preset("tiny", blank_patches="drop")).eval()
    mems = [style_memory(model, data["train"], w, 3, 0) for w in sorted(data["train"].writers)[:3]]
    pooled = mean_memory(mems)
    assert pooled.tokens.shape[1] == sum(int((~m.pad_mask).sum()) for m in mems) and not pooled.pad_mask.any()
    images = write_texts(model, pooled, ["the", "house"])
    assert [im.shape for im in images] == [(32, 48), (32, 80)]


def test_style_fidelity_reports_targets_floors_and_baselines(data, tmp_path):
    torch.manual_seed(0)
    model = ScriptViT(ScriptViTConfig.preset("tiny")).eval()
    cfg = JudgeConfig(feat_ch=4, feat_dim=32, rec_ch=4, feat_steps=30, rec_steps=2)
    judges = train_judges(data["train"], tmp_path, config=cfg, progress=False)
    result, extra = style_fidelity(model, data, judges, n_per_writer=6, progress=False, distinct_texts=4)
    assert set(result["rows"]) == {"model", "mean", "nearest", "floor"}
    assert set(result["targets"]) == {
        "1_attribution",
        "2_distribution",
        "3_sharpness",
        "4_legibility",
        "5_style_matters",
    }
    assert result["rows"]["floor"]["attribution_stats"] > result["rows"]["model"]["attribution_stats"] - 1e-9
    assert not result["targets"]["3_sharpness"]["pass"]  # an untrained model writes noise, not strokes
    assert set(result["nearest_training_writer"].values()) <= set(data["train"].writers)
    assert len(extra["images"]["model"]) == len(extra["a"]) == result["words_per_set"]
    per = result["per_writer"]
    assert set(per) == set(extra["a"].writers)
    # every writer has as many words in A: the per-writer shares average to the overall one
    for row in ("model", "floor"):
        assert np.mean([p[row] for p in per.values()]) == pytest.approx(
            result["rows"][row]["attribution_learned"]
        )
    assert all(0 <= p["novelty"] <= 2 for p in per.values())
    for row in ("model", "floor"):  # HWD is the mean of its per-writer terms
        assert np.mean([p[f"hwd_{row}"] for p in per.values()]) == pytest.approx(result["rows"][row]["hwd"])
    geo = result["geometry"]
    assert (
        geo["floor"]["direction"] > geo["model"]["direction"]
    )  # real halves agree; an untrained model does not
    sep = result["separability"]
    assert sep["sets_per_writer"] == 8 and sep["writers"] == len(per)
    assert all(0 <= sep[key] <= 1 for key in ("memory_mean", "memory_mean_std", "judges"))
    bench = _bench_module()
    md = bench.markdown({"model": "tiny", "data": "mini", **result})
    assert "| 1 attribution |" in md and "## Per writer" in md
    assert sum(line.startswith(f"| {w} |") for line in md.splitlines() for w in per) == len(per)
    per_writer_figure(result, tmp_path / "per_writer.png")
    assert (tmp_path / "per_writer.png").stat().st_size > 10_000


def test_per_writer_attribution_names_who_words_are_mistaken_for():
    # writer "a"'s words all sit on "b"'s centroid; "b" and "c" are attributed correctly
    e = {"a": [1.0, 0.0, 0.0], "b": [0.0, 1.0, 0.0], "c": [0.0, 0.0, 1.0]}
    ref = {"embedding": torch.tensor([e[w] for w in "aabbcc"]), "writers": list("aabbcc")}
    cand = {
        "embedding": torch.tensor([e["b"], e["b"], e["a"], e["b"], e["c"], e["c"]]),
        "writers": list("aabbcc"),
    }
    per = per_writer_attribution(ref, cand)
    assert per["a"] == {"top1": 0.0, "confused_with": "b", "confused_share": 1.0}
    assert per["b"]["top1"] == 0.5 and per["b"]["confused_with"] == "a"
    assert per["c"] == {"top1": 1.0, "confused_with": None, "confused_share": 0.0}
    # equal words per writer: the mean over writers is the overall attribution
    overall = retrieval_top1(cand["embedding"], cand["writers"], ref["embedding"], ref["writers"])
    assert np.mean([p["top1"] for p in per.values()]) == pytest.approx(overall)


def test_per_writer_correlations_rank_writers():
    per = {w: {"model": m, "floor": f, "novelty": n, "nearest_baseline": 0.1} for w, m, f, n in
           [("a", 0.1, 0.5, 0.9), ("b", 0.4, 0.7, 0.5), ("c", 0.8, 0.9, 0.1)]}  # fmt: skip
    rho = per_writer_correlations(per)
    assert rho["floor"] == pytest.approx(1.0) and rho["novelty"] == pytest.approx(-1.0)
    assert np.isnan(rho["nearest_baseline"])  # constant: undefined, not 0


def test_loo_top1_leaves_each_row_out_of_its_own_centroid():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 5
    labels = [w for w in "abcd" for _ in range(5)]
    tight = torch.stack([centres["abcd".index(w)] for w in labels]) + 0.1 * torch.randn(20, 16, generator=g)
    assert loo_top1(tight, labels) == 1.0
    # pure noise: no writer signal, so about chance (0.25) - never the 1.0 that counting a row in
    # its own centroid would give with 2 rows per writer
    noise = torch.randn(8, 16, generator=g)
    assert loo_top1(noise, list("aabbccdd")) <= 0.5
    with pytest.raises(ValueError, match=">= 2 rows"):
        loo_top1(noise[:3], list("abb"))


def test_centroid_geometry_tells_direction_from_shrinkage_and_shift():
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(5, 32, generator=g)
    labels = [w for w in "abcde" for _ in range(4)]
    words = torch.stack([centres["abcde".index(w)] for w in labels]) + 0.01 * torch.randn(20, 32, generator=g)
    ref = {"embedding": words, "writers": labels}
    same = centroid_geometry(ref, {"embedding": words.clone(), "writers": labels})
    assert same["direction"] == pytest.approx(1.0) and same["magnitude"] == pytest.approx(1.0)
    assert same["shift"] == pytest.approx(0.0, abs=1e-9)
    shuffled = centroid_geometry(ref, {"embedding": words, "writers": labels[4:] + labels[:4]})
    assert shuffled["direction"] < 0.5  # every writer placed where another one is


def test_style_separability_follows_the_style_down_the_generator(data, tmp_path):
    torch.manual_seed(0)
    model = ScriptViT(ScriptViTConfig.preset("tiny")).eval()
    cfg = JudgeConfig(feat_ch=4, feat_dim=32, rec_ch=4, feat_steps=30, rec_steps=2)
    judges = train_judges(data["train"], tmp_path, config=cfg, progress=False)
    sep = style_separability(model, data["test"], judges, k=5, draws=3, texts=["ab", "hello"])
    assert sep["sets_per_writer"] == 3 and sep["texts"] == 2
    for key in ("memory_mean", "fusion_output", "generated_raw_width", "generated", "judges"):
        assert 0 <= sep[key] <= 1
    assert not model.synthesis._forward_hooks  # the probe is removed
    with pytest.raises(ValueError, match="separability needs"):
        style_separability(model, halves(data["test"], 4, 0)[0], judges, k=3)  # 4 words: < 2 sets of 3


def test_style_separability_append_keeps_comparable_rows_and_replaces_rescored_ones(tmp_path):
    mod = _bench_module("style_separability")
    saved = {"data": str(tmp_path), "texts": ["ab", "cd"], "rows": [{"label": "v1"}, {"label": "v7"}]}
    kept = mod.kept_rows(saved, str(tmp_path / "." / ""), ["ab", "cd"], {"v7", "v8"})
    assert kept == [{"label": "v1"}]  # v7 scored again: its old row goes, v8's is new
    with pytest.raises(ValueError, match="texts"):
        mod.kept_rows(saved, str(tmp_path), ["ab", "xy"], {"v8"})
    with pytest.raises(ValueError, match="scored on"):
        mod.kept_rows(saved, str(tmp_path / "other"), ["ab", "cd"], {"v8"})


def test_fidelity_runs_draws_bars_and_curves(tmp_path):
    mod = _bench_module("fidelity_runs")
    keys = [k for k, _ in mod.PANELS]

    def row(run, step, v):
        scores = {k: v for k in keys}
        return {"run": run, "step": step, "minutes": step / 60, "training_writers": 8,
                "model": scores, "mean": scores, "nearest": scores, "floor": scores}  # fmt: skip

    rows = [row("shared", 100, 0.2), row("a", 200, 0.4), row("b", 200, 0.5)]
    for xkey in ("run", "minutes"):
        mod.plot(rows, xkey, tmp_path / f"{xkey}.png")
        assert (tmp_path / f"{xkey}.png").stat().st_size > 10_000
    # branches start with the shared history; runs side by side in time get a line each;
    # one point per run on the writers axis is one line
    assert {k: [r["step"] for r in v] for k, v in mod.curves(rows, "minutes").items()} == {
        "a": [100, 200],
        "b": [100, 200],
    }
    apart = [row("box", 1000, 0.3), row("tent", 1000, 0.4), row("box", 2000, 0.5)]
    assert {k: len(v) for k, v in mod.curves(apart, "minutes").items()} == {"box": 2, "tent": 1}
    assert list(mod.curves(apart, "training_writers")) == [""]
    # minute labels: close points share one (the later wins at the end), the ends always labelled
    assert mod.spaced([0, 100, 2000, 5000, 5300, 5500], span=5500) == [0, 2, 3, 5]
    assert mod.spaced([0, 5000, 5200], span=5200) == [0, 2]
    assert mod.spaced([0, 3000, 6000], span=6000) == [0, 1, 2]
    assert mod.spaced([7], span=1) == [0] and mod.spaced([], span=1) == []
    # continuing a curve: a re-scored checkpoint replaces its saved row, the rest stay, in x order
    saved = [dict(row("box", 2000, 0.5), checkpoint="b.pt"), dict(row("box", 1000, 0.3), checkpoint="a.pt")]
    new = [dict(row("box", 3000, 0.6), checkpoint="c.pt"), dict(row("box", 2000, 0.55), checkpoint="b.pt")]
    got = mod.merged(saved, new, "minutes")
    assert [(r["checkpoint"], r["model"]["fid"]) for r in got] == [
        ("a.pt", 0.3),
        ("b.pt", 0.55),
        ("c.pt", 0.6),
    ]
    assert [r["checkpoint"] for r in mod.merged(saved, new, "run")] == ["a.pt", "c.pt", "b.pt"]


def test_fid_sensitivity_transforms_change_words_as_named(data, tmp_path):
    mod = _bench_module("fid_sensitivity")
    im = data["train"][0].image
    ink = lambda x: (255 - x.astype(float)).sum()  # noqa: E731
    assert mod.narrower(im, 0.9).shape == (32, round(im.shape[1] * 0.9))
    assert ink(mod.thicker(im, 2)) > 1.2 * ink(im) and np.array_equal(mod.thicker(im, 1), im)
    assert abs(ink(mod.lighter(im, 0.8)) / ink(im) - 0.8) < 0.02
    assert sharpness(mod.blur(im, 0.7)) < 0.9 * sharpness(im)
    # ink matching gives the image the reference's grey levels (quantiles), keeping its shapes
    ref = mod.lighter(data["train"][1].image, 0.5)
    matched = mod.match_ink(im, ref)
    order = np.argsort(im.ravel(), kind="stable")
    assert np.all(np.diff(matched.ravel()[order].astype(int)) >= 0)  # a monotone map of grey levels
    assert abs(int(matched.min()) - int(ref.min())) <= 1
    assert matched.min() >= ref.min() and abs(float(matched.mean()) - float(ref.mean())) < 3
    rows = [{"what": "real-vs-real floor", "transform": None, "amount": None, "fid": 6.0, "hwd": 3.0}]
    rows += [{"what": f"real, blur {x}", "transform": "blur", "amount": x, "fid": 6 + 100 * x, "hwd": 3 + x}
             for x in (0.35, 0.7)]  # fmt: skip
    rows += [{"what": "model", "transform": "model", "amount": None, "fid": 40.0, "hwd": 8.0}]
    rows += [{"what": "model, centroids moved", "transform": "model", "amount": None, "fid": 12.0,
              "hwd": None}]  # fmt: skip
    md = mod.markdown({"data": "d", "writers": 2, "words_per_set": 4, "seed": 0, "rows": rows,
                       "model_width_ratio": {"median": 1.0, "q25": 0.9, "q75": 1.1}})  # fmt: skip
    assert "FID <= 12.0" in md and "| model | 40.0 | 6.7 | 8.00 | 2.7 |" in md
    assert "| model, centroids moved | 12.0 | 2.0 | - | - |" in md
    noisy = mod.add_noise([im], 2.0, 0)[0]
    assert noisy.shape == im.shape and 0.1 < np.abs(noisy.astype(float) - im).mean() < 3
    ink_px = im < 128
    assert np.abs(noisy.astype(float) - im)[ink_px].mean() > np.abs(noisy.astype(float) - im)[~ink_px].mean()
    # centroid swaps: each writer's mean moves onto the other set's; spread around it stays
    gen = torch.randn(6, 3, dtype=torch.float64)
    real = torch.randn(4, 3, dtype=torch.float64) + 5
    gw, rw = np.array(list("aaabbb")), np.array(list("aabb"))
    moved, moved_real = mod.centroid_swaps(gen, gw, real, rw)
    for w in "ab":
        g, r = torch.from_numpy(gw == w), torch.from_numpy(rw == w)
        assert torch.allclose(moved[g].mean(0), real[r].mean(0))
        assert torch.allclose(moved_real[r].mean(0), gen[g].mean(0))
        assert torch.allclose(moved[g] - moved[g].mean(0), gen[g] - gen[g].mean(0))
    a, b = halves(data["test"], 6, 0)
    same = mod.statistics_table(a, [s.image for s in a], b)  # "generated" = the real words themselves
    assert len(same) == len(mod.STAT_NAMES) and all(r["error"] == 0 and r["within_ratio"] == 1 for r in same)
    thick = {r["statistic"]: r for r in mod.statistics_table(a, [mod.thicker(s.image, 2) for s in a], b)}
    assert thick["horizontal run (stroke width)"]["bias"] > 1  # thicker strokes show as a width bias
    md = mod.markdown({"data": "d", "writers": 2, "words_per_set": 4, "seed": 0, "rows": rows,
                       "model_width_ratio": None, "statistics": same})  # fmt: skip
    assert "| ink darkness | +0.00 | 0.00 |" in md
    mod.figure(rows, rows[0], tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 10_000


def test_adaptation_summary_pairs_each_variant_with_its_own_one_pass_row(tmp_path):
    import json
    import subprocess
    import sys

    def result(seed, what, lr, fid_adapted, fid_one):
        row = {"attribution_learned": 0.7, "attribution_stats": 0.5, "hwd": 8.0, "dcer": -0.1}
        return {
            "seed": seed,
            "adapt": {"steps": 40, "lr": lr, "what": what, "w_l1": 0.0, "w_feat": 1.0, "draws": 1},
            "rows": {"model": {**row, "fid": fid_adapted}, "one_pass": {**row, "fid": fid_one},
                     "floor": {**row, "fid": 5.0 + seed}},
        }  # fmt: skip

    files = []
    for i, r in enumerate([result(0, "memory", 0.03, 31.6, 36.6), result(1, "norms", 0.003, 29.3, 31.5)]):
        files.append(tmp_path / f"r{i}.json")
        files[-1].write_text(json.dumps(r))
    (tmp_path / "plain.json").write_text(json.dumps({"seed": 0, "adapt": None, "rows": {}}))  # skipped
    cmd = [sys.executable, str(ROOT / "bench" / "adaptation_summary.py"), *map(str, files)]
    cmd += [str(tmp_path / "plain.json"), "--out", str(tmp_path / "s"), "--figure", str(tmp_path / "f.png")]
    subprocess.run(cmd, check=True, capture_output=True)
    lines = (tmp_path / "s.md").read_text().splitlines()
    assert lines[2].startswith("| norms, feat 1.0, lr 0.003, 40 steps, 1 draw(s), seed 1 |")  # best FID first
    assert "31.5 → 29.3" in lines[2] and "36.6 → 31.6" in lines[3]
    assert lines[4].startswith("| real-vs-real floor, seed 0 |") and "| 6.0 |" in lines[5]
    assert len(json.loads((tmp_path / "s.json").read_text())) == 2
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_best_canvas_writes_what_its_kernel_can_reach_and_beats_the_naive_round_trip(data):
    mod = _bench_module("resample_kernel")
    from scriptvit_lib.synthesis import resample_widths

    # a word the box kernel can write exactly: some canvas of 16 px per character, shrunk
    torch.manual_seed(0)
    canvas = torch.rand(1, 1, 32, 16 * 4) * 2 - 1
    word = resample_widths(canvas, torch.tensor([64]), torch.tensor([37]), mode="area")
    word = ((word[0, 0] + 1) * 127.5).round().clamp(0, 255).numpy().astype(np.uint8)
    fit = mod.best_canvas(word, 4, "area", steps=400)
    assert fit.shape == word.shape and np.abs(fit.astype(float) - word).mean() < 1.5
    # a real word: the fitted canvas is far closer than drawing it wide (nearest) and shrinking back
    s = data["train"][0]
    err = lambda x: np.abs(x.astype(float) - s.image).mean()  # noqa: E731
    for mode in ("area", "bilinear"):
        assert err(mod.best_canvas(s.image, len(s.text), mode, steps=200)) < 0.5 * err(
            mod.round_trip(s.image, len(s.text), mode)
        )


def test_rare_letters_bench_finds_what_the_reader_misses():
    mod = _bench_module("rare_letters")
    groups = mod.word_groups("zq", 3, seed=0)
    assert set(groups) == {"z", "q", "common"} and len(groups["common"]) == 6
    assert all("z" in w for w in groups["z"]) and all("q" in w for w in groups["q"])
    assert not any(set(w) & {"z", "q"} for w in groups["common"])
    assert groups == mod.word_groups("zq", 3, seed=0) and groups != mod.word_groups("zq", 3, seed=1)
    assert mod.letter_recall(["lagy", "fizz"], ["lazy", "fizz"], "z") == pytest.approx(2 / 3)
    assert mod.letter_recall(["zzzz"], ["lazy"], "z") == 1.0  # capped by the text's count

    class Reader:  # never sees a 'z' in real words; drops the last letter of 'fake' ones
        def read(self, images):
            return [im.text.replace("z", "g") if im.real else im.text[:-1] for im in images]

        def describe(self, images):
            return {"tokens": [torch.full((2, 3), float(im.real)) for im in images]}

    class Im:
        def __init__(self, text, real):
            self.text, self.real = text, real

    writers = ["a", "b"]
    texts = {t for ts in groups.values() for t in ts}
    real = {(w, t): Im(t, True) for w in writers for t in texts}
    fake = {(w, t): Im(t, False) for w in writers for t in texts}
    got = mod.score(groups, writers, mod.judged(real, Reader()), mod.judged(fake, Reader()))
    assert got["z"]["recall_real"] == 0.0 and got["q"]["recall_real"] == 1.0
    ends_q = sum(w.endswith("q") for w in groups["q"]) / 3
    assert got["q"]["recall_generated"] == pytest.approx(1 - ends_q)
    assert got["common"]["cer_real"] == 0.0 and got["common"]["dcer"] > 0
    assert got["z"]["hwd"] == pytest.approx(3**0.5)  # tokens of ones vs zeros, in 3 dimensions
    md = mod.markdown({"data": "d", "writers": 2, "letters": "zq", "words_per_letter": 3, "k": 5, "seed": 0,
                       "models": [{"label": "m", "path": "p", "groups": got}]})  # fmt: skip
    assert "| z | 0.00 |" in md and "| common | - | - |" in md
