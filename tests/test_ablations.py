"""The ablation variants change exactly what they say; finished records collect into the table
and figures (the sweep itself is notebook 09 under papermill, run by tests/test_notebooks.py)."""

from __future__ import annotations

import json

import pytest

from scriptvit_lib import ablations
from scriptvit_lib.trainer import RECIPES


def test_variants_change_one_thing_each(tmp_path):
    base = ablations.train_config("vit_k5", tmp_path, steps=7)
    assert base.k == 5 and base.steps == 7 and base.model_overrides == {"style_encoder": "vit"}
    assert (base.w_recon, base.pretrain_steps, base.ema) == tuple(
        RECIPES["cpu"][k] for k in ("w_recon", "pretrain_steps", "ema")
    )
    for name in ablations.VARIANTS:
        cfg = ablations.train_config(name, tmp_path, steps=7)
        diff = {k for k in vars(base) if getattr(cfg, k) != getattr(base, k)}
        expected = {
            "vit_k5": set(), "vit_k1": {"k"}, "vit_k3": {"k"}, "vit_k15": {"k"},
            "cnn_k5": {"model_overrides"}, "vit_k5_plain": {"w_recon", "pretrain_steps", "ema"},
        }[name]  # fmt: skip
        assert diff == expected, name
    with pytest.raises(ValueError, match="unknown ablation"):
        ablations.train_config("vit_k7", tmp_path, steps=1)


def _record(name: str, score: float) -> dict:
    m = {s: score for s in ablations.SCORES}
    setting = lambda: {"generated": dict(m), "floor": {s: 0.5 for s in ablations.SCORES}}  # noqa: E731
    return {"name": name, **ablations.VARIANTS[name], "steps": 10, "train_minutes": 1.0,
            "eval": {"settings": {"seen": setting(), "unseen": setting()}}}  # fmt: skip


def test_collect_table_and_figures(tmp_path):
    for i, name in enumerate(ablations.VARIANTS):
        (tmp_path / f"{name}.json").write_text(json.dumps(_record(name, float(i))))
    (tmp_path / "table.md").write_text("not a record")
    df = ablations.collect(tmp_path)
    assert len(df) == 2 * len(ablations.VARIANTS)
    table = ablations.markdown_table(df)
    assert table.count("\n") == 2 + len(ablations.VARIANTS)
    assert "| vit_k15 | 15 | vit | yes |" in table and "| vit_k5_plain | 5 | vit | no |" in table
    ablations.plot_k(df, tmp_path / "k.png")
    ablations.plot_encoder(df, tmp_path / "enc.png")
    assert (tmp_path / "k.png").stat().st_size > 1000 and (tmp_path / "enc.png").stat().st_size > 1000
