"""The ablation sweep: `notebooks/09_ablations.ipynb` executed once per variant by papermill.

    python bench/ablations.py --data data/fonts [--steps 500] [--jobs 1] [--only vit_k1,cnn_k5]

States its total cost before it starts, skips variants whose record in `--results` already has
the same steps and seed (a killed sweep continues where it stopped; a killed variant resumes
from its checkpoints), keeps each executed notebook in `<runs>/<variant>.ipynb`, and finally
collects every record into `<results>/table.md`, `figures/ablation_k.png` and
`figures/ablation_encoder.png`. Set `SCRIPTVIT_JUDGES` to share one judges cache between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scriptvit_lib import ablations  # noqa: E402

# Measured on the 2-core CI machine, one OpenMP thread per run, cpu preset (see README):
# minutes per 100 generator-schedule iterations at k = 5 (k = 15 encodes 3x the style words),
# plus R/W pre-training (300 iterations) and one evaluation.
MIN_PER_100_ITERS = {1: 1.6, 3: 1.8, 5: 2.0, 15: 3.0}
MIN_PRETRAIN, MIN_EVAL = 1.0, 0.7


def estimate_minutes(name: str, steps: int) -> float:
    v = ablations.VARIANTS[name]
    per100 = MIN_PER_100_ITERS.get(v["k"], 2.0) * (1.15 if v["encoder"] == "cnn" else 1.0)
    return steps / 100 * per100 + (MIN_PRETRAIN if v["additions"] else 0.0) + MIN_EVAL


def finished(results: Path, name: str, steps: int, seed: int) -> bool:
    p = results / f"{name}.json"
    if not p.exists():
        return False
    r = json.loads(p.read_text())
    return r.get("steps") == steps and r.get("seed") == seed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/fonts")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", default="runs/ablations")
    ap.add_argument("--results", default="results/ablations")
    ap.add_argument("--only", default="", help="comma-separated variants (default: all)")
    ap.add_argument("--jobs", type=int, default=1, help="variants trained at once (one CPU thread each)")
    args = ap.parse_args()

    names = [n for n in args.only.split(",") if n] or list(ablations.VARIANTS)
    unknown = sorted(set(names) - set(ablations.VARIANTS))
    if unknown:
        sys.exit(f"unknown variants {unknown}; choose from {list(ablations.VARIANTS)}")
    results, runs = ROOT / args.results, ROOT / args.runs
    todo = [n for n in names if not finished(results, n, args.steps, args.seed)]
    cost = {n: estimate_minutes(n, args.steps) for n in todo}
    print(
        f"{len(names)} variants x {args.steps} iterations, seed {args.seed}; {len(names) - len(todo)} finished."
    )
    for n in todo:
        print(f"  {n:14s} {ablations.VARIANTS[n]}  ~{cost[n]:.0f} min")
    total = sum(cost.values())
    print(
        f"estimated cost: {total:.0f} CPU-core minutes, ~{total / max(args.jobs, 1):.0f} min wall with {args.jobs} job(s)"
    )

    import papermill as pm

    def run(name: str) -> float:
        t0 = time.time()
        runs.mkdir(parents=True, exist_ok=True)
        pm.execute_notebook(
            str(ROOT / "notebooks" / "09_ablations.ipynb"),
            str(runs / f"{name}.ipynb"),
            parameters=dict(
                FAST=False,
                VARIANT=name,
                STEPS=args.steps,
                SEED=args.seed,
                DATA=str(Path(args.data).resolve()),
                RUNS=str(runs),
                RESULTS=str(results),
                SAVE_FIGURES=False,
            ),  # fmt: skip
            cwd=str(ROOT / "notebooks"),
            kernel_name="python3",
            progress_bar=False,
        )
        minutes = (time.time() - t0) / 60
        print(f"{name}: done in {minutes:.1f} min", flush=True)
        return minutes

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        spent = dict(zip(todo, pool.map(run, todo)))
    if spent:
        print(
            f"sweep took {sum(spent.values()):.1f} run-minutes: {json.dumps({k: round(v, 1) for k, v in spent.items()})}"
        )

    df = ablations.collect(results)
    table = ablations.markdown_table(df)
    (results / "table.md").write_text(table)
    print(table)
    ablations.plot_k(df, ROOT / "figures" / "ablation_k.png")
    ablations.plot_encoder(df, ROOT / "figures" / "ablation_encoder.png")
    print(f"wrote {results / 'table.md'}, figures/ablation_k.png, figures/ablation_encoder.png")


if __name__ == "__main__":
    main()
