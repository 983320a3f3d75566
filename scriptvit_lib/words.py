"""Word images in memory: the one format every loader produces and every model eats.

A *sample* is one word image of one writer: a uint8 array [H, W] (H = 32 by default), dark
ink on white paper (0 = ink, 255 = paper), and its transcription. A `WordSet` is a list of
samples with writer lookups. The font builder (`dataset.py`) and the IAM readers (`iam.py`)
both return `WordSet`s, which is what makes IAM a drop-in replacement for the font data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class WordSample:
    writer: str
    text: str
    image: np.ndarray  # uint8 [H, W], 255 = paper, 0 = ink

    def __post_init__(self):
        if self.image.ndim != 2 or self.image.dtype != np.uint8:
            raise ValueError(
                f"word image must be a 2-D uint8 array, got {self.image.dtype} {self.image.shape}"
            )


class WordSet:
    """An ordered collection of word samples, indexed by writer."""

    def __init__(self, samples: Iterable[WordSample]):
        self.samples: list[WordSample] = list(samples)
        self._by_writer: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(self.samples):
            self._by_writer[s.writer].append(i)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> WordSample:
        return self.samples[i]

    def __iter__(self):
        return iter(self.samples)

    def __repr__(self) -> str:
        return f"WordSet({len(self.samples)} words, {len(self.writers)} writers)"

    @property
    def writers(self) -> list[str]:
        """Writer ids in order of first appearance."""
        return list(self._by_writer)

    def indices_of(self, writer: str) -> list[int]:
        return self._by_writer.get(writer, [])

    def of_writer(self, writer: str) -> list[WordSample]:
        return [self.samples[i] for i in self.indices_of(writer)]

    def subset(self, writers: Iterable[str] | None = None, texts: Iterable[str] | None = None) -> WordSet:
        w = None if writers is None else set(writers)
        t = None if texts is None else set(texts)
        return WordSet(s for s in self.samples if (w is None or s.writer in w) and (t is None or s.text in t))

    def __add__(self, other: WordSet) -> WordSet:
        return WordSet(self.samples + other.samples)
