"""Unseen-writer style fidelity of several runs or checkpoints: vs training writers or minutes.

How fidelity grows with the number of training writers (issue 8):

    # the same recipe on nested subsets of the training families of `--families all`
    scriptvit train --data data/fonts-all --out runs/w16 --preset cpu --recipe cpu \
        --pretrain-steps 1500 --set width_mode=predicted --train-writers 16 --steps 1000
    scriptvit train ... --out runs/w50 --train-writers 50 --steps 1000
    scriptvit train ... --out runs/w134 --steps 1000          # all 134 training families
    python bench/fidelity_runs.py runs/w16 runs/w50 runs/w134 --data data/fonts-all \
        --checkpoints ck16.pt ck50.pt ck134.pt   # optional: score these checkpoints instead

How it grows with training time (one run, several of its checkpoints):

    python bench/fidelity_runs.py runs/w134 runs/w134 runs/w134 --checkpoints a.pt b.pt c.pt \
        --x minutes --name vs_minutes
    # later: one more point on that curve, keeping the rows already scored
    python bench/fidelity_runs.py runs/w134 --x minutes --name vs_minutes --labels w134 --append
    # or a new file that continues it (the old json and figure stay as they were)
    python bench/fidelity_runs.py runs/w134 --x minutes --name vs_minutes2 --labels w134 --extend vs_minutes

Levers side by side (continuations of one checkpoint, one bar each, in the order given):

    python bench/fidelity_runs.py runs/ftC runs/ftN runs/ftF --x runs --name levers_150min \
        --labels control style-nce feat-match

Each run's generator at its last checkpoint (or the one given) is scored by
`fidelity.style_fidelity` on the same unseen writers; writes
`results/style_fidelity/<name>.json` and `figures/fidelity_<name>.png`.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scriptvit_lib.data import load_data  # noqa: E402
from scriptvit_lib.features import judges_at  # noqa: E402
from scriptvit_lib.fidelity import style_fidelity  # noqa: E402
from scriptvit_lib.trainer import (  # noqa: E402
    lineage_summary,
    list_checkpoints,
    load_checkpoint,
    read_lineage,
    sampling_generator,
)

PANELS = (  # one panel per target of issue 8 (1: attribution x2, 2: FID + HWD, 3: sharpness, 4: dCER)
    ("attribution_learned", "attribution (judges)"),
    ("attribution_stats", "attribution (hand-crafted)"),
    ("fid", "FID (log)"),
    ("hwd", "HWD"),
    ("sharpness_ratio", "sharpness / real"),
    ("dcer", "dCER"),
)


def curves(rows: list[dict], xkey: str) -> dict[str, list[dict]]:
    """{line label: its rows} for the curve plots: one line per branch when some rows are labelled
    "shared" (each branch starts with that common history), one per run label on the minutes axis
    (runs trained side by side), else one line through all rows (e.g. one point per writer count)."""
    labels = list(dict.fromkeys(r["run"] for r in rows))
    if "shared" in labels:
        return {lab: [r for r in rows if r["run"] in (lab, "shared")] for lab in labels if lab != "shared"}
    if xkey == "minutes" and len(labels) > 1:
        return {lab: [r for r in rows if r["run"] == lab] for lab in labels}
    return {"": rows}


def spaced(xs: list[float], span: float, gap: float = 0.06) -> list[int]:
    """Indices of the sorted points `xs` to label so that labels stay at least `gap` x `span`
    apart on the x axis (the first and the last point always: where a curve starts and ends)."""
    keep: list[int] = []
    for i, x in enumerate(xs):
        if not keep or x - xs[keep[-1]] >= gap * span:
            keep.append(i)
    if xs and keep[-1] != len(xs) - 1:
        if len(keep) > 1 and xs[-1] - xs[keep[-1]] < gap * span:
            keep.pop()  # the last point's label wins over a close neighbour's
        keep.append(len(xs) - 1)
    return keep


def plot(rows: list[dict], xkey: str, figure: Path) -> None:
    """One line per branch: rows labelled "shared" (a common history) lead into every other
    label's rows; the mean-style baseline dotted, the real-vs-real floor dashed."""
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(r["run"] for r in rows))
    if xkey == "run":  # runs side by side (e.g. levers from one checkpoint): bars, not a curve
        fig, axes = plt.subplots(1, len(PANELS), figsize=(3.3 * len(PANELS), 3.2))
        x = range(len(rows))
        for ax, (key, title) in zip(axes, PANELS):
            ax.bar(x, [r["model"][key] for r in rows], color="C0", label="model")
            ax.plot(x, [r["mean"][key] for r in rows], "s", color="C1", label="mean style")
            ax.plot(x, [r["nearest"][key] for r in rows], "^", color="C2", label="nearest training writer")
            ax.axhline(rows[0]["floor"][key], color="k", ls="--", lw=1, label="real-vs-real floor")
            ticks = [f"{r['run']}\n{r['step']} it" for r in rows]
            tilt = dict(rotation=30, ha="right") if len(rows) > 3 else {}  # long labels overlap
            ax.set_xticks(list(x), ticks, fontsize=7, **tilt)
            ax.set_title(title.replace(" (log)", ""), fontsize=9)
        axes[0].legend(fontsize=6)
        fig.suptitle("unseen-writer style fidelity of runs side by side", fontsize=10)
        fig.tight_layout()
        fig.savefig(figure, dpi=110)
        return
    branches, shared = curves(rows, xkey), "shared" in labels
    fig, axes = plt.subplots(2, len(PANELS) // 2, figsize=(3.3 * len(PANELS) // 2, 5.6))
    axes = axes.ravel()
    for ax, (key, title) in zip(axes, PANELS):
        for i, (lab, sub) in enumerate(branches.items()):
            # minutes depend on how many runs shared the cores: draw those curves against
            # iterations, and write each point's minutes beside it
            xk = "step" if xkey == "minutes" else xkey
            sub = sorted(sub, key=lambda r: r[xk])
            x, tag = [r[xk] for r in sub], f" ({lab})" if lab else ""
            ax.plot(x, [r["model"][key] for r in sub], "o-", color=f"C{2 * i}", label=f"model{tag}")
            ax.plot(x, [r["mean"][key] for r in sub], "s:", color=f"C{2 * i + 1}", label=f"mean style{tag}")
            if xkey == "minutes" and key == PANELS[0][0]:
                own = sub[2:] if i and shared else sub  # (branches repeat the shared history)
                span = max(r[xk] for r in rows) - min(r[xk] for r in rows) or 1
                for r in [own[j] for j in spaced([r[xk] for r in own], span)]:  # labels apart
                    ax.annotate(f"{r['minutes']:.0f}'", (r[xk], r["model"][key]), fontsize=6, xytext=(2, 3),
                                textcoords="offset points")  # fmt: skip
        ax.axhline(rows[0]["floor"][key], color="k", ls="--", lw=1, label="real-vs-real floor")
        if key == "fid":
            ax.set_yscale("log")
        if xkey == "training_writers":
            ticks = sorted({r[xkey] for r in rows})
            ax.set_xscale("log")
            ax.minorticks_off()
            ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel(
            "training writers (font families)" if xkey == "training_writers" else "training iterations"
        )
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=6)
    what = (
        f"training writers (step {rows[0]['step']} each)"
        if xkey == "training_writers"
        else "training iterations (labels: minutes on the shared 2 cores)"
    )
    fig.suptitle(f"unseen-writer style fidelity vs {what}", fontsize=10)
    fig.tight_layout()
    fig.savefig(figure, dpi=110)


