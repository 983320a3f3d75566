"""What `make demo` shows: one sentence written in several hands the model never trained on.

Rows: a phone photo of a written line (`examples/phone_photo_line.jpg`, split into words
automatically), four clean word scans (`examples/clean_words/`), and real words of unseen test
writers of the font dataset. Left: the style input as the model sees it; right: the sentence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .generator import ScriptViT
from .words import WordSet
from .writer import Writer

SENTENCE = "The quick brown fox jumps over the lazy dog."


def demo_styles(
    examples: Path,
    test_words: WordSet | None,
    n_test_writers: int = 2,
    exclude: set[str] | frozenset = frozenset(),
) -> list[tuple[str, list]]:
    """(label, style sources) pairs: the example pictures, then real words of test writers that
    are not in `exclude` (the model's training writers, when it lists them)."""
    styles = []
    photo = examples / "phone_photo_line.jpg"
    if photo.exists():
        styles.append(("phone photo of a line (examples/)", [photo]))
    clean = sorted((examples / "clean_words").glob("*.png"))
    if clean:
        styles.append(("4 scanned words (examples/)", clean))
    if test_words is not None:
        for w in [w for w in test_words.writers if w not in exclude][:n_test_writers]:
            words = [s.image for s in test_words.of_writer(w)[:5]]
            styles.append((f"5 words of unseen writer {w}", words))
    return styles


def demo_figure(model: ScriptViT | str | Path, styles, path: str | Path, text: str = SENTENCE, seed: int = 0):
    """Write `text` in every style of `styles` and save the figure at `path`."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 1.25 * len(styles) + 0.4))
    axes = fig.subplots(len(styles), 2, gridspec_kw={"width_ratios": [1, 3]}, squeeze=False)
    for (label, sources), (ax_in, ax_out) in zip(styles, axes):
        arrays = all(isinstance(s, np.ndarray) for s in sources)
        writer = Writer.from_images(sources, model, seed=seed, preprocess=not arrays)
        ax_in.imshow(writer.style_image(), cmap="gray", vmin=0, vmax=255)
        ax_in.set_title(label, fontsize=8, loc="left")
        ax_out.imshow(writer.write(text, seed=seed), cmap="gray", vmin=0, vmax=255)
        for ax in (ax_in, ax_out):
            ax.axis("off")
    fig.suptitle(f"“{text}” written in hands the model never trained on", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig
