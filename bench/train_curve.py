"""CER of generated words vs training minutes, from a run folder's eval.csv.

The `cpu` preset's target (training issue): generated words of *unseen* test writers read by
the run's own recognizer at CER <= 15 % within 60 minutes on 2 CPU cores. Reproduce with

    scriptvit train --data data/fonts --out runs/cpu --preset cpu --recipe cpu --minutes 60
    python bench/train_curve.py runs/cpu

Prints the curve, saves `figures/cer_vs_minutes.png` and `bench/results/train_curve.json`.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib
from machine_info import machine_line  # bench/ is on sys.path when run as a script

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TARGET = 0.15


def read_curve(run: Path) -> list[dict]:
    with open(run / "eval.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--figure", type=Path, default=Path("figures/cer_vs_minutes.png"))
    ap.add_argument("--results", type=Path, default=Path("bench/results/train_curve.json"))
    args = ap.parse_args()
    rows = read_curve(args.run)
    hit = next((r for r in rows if r.get("cer_test", 1) <= TARGET), None)
    summary = {
        "run": str(args.run),
        "machine": machine_line(),
        "final": rows[-1],
        "best_cer_test": min(r.get("cer_test", 9) for r in rows),
        "minutes_to_cer_test_le_0.15": None if hit is None else hit["minutes"],
        "curve": rows,
    }
    for r in rows:
        print(f"step {int(r['step']):6d}  {r['minutes']:6.1f} min  CER val {r.get('cer_val', float('nan')):.3f}  "
              f"test {r.get('cer_test', float('nan')):.3f}")  # fmt: skip
    reached = f"reached at {hit['minutes']:.1f} min" if hit else "not reached"
    print(f"target CER(test) <= {TARGET}: {reached}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(summary, indent=1))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for split, label in (
        ("cer_val", "seen writers, unseen words (val)"),
        ("cer_test", "unseen writers (test)"),
    ):
        pts = [(r["minutes"], r[split]) for r in rows if split in r]
        ax.plot(*zip(*pts), marker=".", label=label)
    ax.axhline(TARGET, color="grey", ls="--", lw=1, label="target 0.15")
    ax.set(xlabel="training minutes (2 CPU cores)", ylabel="CER of generated words", ylim=(0, 1.05))
    ax.set_title("Legibility of generated words, read by the run's recognizer", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=120)
    print(f"wrote {args.figure} and {args.results}")


if __name__ == "__main__":
    main()
