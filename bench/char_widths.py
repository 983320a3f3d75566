"""Fit relative character widths on training writers' real words and give them to a model or run folder.

    python bench/char_widths.py models/scriptvit-cpu --data data/fonts-x5 [--dry-run]
    python bench/char_widths.py runs/x5 --data data/fonts-x5     # a run folder: its resume trains with them

A `width_mode="predicted"` model writes a word as wide as the writer's predicted px per character
times its length: "ill" and "mom" come out equally wide. With `ScriptViTConfig.char_widths` the
length becomes the sum of the characters' relative widths (`synthesis.fit_char_widths`, fitted
here on the data folder's *training* split, so no unseen writer is looked at). The weights stay
as they are: only the model folder's `config.json` changes - or, for a run folder, its
`model_config.json`, so that `scriptvit train --resume` on it goes on with them (its width head
then learns px per unit). Prints how much of the spread of px per character inside a writer the
characters explain, and the widths of a few characters.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scriptvit_lib.charset import Charset  # noqa: E402
from scriptvit_lib.config import ScriptViTConfig  # noqa: E402
from scriptvit_lib.data import load_data  # noqa: E402
from scriptvit_lib.errors import UserError  # noqa: E402
from scriptvit_lib.synthesis import fit_char_widths  # noqa: E402


def within_writer_std(values: np.ndarray, writers: list[str]) -> float:
    """Root mean square of each value's difference from its writer's mean."""
    ids = {w: i for i, w in enumerate(dict.fromkeys(writers))}
    g = np.array([ids[w] for w in writers])
    means = np.bincount(g, values) / np.bincount(g)
    return float(np.sqrt(((values - means[g]) ** 2).mean()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "model",
        type=Path,
        help="a model folder (config.json is rewritten) or a run folder (model_config.json)",
    )
    ap.add_argument("--data", nargs="+", required=True, help="data folder(s); their training split is used")
    ap.add_argument("--dry-run", action="store_true", help="fit and print, leave the folder as it is")
    args = ap.parse_args()
    cfg_path = next(
        (args.model / n for n in ("config.json", "model_config.json") if (args.model / n).is_file()), None
    )
    if cfg_path is None:
        raise SystemExit(
            f"{args.model} is neither a model folder (config.json) nor a run folder (model_config.json)"
        )
    cfg = ScriptViTConfig.load(cfg_path)
    if cfg.width_mode != "predicted":
        raise SystemExit(f"{args.model} writes a fixed width (width_mode={cfg.width_mode!r}): nothing to fit")
    try:
        train = load_data(args.data if len(args.data) > 1 else args.data[0])["train"]
    except UserError as e:
        raise SystemExit(str(e)) from e
    charset = Charset()
    if charset.num_classes != cfg.num_classes:
        raise SystemExit(f"the model has {cfg.num_classes} character ids, the charset {charset.num_classes}")
    texts = [charset.encode(s.text) for s in train]
    widths = np.array([s.image.shape[1] for s in train], dtype=np.float64)
    writers = [s.writer for s in train]
    r = fit_char_widths(texts, widths, writers, cfg.num_classes)
    units = np.array([sum(r[c] for c in t) for t in texts])
    lengths = np.array([len(t) for t in texts], dtype=np.float64)
    before = within_writer_std(np.log(widths / lengths), writers)
    after = within_writer_std(np.log(widths / units), writers)
    print(
        f"{len(train)} training words of {len(set(writers))} writers: spread of log px per character inside a "
        f"writer {before:.3f} by length, {after:.3f} by character widths ({1 - (after / before) ** 2:.0%} of its variance)"
    )
    print("  " + ", ".join(f"{c!r} {r[charset.encode(c)[0]]:.2f}" for c in "iltrenoamwMW.,"))
    if args.dry_run:
        return
    replace(cfg, char_widths=[round(x, 4) for x in r]).save(cfg_path)  # validated by the config itself
    print(f"wrote char_widths into {cfg_path}")


if __name__ == "__main__":
    main()
