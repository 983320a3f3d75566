"""On the GPU machine: rebuild a full checkpoint from the slim package, continue training for
--minutes, then write the weights back in files of < 16 MiB; optionally time the paper preset.

Or, with --from-model DIR --train-args "FLAGS": start a new run from a model folder (its generator,
recognizer and critics when it has them, else D, W and the style-id head fresh, pre-trained by
FLAGS' --pretrain-steps) with
`scriptvit train`'s own FLAGS (no --data/--out/--minutes/--device: this script sets them), and
write the same files back, the run's config and writer list inside meta_back.json.

Or, with --from-scratch --train-args "FLAGS": the same, for a new run from random weights (e.g. the
box kernel and a 32-px canvas, which a trained model cannot move to: README, "Style fidelity")."""

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from scriptvit_lib.data import load_data  # noqa: E402
from scriptvit_lib.trainer import (  # noqa: E402
    TrainConfig,
    build_trainer,
    list_checkpoints,
    load_checkpoint,
    read_lineage,
    train,
)

ap = argparse.ArgumentParser()
ap.add_argument("--pack", default=str(ROOT / ".dev" / "pack"))
ap.add_argument("--data", default=str(ROOT / ".dev" / "data"))
ap.add_argument("--run", default="/tmp/run")
ap.add_argument("--minutes", type=float, default=6.0)
ap.add_argument("--device", default="cuda")
ap.add_argument("--out", required=True)
ap.add_argument("--paper-seconds", type=float, default=0)
ap.add_argument("--from-model", default="", help="a model folder to start a new run from (no pack)")
ap.add_argument("--from-scratch", action="store_true", help="a new run from random weights (no pack)")
ap.add_argument(
    "--train-args", default="", help="with --from-model / --from-scratch: `scriptvit train` flags"
)
ap.add_argument(
    "--batch-size",
    type=int,
    default=0,
    help="with --pack: the leg's batch size (default: the run's; a GPU wants 64)",
)
args = ap.parse_args()
if args.from_model and args.from_scratch:
    sys.exit("--from-model and --from-scratch exclude each other")
if args.batch_size and (args.from_model or args.from_scratch):
    sys.exit("--batch-size is for --pack; with --from-model / --from-scratch put it in --train-args")
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
t0 = time.time()
data = load_data(args.data)
print(
    f"data loaded in {time.time() - t0:.1f}s; torch {torch.__version__}, cuda {torch.cuda.is_available()}",
    flush=True,
)
if args.from_model or args.from_scratch:
    from scriptvit_lib.cli import build_parser, train_config_from_namespace

    ns = build_parser().parse_args(["train", "--data", args.data, *shlex.split(args.train_args)])
    cfg = train_config_from_namespace(ns)
    cfg.out, cfg.device, cfg.init_from = args.run, args.device, args.from_model  # "" = from scratch
    cfg.minutes = args.minutes or cfg.minutes  # --minutes 0: FLAGS' --steps alone say how long
    cfg.ckpt_every_minutes = 2.0
    step0 = None  # known after the warm start
else:
    meta = json.loads((Path(args.pack) / "meta.json").read_text())
    flat = load_file(str(Path(args.pack) / "nets.safetensors"))
    tc = json.loads(meta["train_config"])
    tc.update(
        out=args.run,
        device=args.device,
        resume=True,
        minutes=meta["elapsed"] + args.minutes,
        steps=0,
        ckpt_every_minutes=2.0,
    )
    if args.batch_size:
        tc["batch_size"] = args.batch_size
    cfg = TrainConfig(**tc)
    trainer, ds, wi = build_trainer(cfg, data["train"])
    assert json.loads(meta["model_config"]) == trainer.model_cfg.to_dict(), "model config differs"
    for net in ("G", "D", "R", "W", "S"):
        if getattr(trainer, net) is None:  # no style-id head in this recipe
            continue
        sd = {k[len(net) + 1 :]: v for k, v in flat.items() if k.startswith(net + ".")}
        getattr(trainer, net).load_state_dict(sd)
    if trainer.G_ema is not None:
        trainer.G_ema.load_state_dict(trainer.G.state_dict())  # the EMA restarts from G
    trainer.step, trainer.pretrain_done, trainer.ema_updates = (
        meta["step"],
        meta["pretrain_done"],
        meta["ema_updates"],
    )
    trainer.lineage = read_lineage(meta)  # train() below adds this GPU leg as a segment
    Path(args.run, "checkpoints").mkdir(parents=True, exist_ok=True)
    Path(args.run, "elapsed.json").write_text(json.dumps({"minutes": meta["elapsed"]}))
    trainer.save_checkpoint(Path(args.run) / "checkpoints")
    step0 = trainer.step
    del trainer
