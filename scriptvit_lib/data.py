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

from .dataset import load_font_dataset, load_writers, split_of_sample
from .errors import UserError
from .words import WordSet


def with_val_split(sets: dict[str, WordSet]) -> dict[str, WordSet]:
    """Split `train` into train/val by word (a no-op when `val` exists)."""
    if "val" in sets:
        return sets
    train = [s for s in sets["train"] if split_of_sample("train", s.text) == "train"]
    val = [s for s in sets["train"] if split_of_sample("train", s.text) == "val"]
    return {**sets, "train": WordSet(train), "val": WordSet(val)}


def load_data(
    path: str | Path | list[str | Path], *, split_files: tuple[str, str] | None = None
) -> dict[str, WordSet]:
    """`path`, or a list of paths: one folder is loaded as it is; several must be built font
    folders, whose words are joined (`merge_font_folders`)."""
    if isinstance(path, (list, tuple)):
        if len(path) == 1:
            return load_data(path[0], split_files=split_files)
        return merge_font_folders(path)
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


def merge_font_folders(paths: list[str | Path]) -> dict[str, WordSet]:
    """The words of several built font folders, split by split. A writer id that appears in more
    than one folder must be the same writer there (family, font file, style and split), as in a
    build with `--only-train --rare-letters` beside a full build with the same seed; else a
    `UserError` names the first that differs."""
    seen: dict[str, tuple[dict, Path]] = {}
    merged: dict[str, list] = {"train": [], "val": [], "test": []}
    for path in paths:
        p = Path(path)
        if not (p / "manifest.csv").exists():
            raise UserError(f"{p}: only built font folders (manifest.csv) can be trained on together")
        for w in load_writers(p):
            ident = dict(
                family=w["family"], font=Path(w["font_file"]).name, style=w["style"], split=w["split"]
            )
            if w["id"] in seen and seen[w["id"]][0] != ident:
                other = seen[w["id"]][1]
                diff = sorted(k for k in ident if ident[k] != seen[w["id"]][0][k])
                raise UserError(
                    f"writer {w['id']} differs between {other} and {p} ({', '.join(diff)}): "
                    "build the extra folder with the same --seed, --writers-per-family and --glyph-variation"
                )
            seen.setdefault(w["id"], (ident, p))
        for split, words in load_font_dataset(p).items():
            merged[split] += words.samples
    return {k: WordSet(v) for k, v in merged.items()}


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
