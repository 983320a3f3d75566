"""What the width-resampling kernel alone costs real words, by the judges' FID and HWD.

    python bench/resample_kernel.py --data data/fonts-all

A model with `width_mode="predicted"` draws every word at 16 px per character and then shrinks
it to the writer's width. Here the real words of the floor (half B of the unseen writers, as in
`style_fidelity`) are drawn at 16 px per character (nearest: no new information) and shrunk back
to their own width with each kernel of `synthesis.resample_widths`; a kernel that a generator
could not compensate would cost this much.

`--best-fit STEPS` asks the sharper question: what is the *best* a generator could do through
this last step? For every real word, the canvas of 16 px per character (`--char-width`; values in the
generator's tanh range) whose resampled image is closest to the word (least squares, projected
Adam, STEPS steps) is found, and the words it gives are scored: a lower bound on FID / HWD for
any generator with this output path, beside the words that were only shrunk (canvas wider than
the word; the few wider than 16 px per character are stretched, which no canvas can sharpen).
Writes `<out>/resample_kernel.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

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


def best_canvas(
    image: np.ndarray, n_chars: int, mode: str, char_width: int = 16, steps: int = 300, lr: float = 0.05
) -> np.ndarray:
    """uint8 word -> the canvas [32, char_width * n_chars] in [-1, 1] whose resampling to the
    word's width with `mode` is nearest the word (projected Adam on the squared error) -> that
    resampled canvas as uint8: the best this output path can write the word."""
    y = torch.tensor(image, dtype=torch.float32)[None, None] / 127.5 - 1
    w_in, w_out = torch.tensor([char_width * n_chars]), torch.tensor([image.shape[1]])
    x = torch.nn.functional.interpolate(y, size=(y.shape[-2], int(w_in)), mode="bilinear")
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        loss = (resample_widths(x, w_in, w_out, mode=mode) - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(-1, 1)
    with torch.no_grad():
        out = resample_widths(x, w_in, w_out, mode=mode)
    return ((out[0, 0] + 1) * 127.5).round().clamp(0, 255).numpy().astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "data" / "fonts-all"))
    ap.add_argument("--judges", default=None, help="judges folder or cache root (default: the cache)")
    ap.add_argument("--n-per-writer", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "results" / "style_fidelity"))
    ap.add_argument("--name", default="resample_kernel")
    ap.add_argument(
        "--char-width", type=int, default=16, help="the canvas' px per character (the model's: 16)"
    )
    ap.add_argument(
        "--best-fit", type=int, default=0, help="also the best canvas per word, in STEPS Adam steps"
    )
    args = ap.parse_args()
    _, b, _, score_against_a = floor_scorer(args.data, args.judges, args.n_per_writer, args.seed)
    writers = [s.writer for s in b]

    def score(images: list[np.ndarray]) -> dict:
        return score_against_a(images, writers)[0]

    result = {"data": str(Path(args.data)), "writers": len(set(writers)), "seed": args.seed,
              "floor": score([s.image for s in b]), "char_width": args.char_width}  # fmt: skip
    cw = args.char_width
    shrunk = np.array([s.image.shape[1] <= cw * len(s.text) for s in b])
    result["shrunk_share"] = float(shrunk.mean())
    for mode in ("area", "bilinear"):
        result[mode] = score([round_trip(s.image, len(s.text), mode, cw) for s in b])
        print(f"{mode}: FID {result[mode]['fid']:.1f}, HWD {result[mode]['hwd']:.2f} "
              f"(floor {result['floor']['fid']:.1f}, {result['floor']['hwd']:.2f})", flush=True)  # fmt: skip
        if args.best_fit:
            fits = [best_canvas(s.image, len(s.text), mode, cw, args.best_fit) for s in tqdm(b, desc=mode)]
            err = [np.abs(f.astype(np.float32) - s.image).mean() for f, s in zip(fits, b)]
            result[f"{mode}_best_fit"] = {
                **score(fits),
                "steps": args.best_fit,
                "mean_abs_error": float(np.mean(err)),
                "shrunk_only": score([f if k else s.image for f, k, s in zip(fits, shrunk, b)]),
            }
            r = result[f"{mode}_best_fit"]
            print(f"{mode}, best canvas: FID {r['fid']:.1f}, HWD {r['hwd']:.2f}, mean |error| "
                  f"{r['mean_abs_error']:.2f} grey levels; only the {shrunk.mean():.0%} shrunk words "
                  f"fitted: FID {r['shrunk_only']['fid']:.1f}", flush=True)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / args.name).with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
