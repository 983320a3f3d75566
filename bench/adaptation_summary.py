"""Test-time adaptation variants side by side: reads `bench/style_fidelity.py --adapt-*` results
(JSON) and writes one table and one figure of each variant's adapted row against its own one-pass
row (the same style words, so the two differ only by the adaptation) and the real-vs-real floor.

    python bench/adaptation_summary.py results/style_fidelity/adaptation_features/*.json \
        --out results/style_fidelity/adaptation_features/summary --figure figures/fidelity_adaptation_features_sweep.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

JUDGES = (  # (key, name, higher is better, format)
    ("attribution_learned", "attribution", True, ".3f"),
    ("attribution_stats", "hand-crafted", True, ".3f"),
    ("fid", "FID", False, ".1f"),
    ("hwd", "HWD", False, ".2f"),
)


def label(result: dict) -> str:
    a = result["adapt"]
    losses = [
        f"{n} {a.get(k, d)}"
        for k, n, d in (
            ("w_l1", "L1", 1.0),
            ("w_feat", "feat", 0),
            ("w_feat_d", "D-feat", 0),
            ("w_hand", "hand", 0),
        )
    ]
    losses = [x for x in losses if not x.endswith(" 0") and not x.endswith(" 0.0")]
    return (
        f"{a['what']}, {' + '.join(losses)}, lr {a['lr']:g}, {a['steps']} steps, "
        f"{a.get('draws', 1)} draw(s), seed {result['seed']}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="style_fidelity JSON files made with --adapt-steps")
    ap.add_argument("--out", required=True, help="writes OUT.md and OUT.json")
    ap.add_argument("--figure", default=None)
    args = ap.parse_args()

    runs = []
    for path in args.results:
        r = json.loads(Path(path).read_text())
        if not r.get("adapt"):
            continue
        rows = r["rows"]
        runs.append(
            {
                "file": Path(path).name,
                "label": label(r),
                "adapted": {k: rows["model"][k] for k, *_ in JUDGES},
                "one_pass": {k: rows["one_pass"][k] for k, *_ in JUDGES},
                "floor": {k: rows["floor"][k] for k, *_ in JUDGES},
                "dcer": rows["model"]["dcer"],
                "seed": r["seed"],
            }
        )
    if not runs:
        raise SystemExit("no adapted results among the files given")
    runs.sort(key=lambda x: x["adapted"]["fid"])
    lines = [
        "| adaptation | " + " | ".join(f"{n} (one pass → adapted)" for _, n, *_ in JUDGES) + " | dCER |",
        "|---|" + "---:|" * (len(JUDGES) + 1),
    ]
    for x in runs:
        cells = [f"{x['one_pass'][k]:{f}} → {x['adapted'][k]:{f}}" for k, _, _, f in JUDGES]
        lines.append(f"| {x['label']} | " + " | ".join(cells) + f" | {x['dcer']:+.3f} |")
    floors = {x["seed"]: x["floor"] for x in runs}  # the floor depends on the halves, i.e. the seed
    for seed, fl in sorted(floors.items()):
        cells = " | ".join(f"{fl[k]:{f}}" for k, _, _, f in JUDGES)
        lines.append(f"| real-vs-real floor, seed {seed} | {cells} | |")
    floor = floors[min(floors)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(runs, indent=1) + "\n")
    print("\n".join(lines))
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(
            1, len(JUDGES), figsize=(4 * len(JUDGES), 0.45 * len(runs) + 1.6), sharey=True
        )
        ys = range(len(runs))
        for ax, (k, name, higher, _) in zip(axes, JUDGES):
            ax.barh(ys, [x["adapted"][k] for x in runs], color="tab:blue", label="adapted")
            ax.scatter([x["one_pass"][k] for x in runs], ys, color="black", zorder=3, label="one pass")
            ax.axvline(floor[k], color="tab:green", ls="--", label=f"real-vs-real floor, seed {min(floors)}")
            ax.set_title(f"{name} ({'higher' if higher else 'lower'} is better)")
        axes[0].set_yticks(list(ys), [x["label"] for x in runs], fontsize=8)
        axes[0].invert_yaxis()
        axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        fig.tight_layout()
        fig.savefig(args.figure, dpi=110)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
