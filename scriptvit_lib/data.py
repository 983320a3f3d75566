"""One entry point for every data source: `load_data(path) -> {"train", "val", "test"}`.

* a folder built by `scriptvit data build` (font writers; has manifest.csv),
* an IAM folder in IAM's own layout (words.txt + words/…; see `iam.py`),
* the HWT/VATr `IAM-32.pickle` (read through a restricted unpickler).

IAM comes as train/test writers only; its "val" set is carved out of the training writers'
words with the same rule the font builder uses (a stable hash of the lower-cased text), so
validation words are never seen in training, for any source.
"""

from __future__ import annotations

import json
from pathlib import Path

from .dataset import load_font_dataset, split_of_sample
from .errors import UserError
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


# Ten families (two of them test families under the sorted-index rule) for notebooks and demos.
MINI_FAMILIES = (
    "caveat,indie-flower,kalam,homemade-apple,dancing-script,"
    "gloria-hallelujah,reenie-beanie,cedarville-cursive,rock-salt,yellowtail"
)


def mini_dataset(root: str | Path = "data/fonts-mini", *, words_per_writer: int = 60) -> dict[str, WordSet]:
    """A small font dataset for notebooks: built on first use (fonts from npm), then reused.

    Notebooks call `mini_dataset(ROOT / "data/fonts-mini")`; the full dataset is
    `scriptvit data build` (38+ families x 300 words).
    """
    from .dataset import build_dataset

    root = Path(root)
    built = root / "build.json"
    if not built.exists() or json.loads(built.read_text())["args"]["words_per_writer"] < words_per_writer:
        build_dataset(root, families=MINI_FAMILIES, words_per_writer=words_per_writer, workers=1)
    return load_font_dataset(root)