if args.device == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
t1 = time.time()
tr = train(cfg, data, progress=False)
dt = time.time() - t1
if step0 is None:  # a new run: its first segment starts at the model folder's step
    step0 = tr.lineage[-1]["from_step"]
speed = {
    "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
    "iterations": tr.step - step0,
    "seconds": round(dt, 1),
    "it_per_s": round((tr.step - step0) / dt, 2),
    "from_step": step0,
    "to_step": tr.step,
    "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if args.device == "cuda" else None,
}
print("CPU-PRESET CONTINUATION", json.dumps(speed), flush=True)
ck = load_checkpoint(list_checkpoints(Path(args.run) / "checkpoints")[-1])
for net in ("G", "G_ema"):
    if net not in ck:  # a run without EMA
        continue
    keys = sorted(ck[net])
    half = len(keys) // 2
    for i, part in enumerate((keys[:half], keys[half:])):
        save_file({k: ck[net][k].contiguous() for k in part}, str(out / f"{net}_{i}.safetensors"))
save_file(
    {f"{n}.{k}": v.contiguous() for n in ("D", "R", "W", "S") for k, v in ck.get(n, {}).items()},
    str(out / "DRWS.safetensors"),
)
m2 = {k: ck[k] for k in ("step", "pretrain_done", "ema_updates", "lineage")}
m2.update(speed=speed, elapsed=json.loads(Path(args.run, "elapsed.json").read_text())["minutes"])
m2["run_files"] = {  # unpack.py needs no source run folder then
    name: Path(args.run, name).read_text()
    for name in ("train_config.json", "model_config.json", "writers.json")
    if Path(args.run, name).exists()
}
(out / "meta_back.json").write_text(json.dumps(m2))
for name in ("log.csv",):  # (at most 8 files come back)
    if Path(args.run, name).exists():
        (out / name).write_text(Path(args.run, name).read_text())
print("weights written", flush=True)
if args.paper_seconds > 0:  # throughput of the paper preset (fresh weights, recipe 'paper'), same data
    from scriptvit_lib.trainer import _batch

    for preset, amp, bs in (("paper", "bf16", 16), ("paper", "bf16", 8), ("cpu", "none", 16)):
        cfgp = TrainConfig(
            **{
                **asdict(TrainConfig()),
                "preset": preset,
                "out": "/tmp/p",
                "device": args.device,
                "amp": amp if args.device == "cuda" else "none",
                "batch_size": bs,
            }
        )
        tp, dsp, _ = build_trainer(cfgp, data["train"])
        if args.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        n = t_data = 0
        t2 = None
        while True:
            ta = time.time()
            b = _batch(dsp, cfgp, tp.step, 0).to(tp.device)
            tb_ = time.time()
            tp.train_step(b)
            if n >= 3:
                t_data += tb_ - ta
            n += 1
            if n == 3:
                if args.device == "cuda":
                    torch.cuda.synchronize()
                t2 = time.time()
            if t2 is not None and time.time() - t2 > args.paper_seconds / 3:
                break
        if args.device == "cuda":
            torch.cuda.synchronize()
        d2 = time.time() - t2
        print(
            "TIMING",
            json.dumps(
                {
                    "preset": preset,
                    "amp": amp,
                    "batch_size": bs,
                    "timed_iterations": n - 3,
                    "seconds": round(d2, 1),
                    "it_per_s": round((n - 3) / d2, 2),
                    "data_share": round(t_data / d2, 3),
                    "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
                    if args.device == "cuda"
                    else None,
                }
            ),
            flush=True,
        )
        del tp
print(f"total {time.time() - t0:.0f}s", flush=True)
