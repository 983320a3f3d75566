"""Ablations of ScriptViT's design: one short training run per variant, scored by the judges.

Each variant changes one thing from the `base` (`cpu` preset and recipe, ViT style encoder,
k = 5 style words) and trains with the same data, seed and number of iterations:

    vit_k1, vit_k3, vit_k5, vit_k15   number of style words k (train and evaluation)
    cnn_k5                            ResNet-18 style encoder (HWT's) instead of the ViT
    vit_k5_plain                      without the CPU-budget additions: no L1 reconstruction,
                                      no R/W pre-training, no EMA (the paper's loss set, with
                                      the `cpu` recipe's learning rate, batch and loss weights)

`run_variant` trains one variant and evaluates it with `evaluate.evaluate` (independent judges,
both settings, real-vs-real floors) into `<results>/<name>.json`; `collect` reads all finished
ones into a table and `plot_k` / `plot_encoder` draw the figures. `notebooks/09_ablations.ipynb`
is the papermill-parameterized single run; `bench/ablations.py` is the sweep.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from .trainer import RECIPES, TrainConfig, train
from .words import WordSet

BASE = {"k": 5, "encoder": "vit", "additions": True}
VARIANTS: dict[str, dict] = {
    "vit_k1": {**BASE, "k": 1},
    "vit_k3": {**BASE, "k": 3},
    "vit_k5": BASE,
    "vit_k15": {**BASE, "k": 15},
    "cnn_k5": {**BASE, "encoder": "cnn"},
    "vit_k5_plain": {**BASE, "additions": False},
}
ADDITIONS_OFF = {"w_recon": 0.0, "pretrain_steps": 0, "ema": 0.0}
SCORES = ("fid", "hwd", "cer", "dcer", "writer_acc", "retrieval_top1")


def train_config(
    name: str, out: str | Path, *, steps: int, seed: int = 0, preset: str = "cpu"
) -> TrainConfig:
    """The training configuration of one variant (`VARIANTS[name]`)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown ablation {name!r}; choose from {sorted(VARIANTS)}")
    v = VARIANTS[name]
    recipe = {**RECIPES["cpu"], **({} if v["additions"] else ADDITIONS_OFF)}
    return TrainConfig(
        preset=preset,
        out=str(out),
        steps=steps,
        k=v["k"],
        seed=seed,
        model_overrides={"style_encoder": v["encoder"]},
        **recipe,
    )