def merged(saved: list[dict], new: list[dict], xkey: str) -> list[dict]:
    """The saved rows, then the new ones; a new row replaces a saved one of the same run label and
    checkpoint. Sorted along `xkey` except for side-by-side runs (`run`), which keep their order."""
    fresh = {(r["run"], r["checkpoint"]) for r in new}
    rows = [r for r in saved if (r["run"], r["checkpoint"]) not in fresh] + new
    return rows if xkey == "run" else sorted(rows, key=lambda r: r[xkey])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--checkpoints", nargs="*", type=Path, default=None)
    ap.add_argument("--data", default=str(ROOT / "data" / "fonts-all"))
    ap.add_argument("--judges", default=None)
    ap.add_argument("--n-per-writer", type=int, default=40)
    ap.add_argument(
        "--x", choices=["writers", "minutes", "runs"], default="writers", help="runs: side by side, in order"
    )
    ap.add_argument("--name", default="vs_writers")
    ap.add_argument("--labels", nargs="*", default=None, help="one label per run (default: the run folder)")
    ap.add_argument("--replot", action="store_true", help="only redraw the figure from the saved json")
    ap.add_argument(
        "--append",
        action="store_true",
        help="add these rows to the saved json (replacing rows of the same label and checkpoint)",
    )
    ap.add_argument(
        "--extend",
        metavar="NAME",
        default=None,
        help="start from the rows of results/style_fidelity/NAME.json (as --append does), write to --name",
    )
    args = ap.parse_args()
    out = ROOT / "results" / "style_fidelity" / f"{args.name}.json"
    figure = ROOT / "figures" / f"fidelity_{args.name}.png"
    if args.replot:
        saved = json.loads(out.read_text())
        plot(saved["rows"], saved["x"], figure)
        print(f"wrote {figure}")
        return

    saved_rows: list[dict] = []
    base = out.parent / f"{args.extend}.json" if args.extend else out if args.append else None
    if args.extend and not base.is_file():
        ap.error(f"--extend {args.extend}: no {base}")
    if base is not None and base.is_file():
        saved_rows = json.loads(base.read_text())["rows"]

    data = load_data(args.data)
    judges = judges_at(args.judges, data["train"])
    cks = args.checkpoints or [list_checkpoints(r / "checkpoints")[-1] for r in args.runs]
    rows = []
    labels = args.labels or [str(r) for r in args.runs]
    for run, ck, label in zip(args.runs, cks, labels):
        writers = len(json.loads((run / "writers.json").read_text()))
        state = load_checkpoint(ck)
        step = int(state["step"])
        with open(run / "log.csv", newline="") as f:
            logged = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
        minutes = float(logged[-1]["minutes"]) if logged else 0.0
        history = lineage_summary(read_lineage(state))  # resumes, branches, other machines
        if history["rows"] and not history["unrecorded_steps"]:
            minutes = history["minutes"]  # the weights' whole history, not just this folder's
        model = sampling_generator(ck, ck=state)
        del state
        result, _ = style_fidelity(model, data, judges, n_per_writer=args.n_per_writer, progress=False)
        row = {
            "run": label,
            "checkpoint": ck.name,
            "training_writers": writers,
            "step": step,
            "minutes": minutes,
        }
        for key in ("model", "mean", "nearest", "floor"):
            row[key] = result["rows"][key]
        for key in ("geometry", "separability", "per_writer"):  # diagnostics, when the library has them
            if result.get(key) is not None:
                row[key] = result[key]
        rows.append(row)
        m = row["model"]
        print(f"{label}: {writers} training writers, step {step}, {minutes:.0f} min: attribution {m['attribution_learned']:.3f} "
              f"(stats {m['attribution_stats']:.3f}), HWD {m['hwd']:.2f}, FID {m['fid']:.1f}, dCER {m['dcer']:+.3f}")  # fmt: skip
    xkey = {"writers": "training_writers", "minutes": "minutes", "runs": "run"}[args.x]
    rows = merged(saved_rows, rows, xkey)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": str(args.data), "x": xkey, "rows": rows}, indent=1) + "\n")

    plot(rows, xkey, figure)
    print(f"wrote {out} and {figure}")


if __name__ == "__main__":
    main()
