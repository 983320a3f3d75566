"""Here: the GPU's weight files -> a full checkpoint in a new run folder (fresh optimizer states),
beside a copy of the source run's logs, so `--resume` and `bench/ship_model.py` work on it.
`python unpack.py BACK SRC_RUN NEW_RUN DATA`; SRC_RUN `-` for a leg started from a model folder."""

import json
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from scriptvit_lib.data import load_data  # noqa: E402
from scriptvit_lib.trainer import TrainConfig, build_trainer, read_lineage  # noqa: E402

back, src_run, new_run, data = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
new_run.mkdir(parents=True, exist_ok=True)
meta = json.loads((back / "meta_back.json").read_text())
if src_run == "-":  # a run started on the GPU from a model folder (continue_on_gpu.py --from-model)
    for name, text in meta["run_files"].items():
        (new_run / name).write_text(text)
    src_run = new_run
else:
    src_run = Path(src_run)
    for name in ("train_config.json", "model_config.json", "writers.json", "log.csv", "eval.csv"):
        shutil.copy2(src_run / name, new_run / name)
    if (src_run / "samples").is_dir():
        shutil.copytree(src_run / "samples", new_run / "samples", dirs_exist_ok=True)
tc = json.loads((src_run / "train_config.json").read_text())
tc.update(out=str(new_run), device="cpu", resume=True)
cfg = TrainConfig(**tc)
trainer, _, _ = build_trainer(cfg, load_data(data)["train"])
for net in ("G", "G_ema"):
    if getattr(trainer, net) is None:  # a run without EMA
        continue
    sd = {**load_file(str(back / f"{net}_0.safetensors")), **load_file(str(back / f"{net}_1.safetensors"))}
    getattr(trainer, net).load_state_dict(sd)
flat = load_file(str(back / "DRWS.safetensors"))
for net in ("D", "R", "W", "S"):
    if getattr(trainer, net) is None:  # no style-id head in this recipe
        continue
    getattr(trainer, net).load_state_dict(
        {k[len(net) + 1 :]: v for k, v in flat.items() if k.startswith(net + ".")}
    )
trainer.step, trainer.pretrain_done, trainer.ema_updates = (
    meta["step"],
    meta["pretrain_done"],
    meta["ema_updates"],
)
trainer.lineage = read_lineage(meta)  # with the GPU leg
path = trainer.save_checkpoint(new_run / "checkpoints")
(new_run / "elapsed.json").write_text(json.dumps({"minutes": meta["elapsed"]}))
for name in ("log.csv", "eval.csv"):  # the GPU rows after the source run's
    if (back / name).exists():
        rows = (back / name).read_text().splitlines()[(new_run / name).exists() :]  # header once
        with open(new_run / name, "a") as f:
            f.writelines(r + "\n" for r in rows)
(new_run / "gpu_continuation.json").write_text(json.dumps(meta, indent=1))
print("wrote", path)
