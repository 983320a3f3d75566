"""What the width-resampling kernel alone costs real words, by the judges' FID and HWD.

    python bench/resample_kernel.py --data data/fonts-all

A model with `width_mode="predicted"` draws every word at 16 px per character and then shrinks
it to the writer's width. Here the real words of the floor (half B of the unseen writers, as in
`style_fidelity`) are drawn at 16 px per character (nearest: no new information) and shrunk back
to their own width with each kernel of `synthesis.resample_widths`; a kernel that a generator
could not compensate would cost this much. Writes `<out>/resample_kernel.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fid_sensitivity import floor_scorer  # noqa: E402  (bench/, this script's folder)

from scriptvit_lib.synthesis import resample_widths  # noqa: E402


def round_trip(image: np.ndarray, n_chars: int, mode: str, char_width: int = 16) -> np.ndarray:
    """uint8 word -> drawn at `char_width` px per character (nearest) -> shrunk back with `mode`."""
    x = torch.tensor(image, dtype=torch.float32)[None, None] / 127.5 - 1
    w = x.shape[-1]
    big = max(w, char_width * n_chars)
    up = x[..., (torch.arange(big) * w / big).long()]
    out = resample_widths(up, torch.tensor([big]), torch.tensor([w]), mode=mode)
    return ((out[0, 0] + 1) * 127.5).round().clamp(0, 255).numpy().astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "data" / "fonts-all"))
    ap.add_argument("--judges", default=None, help="judges folder or cache root (default: the cache)")
    ap.add_argument("--n-per-writer", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "results" / "style_fidelity"))
    args = ap.parse_args()
    _, b, _, score_against_a = floor_scorer(args.data, args.judges, args.n_per_writer, args.seed)
    writers = [s.writer for s in b]

    def score(images: list[np.ndarray]) -> dict:
        return score_against_a(images, writers)[0]

    result = {"data": str(Path(args.data)), "writers": len(set(writers)), "seed": args.seed,
              "floor": score([s.image for s in b])}  # fmt: skip
    for mode in ("area", "bilinear"):
        result[mode] = score([round_trip(s.image, len(s.text), mode) for s in b])
        print(f"{mode}: FID {result[mode]['fid']:.1f}, HWD {result[mode]['hwd']:.2f} "
              f"(floor {result['floor']['fid']:.1f}, {result['floor']['hwd']:.2f})", flush=True)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "resample_kernel.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
