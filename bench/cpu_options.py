"""What each CPU-budget option of the `cpu` recipe buys, measured on short runs.

    # the runs (each the same data, seed and wall-clock budget)
    scriptvit train --preset cpu --recipe cpu   --minutes 10 --out runs/opt_cpu
    scriptvit train --preset cpu --recipe cpu   --minutes 10 --out runs/opt_no_l1 --w-recon 0
    scriptvit train --preset cpu --recipe paper --minutes 10 --out runs/opt_paper --batch-size 16
    python bench/cpu_options.py runs/opt_cpu runs/opt_no_l1 runs/opt_paper --ema-run runs/cpu \
        --judges results/judges/<hash>

Prints CER of generated words (read by each run's own recognizer) at the last common minute
mark and, with `--judges`, what the independent judges of `evaluate.py` say of each run's
final model on unseen writers (CER, HWD, retrieval); for `--ema-run`, the CER of its raw
generator vs its EMA copy on the same probe words. Saves `bench/results/cpu_options.json`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from train_curve import read_curve  # bench/ is on sys.path when run as a script

from scriptvit_lib.data import load_data
from scriptvit_lib.monitor import SampleMonitor
from scriptvit_lib.trainer import TrainConfig, Trainer, list_checkpoints, load_checkpoint


def ema_vs_raw(run: Path, data_path: str) -> dict:
    """CER of the raw generator and of its EMA copy, same checkpoint, same probe words."""
    ck = load_checkpoint(list_checkpoints(run / "checkpoints")[-1])
    cfg = TrainConfig(**{**json.loads(ck["train_config"]), "out": "unused", "resume": False})
    from scriptvit_lib.config import ScriptViTConfig

    trainer = Trainer(cfg, ScriptViTConfig.from_dict(json.loads(ck["model_config"])))
    trainer.load_state_dict(ck)
    probe_dir = Path(tempfile.mkdtemp())
    monitor = SampleMonitor(trainer, load_data(data_path), probe_dir)
    monitor.grid = []  # numbers only
    out = {"step": int(ck["step"])}
    out["ema"] = monitor.record(trainer.step, 0.0)
    trainer.G_ema, ema = None, trainer.G_ema
    out["raw"] = monitor.record(trainer.step, 0.0)
    trainer.G_ema = ema
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--ema-run", type=Path)
    ap.add_argument("--data", default="data/fonts")
    ap.add_argument("--judges", help="judges folder for an independent score of each run's model/")
    ap.add_argument("--results", type=Path, default=Path("bench/results/cpu_options.json"))
    args = ap.parse_args()
    curves = {str(r): read_curve(r) for r in args.runs}
    horizon = min(c[-1]["minutes"] for c in curves.values())
    table = {}
    for run, rows in curves.items():
        at = [r for r in rows if r["minutes"] <= horizon + 1e-9][-1]
        cfg = json.loads((Path(run) / "train_config.json").read_text())
        table[run] = {"minutes": at["minutes"], "step": at["step"], "cer_val": at.get("cer_val"),
                      "cer_test": at.get("cer_test"), "w_recon": cfg["w_recon"], "lr": cfg["lr"],
                      "balance": cfg["balance"], "pretrain_steps": cfg["pretrain_steps"], "ema": cfg["ema"]}  # fmt: skip
        print(f"{run:40s} {at['minutes']:5.1f} min  step {int(at['step']):5d}  CER val {at.get('cer_val')}  "
              f"test {at.get('cer_test')}")  # fmt: skip
    if args.judges:
        from scriptvit_lib.evaluate import evaluate

        data = load_data(args.data)
        for run in table:
            m = evaluate(Path(run) / "model", data, split="test", n_per_writer=40, judges_dir=args.judges,
                         progress=False)["settings"]["unseen"]  # fmt: skip
            table[run]["independent_unseen"] = {
                k: m["generated"][k] for k in ("cer", "hwd", "retrieval_top1")
            }
            print(f"{run:40s} independent judges, unseen writers: {table[run]['independent_unseen']}")
    result = {"at_minutes": horizon, "runs": table}
    if args.ema_run:
        with torch.no_grad():
            result["ema_vs_raw"] = ema_vs_raw(args.ema_run, args.data)
        print("EMA vs raw generator:", result["ema_vs_raw"])
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
