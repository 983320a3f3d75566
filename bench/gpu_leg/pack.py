"""Here: a training checkpoint -> a slim package for the GPU (weights fp32, no optimizer states)."""

import json
import sys
from pathlib import Path

from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from scriptvit_lib.trainer import load_checkpoint  # noqa: E402

ck_path, out, elapsed = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
ck = load_checkpoint(ck_path)
flat = {}
for net in ("G", "D", "R", "W", "S"):  # S: the style-id head, only with --w-style-id
    for k, v in ck.get(net, {}).items():
        flat[f"{net}.{k}"] = v.contiguous()
save_file(flat, str(out / "nets.safetensors"))
meta = {k: ck[k] for k in ("step", "pretrain_done", "ema_updates")}
meta.update(
    train_config=ck["train_config"],
    model_config=ck["model_config"],
    elapsed=elapsed,
    source=ck_path.name,
    lineage=ck.get("lineage", ""),  # the weights' history travels with them (trainer.read_lineage)
)
(out / "meta.json").write_text(json.dumps(meta))
print("packed", ck_path.name, round((out / "nets.safetensors").stat().st_size / 2**20, 1), "MiB")
