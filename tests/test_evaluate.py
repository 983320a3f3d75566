"""`scriptvit eval` end to end on tiny data: judges trained once and cached, metrics.json +
metrics.md written, the same numbers on a second run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scriptvit_lib import features
from scriptvit_lib.cli import main
from scriptvit_lib.config import ScriptViTConfig
from scriptvit_lib.data import mini_dataset
from scriptvit_lib.evaluate import evaluate, halves
from scriptvit_lib.features import JudgeConfig, judges_for, load_judges, train_judges
from scriptvit_lib.generator import ScriptViT

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "data" / "fonts-mini"
TINY_JUDGES = JudgeConfig(feat_ch=4, feat_dim=32, rec_ch=4, feat_steps=15, rec_steps=15)


@pytest.fixture(scope="module")
def data():
    return mini_dataset(MINI, words_per_writer=40)


@pytest.fixture(scope="module")
def judges_dir(data, tmp_path_factory):
    d = tmp_path_factory.mktemp("judges")
    train_judges(data["train"], d, config=TINY_JUDGES, progress=False)
    return d


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("model")
    ScriptViT(ScriptViTConfig.preset("tiny")).save_pretrained(d)
    return d


def test_halves_are_disjoint_same_writers_and_deterministic(data):
    a, b = halves(data["test"], n_per_writer=7, seed=3)
    assert len(a) == len(b) == 7 * len(data["test"].writers)
    assert sorted(a.writers) == sorted(b.writers) == sorted(data["test"].writers)
    assert not {id(s) for s in a} & {id(s) for s in b}
    a2, _ = halves(data["test"], n_per_writer=7, seed=3)
    assert [s.text for s in a] == [s.text for s in a2]
    a3, _ = halves(data["test"], n_per_writer=7, seed=4)
    assert [s.text for s in a] != [s.text for s in a3]


def test_judges_roundtrip_and_cache(data, judges_dir, tmp_path, monkeypatch):
    j = load_judges(judges_dir)
    assert j.writers == sorted(data["train"].writers)
    assert not any(p.suffix in (".pt", ".pth", ".pkl") for p in Path(judges_dir).iterdir())  # no pickle
    images = [s.image for s in data["val"]][:12]
    again = load_judges(judges_dir)
    torch.testing.assert_close(j.embed(images), again.embed(images))
    assert j.read(images) == again.read(images)

    first = judges_for(data["train"], tmp_path, config=TINY_JUDGES, progress=False)  # miss: trains
    monkeypatch.setattr(features, "train_judges", lambda *a, **k: pytest.fail("retrained a cached judge"))
    cached = judges_for(data["train"], tmp_path, config=TINY_JUDGES, progress=False)
    torch.testing.assert_close(first.embed(images), cached.embed(images))
    direct = features.judges_at(judges_dir, data["train"])  # --judges naming a judges folder: loaded
    torch.testing.assert_close(j.embed(images), direct.embed(images))
    with pytest.raises(FileNotFoundError, match="judges.json"):
        load_judges(tmp_path / "nothing")


def _run_eval(model_dir, judges_dir, out) -> int:
    return main([
        "eval", "--model", str(model_dir), "--data", str(MINI), "--judges", str(judges_dir),
        "--out", str(out), "--k", "3", "--n-per-writer", "5", "--protocol", "hwd",
    ])  # fmt: skip


def test_eval_cli_writes_metrics_and_is_deterministic(data, model_dir, judges_dir, tmp_path, capsys):
    assert _run_eval(model_dir, judges_dir, tmp_path / "run1") == 0
    assert _run_eval(model_dir, judges_dir, tmp_path / "run2") == 0
    first = (tmp_path / "run1" / "metrics.json").read_text()
    assert first == (tmp_path / "run2" / "metrics.json").read_text()

    m = json.loads(first)
    assert m["protocol"] == "hwd" and m["k"] == 3
    assert set(m["settings"]) == {"seen", "unseen"}
    for setting, r in m["settings"].items():
        for row in ("generated", "floor"):
            assert set(r[row]) == {
                "fid", "kid_x1e3", "kid_std_x1e3", "hwd", "cer", "dcer", "writer_acc", "retrieval_top1"
            }  # fmt: skip
            assert r[row]["fid"] >= -1e-6 and r[row]["hwd"] >= 0
        # seen writers are the judges' classes; unseen ones have no writer-id
        assert (r["generated"]["writer_acc"] is None) == (setting == "unseen")
    # IV/OOV: seen writers' held-out words are never training texts (split by word); every
    # word is counted once; the unseen writers' texts may be either
    vocab = {s.text for s in data["train"]}
    for r in m["settings"].values():
        v = r["by_vocabulary"]
        assert v["in_vocabulary"]["words"] + v["out_of_vocabulary"]["words"] == r["words_per_set"]
    assert m["settings"]["seen"]["by_vocabulary"]["in_vocabulary"]["words"] == 0
    assert any(s.text in vocab for s in data["test"]) == (
        m["settings"]["unseen"]["by_vocabulary"]["in_vocabulary"]["words"] > 0
    )
    # an untrained generator is far from real words, much further than real words are from each other
    seen = m["settings"]["seen"]
    assert seen["generated"]["fid"] > seen["floor"]["fid"]
    assert seen["generated"]["hwd"] > seen["floor"]["hwd"]

    table = (tmp_path / "run1" / "metrics.md").read_text()
    assert "real-vs-real floor" in table and "KID×10³" in table and "protocol **hwd**" in table
    assert "out-of-vocabulary (" in table
    assert "| generated vs real |" in capsys.readouterr().out


def test_eval_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path / "missing"), "--data", str(MINI)]) == 2
    assert "no model at" in capsys.readouterr().err


def test_evaluate_api_in_memory_and_match_width(data, model_dir, judges_dir):
    model = ScriptViT.from_pretrained(model_dir)
    kw = dict(split="test", k=2, n_per_writer=4, judges_dir=judges_dir, progress=False)
    plain = evaluate(model, data, **kw)
    matched = evaluate(model, data, match_width=True, **kw)
    assert list(plain["settings"]) == ["unseen"] and plain["model"] == "(in memory)"
    assert matched["match_width"] and not plain["match_width"]
    # same generated words, other widths: different scores; the real-vs-real floor is untouched
    assert matched["settings"]["unseen"]["generated"] != plain["settings"]["unseen"]["generated"]
    assert matched["settings"]["unseen"]["floor"] == plain["settings"]["unseen"]["floor"]
    with pytest.raises(ValueError, match="protocol"):
        evaluate(model, data, protocol="inception", **kw)


def test_evaluate_warns_about_judges_of_other_data(data, model_dir, tmp_path):
    other = train_judges(data["val"], tmp_path, config=TINY_JUDGES, steps=1, progress=False)
    assert other.info["fingerprint"] != features.words_fingerprint(data["train"])
    with pytest.warns(UserWarning, match="other words"):
        evaluate(model_dir, data, split="test", k=2, n_per_writer=3, judges_dir=tmp_path, progress=False)


def test_evaluate_warns_when_test_writers_were_training_writers(data, model_dir, judges_dir, tmp_path):
    import shutil

    d = tmp_path / "model"
    shutil.copytree(model_dir, d)
    (d / "training_writers.json").write_text(json.dumps(sorted(data["test"].writers)[:1]))
    with pytest.warns(UserWarning, match="test writers were training writers"):
        evaluate(d, data, split="test", n_per_writer=2, judges_dir=judges_dir, progress=False)
