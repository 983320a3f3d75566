"""Package a finished run as the shipped model: weights, config, sample grid and model card.

    python bench/ship_model.py runs/cpu --dest models/scriptvit-cpu --data data/fonts

Copies `<run>/model/{model.safetensors,config.json}` (safetensors + JSON: loading never
unpickles) - or, with `--checkpoint`, exports that training checkpoint's generator instead -,
the training recognizer R of the last (or given) checkpoint as `recognizer.safetensors` (for
test-time adaptation's legibility anchor), its critics as `critics.safetensors` (so `--init-from`
the folder goes on training with them), the last sample grid, and writes MODEL_CARD.md from
the run's own logs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sys
from pathlib import Path


def rows_to(path: Path, step: int | None) -> list[dict]:
    """The rows of a run's log (`eval.csv`, `log.csv`) up to `step` (all when None)."""
    if not path.exists():  # a short run may not have logged yet
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if step is None or float(r["step"]) <= step]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--dest", type=Path, default=Path("models/scriptvit-cpu"))
    ap.add_argument("--data", type=Path, default=Path("data/fonts"))
    ap.add_argument("--checkpoint", type=Path, default=None, help="ship this checkpoint, not <run>/model")
    args = ap.parse_args()
    run, dest = args.run, args.dest
    dest.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from scriptvit_lib.adaptation import save_recognizer
    from scriptvit_lib.config import ScriptViTConfig
    from scriptvit_lib.recognizer import Recognizer
    from scriptvit_lib.synthesis import synthesis_stages
    from scriptvit_lib.trainer import (
        export_checkpoint,
        lineage_summary,
        list_checkpoints,
        load_checkpoint,
        read_lineage,
        save_critics,
    )

    ckpt = args.checkpoint or (list_checkpoints(run / "checkpoints") or [None])[-1]
    ck = load_checkpoint(ckpt) if ckpt is not None else None  # read once: ~100 MB
    if args.checkpoint is not None:
        export_checkpoint(args.checkpoint, dest, ck=ck)
    else:
        for name in ("model.safetensors", "config.json"):
            shutil.copy2(run / "model" / name, dest / name)
    shipped_step, lineage = None, None
    if ck is not None:
        lineage = lineage_summary(read_lineage(ck)) if ck.get("lineage") else None
        r = Recognizer.from_config(ScriptViTConfig.from_dict(json.loads(ck["model_config"])))
        r.load_state_dict(ck["R"])
        save_recognizer(r, dest)
        save_critics(ck, dest)  # D, W, S: training can go on from the folder with its critics
        shipped_step = ck["step"] if args.checkpoint is not None else None
        del ck
    if (run / "writers.json").exists():  # the training writers, so demos can pick unseen ones
        trained = sorted(json.loads((run / "writers.json").read_text()))
        (dest / "training_writers.json").write_text(json.dumps(trained, indent=1) + "\n")
    # the last samples, losses and evaluation at or before the shipped checkpoint
    samples = sorted(
        f
        for f in (run / "samples").glob("step_*.png")
        if shipped_step is None or int(f.stem.split("_")[1]) <= shipped_step
    )
    if samples:
        shutil.copy2(samples[-1], dest / "samples.png")
    train_cfg = json.loads((run / "train_config.json").read_text())
    model_cfg = json.loads((dest / "config.json").read_text())
    evals = rows_to(run / "eval.csv", shipped_step)
    ev, log = (evals or [{}])[-1], (rows_to(run / "log.csv", shipped_step) or [{}])[-1]
    minutes = json.loads((run / "elapsed.json").read_text())["minutes"]
    build = json.loads((args.data / "build.json").read_text()) if (args.data / "build.json").exists() else {}
    # first evaluation of this run folder with CER(test) <= 0.15 (not bench/train_curve's separate run)
    no_test = bool(evals) and not any(r.get("cer_test") for r in evals)  # data without a test split
    legible = next(
        (
            f"{float(r['minutes']):.1f} (iteration {r['step']}, this run folder's `eval.csv`)"
            for r in evals
            if r.get("cer_test") and float(r["cer_test"]) <= 0.15
        ),
        "no test split in this run's data" if no_test else "not reached in this run folder",
    )
    cer_test = "none (no test split in this run's data)" if no_test else ev.get("cer_test", "?")
    build_args = build.get("args", {})
    n_per, glyphs = build_args.get("writers_per_family", 1), build_args.get("glyph_variation", 0.0)
    only_train = build_args.get("splits") == ["train"]  # `data build --only-train`: no test writers
    build_flags = (
        (f" --writers-per-family {n_per}" if n_per > 1 else "")
        + (f" --glyph-variation {glyphs:g}" if glyphs > 0 else "")
        + (" --only-train" if only_train else "")
    )
    counts = build.get("counts", {})
    split_counts = {k: v for k, v in counts.get("samples", {}).items() if not (only_train and k == "test")}
    data_line = (
        f"{counts.get('writers', '?')} training font writers ({split_counts or '?'}); the test families "
        "(a full build's test split) never trained on"
        if only_train
        else f"{counts.get('writers', '?')} font writers ({split_counts or '?'}); test families never trained on"
    )
    size_mb = (dest / "model.safetensors").stat().st_size / 2**20
    gpu_leg = ", no GPU"
    if (run / "gpu_continuation.json").exists():  # a leg run elsewhere (bench/gpu_leg)
        leg = json.loads((run / "gpu_continuation.json").read_text())["speed"]
        gpu_leg = (
            f"; iterations {leg['from_step']} -> {leg['to_step']} on one {leg['device']} "
            f"({leg['it_per_s']} it/s, bench/gpu_leg)"
        )
    wall = f"{minutes:.1f} minutes"
    hardware = (
        f"{platform.machine()}, {os.cpu_count()} CPU cores (shared with other work while training){gpu_leg}"
    )
    if lineage is not None:  # the whole history of these weights, from the checkpoint itself
        wall = f"{lineage['minutes']:.1f} minutes over {len(lineage['rows'])} segment(s) (see Lineage)"
        if lineage["unrecorded_steps"]:
            wall += f", plus {lineage['unrecorded_steps']} iterations from before lineages were recorded"
        hardware = "; ".join(f"{name}: {n} iterations" for name, n in lineage["hardware"].items())
    widths = (  # ScriptViTConfig.char_widths (bench/char_widths.py): the width head's unit per character
        f"; character widths fitted on the training words, {len(model_cfg['char_widths']) - 1} characters"
        if model_cfg.get("char_widths")
        else ""
    )
    card = f"""# ScriptViT `{train_cfg["preset"]}` generator (font writers)

A ScriptViT generator (`scriptvit_lib.generator.ScriptViT`, {size_mb:.1f} MB safetensors) trained by
`scriptvit train` on the default font-writer dataset. Load it with
`ScriptViT.from_pretrained("{dest}")`.

| | |
|---|---|
| data | `scriptvit data build --families {build_args.get("families", "core")}{build_flags}`: \
{data_line} (`training_writers.json` lists the ones trained on) |
| preset / recipe | `{train_cfg["preset"]}`; lr {train_cfg["lr"]}, batch {train_cfg["batch_size"]}, k = {train_cfg["k"]}, \
L1 {train_cfg["w_recon"]}, adv {train_cfg["w_adv"]}, CTC {train_cfg["w_ctc"]}, writer {train_cfg["w_writer"]}, \
balance {train_cfg["balance"]}, R/W pre-training {train_cfg["pretrain_steps"]} steps, EMA {train_cfg["ema"]}, \
style-id loss {train_cfg.get("w_style_id", 0.0)}, width loss {train_cfg.get("w_width", 0.0)}, \
feature matching {train_cfg.get("w_feat", 0.0)}, style-contrastive {train_cfg.get("w_style_nce", 0.0)}, \
k per batch {f"1..{train_cfg['k_max']}" if train_cfg.get("k_max") else train_cfg["k"]} |
| steps | {shipped_step or log.get("step", "?")} iterations (generator updated every {train_cfg["g_every"]}) |
| wall time | {wall} |
| hardware | {hardware} |
| final losses | {", ".join(f"{k} {float(v):.3f}" for k, v in log.items() if k not in ("step", "minutes") and v)} |
| CER of generated words (run's own recognizer) | val (seen writers) {ev.get("cer_val", "?")}, \
test (unseen writers) {cer_test} |
| minutes to CER(test) <= 0.15 | {legible} |

The CER above is read by the recognizer the generator trained against, which flatters it; the
evaluation (`scriptvit eval`, independent networks, real-vs-real floors) is the honest judge.
The run's CER curve is its `eval.csv` (`figures/cer_vs_minutes.png` is `bench/train_curve.py`'s
separate short run). Samples (`samples.png`): each row is a writer (first
image: one of its style words; then generated words), validation writers first, then unseen
test writers.

Model config: `config.json` (style encoder `{model_cfg["style_encoder"]}`, canvas {model_cfg["style_size"]},
patch {model_cfg["patch_size"]}, blank patches `{model_cfg["blank_patches"]}`, width mode
`{model_cfg.get("width_mode", "fixed")}` (resampling `{model_cfg.get("resample", "bilinear")}`{widths}), style modulation `{model_cfg.get("style_modulation", "none")}`,
synthesis channels {" → ".join(map(str, synthesis_stages(model_cfg["syn_channels"], model_cfg.get("syn_min_channels", 0))))}).
"""
    if lineage is not None:
        card += "\n## Lineage\n\nEvery process that trained these weights, oldest first (resumes of one run folder on one\n"
        card += "machine merged; minutes are wall time, shared cores included):\n\n"
        card += "| run folder | how it started | iterations | minutes | hardware | processes |\n|---|---|---|---:|---|---:|\n"
        for r in lineage["rows"]:
            how = r["how"]
            if how == "branched" and r.get("source"):  # <run folder>/<checkpoint> of the parent
                src = Path(r["source"])
                how = (
                    f"branched from {src.parent.parent.name}/{src.name}"
                    if src.suffix == ".pt"
                    else f"branched from model folder {src.name}"  # --init-from a folder, not a checkpoint
                )
            if r.get("critics_from"):  # TrainConfig.critics_from: D, W, S (and M) of another run
                src = Path(r["critics_from"])
                how += f"; critics from {src.parent.parent.name}/{src.name}"
            if r.get("data"):  # TrainConfig.data: the folders it trained on (recorded since session 25)
                how += f"; data {' + '.join(Path(d).name for d in r['data'])}"
            mins = "not recorded" if r["minutes"] is None else f"{r['minutes']:.1f}"
            card += (f"| {Path(r['run']).name if r['run'] else '?'} | {how} | {r['from_step']} -> {r['to_step']} | "
                     f"{mins} | {r['hardware'] or 'not recorded'} | {r['processes']} |\n")  # fmt: skip
    (dest / "MODEL_CARD.md").write_text(card)
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
