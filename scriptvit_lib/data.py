"""One entry point for every data source: `load_data(path) -> {"train", "val", "test"}`.

* a folder built by `scriptvit data build` (font writers; has manifest.csv),
* an IAM folder in IAM's own layout (words.txt + words/…; see `iam.py`),
* the HWT/VATr `IAM-32.pickle` (read through a restricted unpickler).

IAM comes as train/test writers only; its "val" set is carved out of the training writers'
words with the same rule the font builder uses (a stable hash of the lower-cased text), so
validation words are never seen in training, for any source.
"""

from __future__ import annotations

from pathlib import Path

from .cli import UserError
from .dataset import load_font_dataset, split_of_sample
from .words import WordSet


def with_val_split(sets: dict[str, WordSet]) -> dict[str, WordSet]:
    """Split `train` into train/val by word (a no-op when `val` exists)."""
    if "val" in sets:
        return sets
    train = [s for s in sets["train"] if split_of_sample("train", s.text) == "train"]
    val = [s for s in sets["train"] if split_of_sample("train", s.text) == "val"]
    return {**sets, "train": WordSet(train), "val": WordSet(val)}


def load_data(path: str | Path, *, split_files: tuple[str, str] | None = None) -> dict[str, WordSet]:
    p = Path(path)
    if not p.exists():
        raise UserError(f"no data at {p}: build it with `scriptvit data build --out {p}`")
    if p.is_file() and p.suffix in (".pickle", ".pkl", ".npy"):
        from .iam import read_iam_pickle

        return with_val_split(read_iam_pickle(p))
    if (p / "manifest.csv").exists():
        return load_font_dataset(p)
    if (p / "words.txt").exists() or (p / "ascii" / "words.txt").exists():
        from .iam import load_iam_words

        return with_val_split(load_iam_words(p, split_files=split_files))
    raise UserError(
        f"{p} is neither a built font dataset (manifest.csv), an IAM folder (words.txt) nor an IAM-32.pickle"
    )
