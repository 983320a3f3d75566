"""Give a model folder trained critics from a training checkpoint of a run on the same writers.

    python bench/adopt_critics.py runs/x/checkpoints/step_Y.pt --dest models/scriptvit-cpu

A model folder shipped before critics travelled with it (v7) has only its generator and
recognizer, and a fine-tune from it against fresh critics loses ~11-20 FID points before it
recovers (sessions 9 and 15). This writes the checkpoint's D, W and style-id head as
`<dest>/critics.safetensors`, so `scriptvit train --init-from <dest>` starts against them. The
checkpoint's run must have trained on the folder's writers (`training_writers.json`) with the
same critic sizes; W sees only real words, so it does not care which generator it trained beside,
and D adapts to the folder's generator in the `--pretrain-steps` warm-up (`--pretrain-critics`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--dest", type=Path, default=Path("models/scriptvit-cpu"))
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from scriptvit_lib.trainer import load_checkpoint, read_writer_index, save_critics

    ck = load_checkpoint(args.checkpoint)
    run_writers = args.checkpoint.resolve().parent.parent / "writers.json"
    folder_writers = args.dest / "training_writers.json"
    if not run_writers.is_file() or not folder_writers.is_file():
        sys.exit(f"need both {run_writers} and {folder_writers} to check the writers match")
    if read_writer_index(run_writers) != read_writer_index(folder_writers):
        sys.exit(f"{args.checkpoint} trained on other writers than {args.dest}: W would name the wrong ones")
    ours = json.loads((args.dest / "config.json").read_text())
    theirs = json.loads(ck["model_config"])
    differ = [
        k for k in ("d_ch", "wcls_ch", "d_model", "num_writers", "img_height") if ours.get(k) != theirs.get(k)
    ]
    if differ:
        sys.exit(f"{args.checkpoint}'s critics are built for another model ({', '.join(differ)} differ)")
    path = save_critics(ck, args.dest, source=args.checkpoint.name)
    print(f"wrote {path} (critics of {args.checkpoint.name}, step {ck['step']})")


if __name__ == "__main__":
    main()
