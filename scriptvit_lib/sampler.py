"""The style batch: what the ScriptViT generator eats.

For every *target* (writer, text, image) the sampler draws k **other** word images of the
same writer (the style references; paper: k = 5), each placed on a canvas the size of the
style encoder's input (paper: 224×224; the word is kept at its native 32 px height, put at
the left edge and centred vertically, the rest is paper). The target's text becomes
character ids and its image is kept for the losses that compare with a real word.

Pixel convention for every tensor here: float in [-1, 1], paper = +1, ink = −1
(`to_tensor_image`). Padding is paper, so a padded column looks like blank paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch.utils.data import Dataset

from .charset import Charset
from .words import WordSet

MAX_K = 15


def to_tensor_image(image: np.ndarray) -> torch.Tensor:
    """uint8 [H, W] (255 = paper) -> float [1, H, W] in [-1, 1] (paper = +1)."""
    return torch.from_numpy(image.astype(np.float32) / 127.5 - 1.0).unsqueeze(0)


def place_on_canvas(image: np.ndarray, size: tuple[int, int]) -> tuple[torch.Tensor, int]:
    """Put a word image at the left of a paper canvas of `size` = (H, W), centred vertically.

    Words wider than the canvas are cut at its right edge (the scale of the strokes is part of
    the style, so we never shrink). Returns ([1, H, W] tensor, content width in px).
    """
    hs, ws = size
    h, w = image.shape
    if h > hs:
        raise ValueError(f"style image is {h} px high but the style canvas is only {hs} px high")
    canvas = torch.ones(1, hs, ws)
    w_in = min(w, ws)
    top = (hs - h) // 2
    canvas[:, top : top + h, :w_in] = to_tensor_image(image[:, :w_in])
    return canvas, w_in


@dataclass
class StyleBatch:
    """A collated batch. Shapes: B targets, K style images each, L characters."""

    style: torch.Tensor  # [B, K, 1, Hs, Ws] float, paper = +1
    style_widths: torch.Tensor  # [B, K] long, content width of each style image
    target: torch.Tensor  # [B, 1, 32, Wmax] float, padded with paper
    target_widths: torch.Tensor  # [B] long
    text_ids: torch.Tensor  # [B, L] long, 0 = padding
    text_lengths: torch.Tensor  # [B] long
    writer_ids: torch.Tensor  # [B] long, index of a training writer or -1
    texts: list[str]
    writers: list[str]

    def to(self, device: torch.device | str) -> StyleBatch:
        moved = {
            f.name: (v.to(device) if isinstance(v := getattr(self, f.name), torch.Tensor) else v)
            for f in fields(self)
        }
        return StyleBatch(**moved)

    def __len__(self) -> int:
        return len(self.texts)


def _checked_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k (style images per target) must be in 1..{MAX_K}, got {k}")
    return k


class StyleWordDataset(Dataset):
    """One item per target word: (style references of the same writer, target, text).

    Args:
        words: the targets.
        k: number of style images per target (1..15).
        style_size: (H, W) canvas of the style encoder.
        charset: text -> ids; targets with characters outside it raise at construction.
        writer_index: writer id -> class index for the writer classifier (others get -1).
        style_pool: where style references come from (default: `words` itself). The target
            image itself is never used as its own reference.
        seed: None -> fresh random references on every access (training); an int -> the same
            references for the same index every time (evaluation).
    """

    def __init__(
        self,
        words: WordSet,
        *,
        k: int = 5,
        style_size: tuple[int, int] = (224, 224),
        charset: Charset | None = None,
        writer_index: dict[str, int] | None = None,
        style_pool: WordSet | None = None,
        seed: int | None = None,
    ):
        self.words, self.k, self.style_size, self.seed = words, _checked_k(k), tuple(style_size), seed
        self.charset = charset or Charset()
        self.writer_index = writer_index or {}
        self.pool = style_pool if style_pool is not None else words
        self._same_pool = style_pool is None or style_pool is words
        bad = sorted({c for s in words for c in self.charset.unknown(s.text)})
        if bad:
            raise ValueError(f"targets contain characters outside the charset: {bad}")
        # targets whose writer has no other image to serve as a reference are left out
        self.targets = [i for i, s in enumerate(words) if self._candidates(i, s.writer)]
        if not self.targets:
            raise ValueError("no target has a style reference: every writer needs >= 2 images")

    def _candidates(self, i: int, writer: str) -> list[int]:
        refs = self.pool.indices_of(writer)
        return [j for j in refs if j != i] if self._same_pool else list(refs)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, n: int) -> dict:
        if self.seed is None:
            rng = np.random.default_rng(torch.randint(0, 2**31 - 1, ()).item())
        else:
            rng = np.random.default_rng((self.seed, self.targets[n]))
        return self.item(n, rng)

    def item(self, n: int, rng: np.random.Generator, k: int | None = None) -> dict:
        """Target `n` with `k` (default: the dataset's) style references drawn by `rng` (the
        trainer passes a step-seeded one)."""
        k = self.k if k is None else _checked_k(k)
        i = self.targets[n]
        s = self.words[i]
        cands = self._candidates(i, s.writer)
        pick = rng.choice(cands, size=k, replace=len(cands) < k)
        canvases, widths = zip(*(place_on_canvas(self.pool[j].image, self.style_size) for j in pick))
        return {
            "style": torch.stack(canvases),  # [K, 1, Hs, Ws]
            "style_widths": torch.tensor(widths),
            "target": to_tensor_image(s.image),  # [1, 32, W]
            "text_ids": torch.tensor(self.charset.encode(s.text)),
            "writer_id": self.writer_index.get(s.writer, -1),
            "text": s.text,
            "writer": s.writer,
            "style_index": [int(j) for j in pick],  # which words of the pool are the references
        }


PAD_MULTIPLE = 8  # the discriminator scores one column per 8 px: pad so the last one is whole


def collate_style_batch(items: Sequence[dict]) -> StyleBatch:
    """Pad targets (with paper, to a multiple of 8 px) and texts (with 0) to the longest."""
    widths = torch.tensor([it["target"].shape[-1] for it in items])
    lengths = torch.tensor([len(it["text_ids"]) for it in items])
    h = items[0]["target"].shape[-2]
    w_pad = -(-int(widths.max()) // PAD_MULTIPLE) * PAD_MULTIPLE
    target = torch.ones(len(items), 1, h, w_pad)
    text_ids = torch.zeros(len(items), int(lengths.max()), dtype=torch.long)
    for b, it in enumerate(items):
        target[b, :, :, : widths[b]] = it["target"]
        text_ids[b, : lengths[b]] = it["text_ids"]
    return StyleBatch(
        style=torch.stack([it["style"] for it in items]),
        style_widths=torch.stack([it["style_widths"] for it in items]),
        target=target,
        target_widths=widths,
        text_ids=text_ids,
        text_lengths=lengths,
        writer_ids=torch.tensor([it["writer_id"] for it in items]),
        texts=[it["text"] for it in items],
        writers=[it["writer"] for it in items],
    )