def run_variant(
    name: str,
    data: dict[str, WordSet],
    *,
    runs: str | Path,
    results: str | Path,
    steps: int,
    seed: int = 0,
    preset: str = "cpu",
    judges_dir: str | Path | None = None,
    n_per_writer: int = 100,
    progress: bool = True,
) -> dict:
    """Train variant `name` for `steps` iterations (resuming its run folder if one is there),
    evaluate it at its own k and write `<results>/<name>.json`; returns that record."""
    from .evaluate import evaluate

    cfg = train_config(name, Path(runs) / name, steps=steps, seed=seed, preset=preset)
    cfg.resume = (Path(cfg.out) / "checkpoints").is_dir()
    t0 = time.time()
    train(cfg, data, progress=progress)
    minutes = json.loads((Path(cfg.out) / "elapsed.json").read_text())["minutes"]
    report = evaluate(
        Path(cfg.out) / "model",
        data,
        k=cfg.k,
        seed=seed,
        n_per_writer=n_per_writer,
        judges_dir=judges_dir,
        progress=progress,
    )
    record = {
        "name": name,
        **VARIANTS[name],
        "steps": steps,
        "preset": preset,
        "seed": seed,
        "train_minutes": round(minutes, 2),
        "wall_minutes_this_call": round((time.time() - t0) / 60, 2),
        "train_config": {k: v for k, v in asdict(cfg).items() if k not in ("out", "resume")},
        "eval": report,
    }
    out = Path(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def collect(results: str | Path) -> pd.DataFrame:
    """One row per finished variant and setting: the generated scores and their floors."""
    rows = []
    for path in sorted(Path(results).glob("*.json")):
        r = json.loads(path.read_text())
        if r.get("name") not in VARIANTS:
            continue
        for setting, m in r["eval"]["settings"].items():
            row = {k: r[k] for k in ("name", "k", "encoder", "additions", "steps", "train_minutes")}
            row["setting"] = setting
            row.update({s: m["generated"][s] for s in SCORES})
            row.update({f"{s}_floor": m["floor"][s] for s in SCORES})
            rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(df: pd.DataFrame) -> str:
    """The README table: one row per variant, unseen-writer scores first, floors in brackets."""
    if df.empty:
        return "(no finished ablation runs)\n"
    lines = [
        "| variant | k | encoder | CPU additions | train min | unseen HWD | unseen CER | unseen retrieval@1 "
        "| seen writer-acc | seen HWD |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {n: i for i, n in enumerate(VARIANTS)}
    for name, g in sorted(df.groupby("name"), key=lambda t: order[t[0]]):
        u = g[g.setting == "unseen"].iloc[0]
        s = g[g.setting == "seen"].iloc[0]
        lines.append(
            f"| {name} | {u.k} | {u.encoder} | {'yes' if u.additions else 'no'} | {u.train_minutes:.1f} "
            f"| {u.hwd:.2f} ({u.hwd_floor:.2f}) | {u.cer:.3f} ({u.cer_floor:.3f}) "
            f"| {u.retrieval_top1:.3f} ({u.retrieval_top1_floor:.3f}) "
            f"| {s.writer_acc:.3f} ({s.writer_acc_floor:.3f}) | {s.hwd:.2f} ({s.hwd_floor:.2f}) |"
        )
    return "\n".join(lines) + "\n"


PANELS = (
    ("unseen", "hwd", "HWD, unseen writers (lower = better)"),
    ("unseen", "cer", "CER, unseen writers (lower = better)"),
    ("unseen", "retrieval_top1", "retrieval@1, unseen writers (higher = better)"),
    ("seen", "writer_acc", "writer-acc, seen writers (higher = better)"),
)


def plot_k(df: pd.DataFrame, path: str | Path | None = None):
    """Scores against k for the ViT variants with the CPU additions; floors dashed."""
    import matplotlib.pyplot as plt

    sub = df[(df.encoder == "vit") & df.additions].sort_values("k")
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.4 * len(PANELS), 3))
    for ax, (setting, score, title) in zip(axes, PANELS):
        s = sub[sub.setting == setting]
        ax.plot(s.k, s[score], "o-", label="generated")
        ax.plot(s.k, s[f"{score}_floor"], "k--", lw=1, label="real-vs-real floor")
        ax.set_xscale("log")
        ax.set_xticks(sorted(s.k.unique()), [str(k) for k in sorted(s.k.unique())])
        ax.set_xlabel("style words k")
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=8)
    steps = int(sub.steps.iloc[0]) if len(sub) else 0
    fig.suptitle(
        f"ScriptViT ablation: number of style words ({steps} iterations each, same seed)", fontsize=10
    )
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_encoder(df: pd.DataFrame, path: str | Path | None = None):
    """ViT vs CNN style encoder and with/without the CPU additions, at k = 5; floors dashed."""
    import matplotlib.pyplot as plt

    names = [n for n in ("vit_k5", "cnn_k5", "vit_k5_plain") if n in set(df.name)]
    labels = {"vit_k5": "ViT", "cnn_k5": "CNN (ResNet-18)", "vit_k5_plain": "ViT, no CPU additions"}
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.4 * len(PANELS), 3))
    for ax, (setting, score, title) in zip(axes, PANELS):
        s = df[df.setting == setting].set_index("name")
        vals = [s.loc[n, score] for n in names]
        ax.bar(range(len(names)), vals, color=["C0", "C1", "C2"][: len(names)])
        if names:
            ax.axhline(
                s.loc[names[0], f"{score}_floor"], color="k", ls="--", lw=1, label="real-vs-real floor"
            )
        ax.set_xticks(range(len(names)), [labels[n] for n in names], rotation=20, fontsize=8)
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.suptitle("ScriptViT ablation: style encoder and CPU-budget additions (k = 5)", fontsize=10)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
