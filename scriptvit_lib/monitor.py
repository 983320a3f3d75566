"""Seeing training progress early: a fixed sample grid and the CER of generated words.

GAN handwriting models show noise for a long time (HWT/VATr train ~300k iterations), so the
trainer records, from step 1 on, (1) a grid of the same writers x the same words, so each
`samples/step_*.png` is comparable with the last, and (2) the character error rate at which
the trainer's own recognizer R reads generated words of validation (seen) and test (unseen)
writers — legibility in numbers. R is a training loss, so this CER flatters the generator;
`evaluate.py` judges with a recognizer the generator never trained against.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchmetrics.text import CharErrorRate

from .sampler import StyleWordDataset, collate_style_batch
from .words import WordSet

GRID_WORDS = ("handwriting", "The", "quick", "brown", "fox,", "1960")


def to_uint8(images: torch.Tensor, widths: torch.Tensor | None = None) -> list[np.ndarray]:
    """[B, 1, H, W] in [-1, 1] -> list of uint8 [H, w] arrays (cropped to `widths`)."""
    arr = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()[:, 0]
    if widths is None:
        return list(arr)
    return [a[:, : int(w)] for a, w in zip(arr, widths)]


def _row(images: list[np.ndarray], gap: int = 8) -> np.ndarray:
    h = max(i.shape[0] for i in images)
    parts = []
    for im in images:
        parts += [im, np.full((h, gap), 255, np.uint8)]
    return np.concatenate(parts[:-1], axis=1)


def stack_rows(rows: list[np.ndarray], gap: int = 6) -> np.ndarray:
    w = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, gap), (0, w - r.shape[1])), constant_values=255) for r in rows]
    return np.concatenate(padded, axis=0)


class SampleMonitor:
    """Fixed writers x fixed words, and a fixed CER probe, evaluated with the sampling G."""

    def __init__(self, trainer, data: dict[str, WordSet], out: Path, *, n_writers: int = 6, n_cer: int = 64):
        self.trainer, self.out = trainer, Path(out)
        self.cs = trainer.charset
        style_size, k = trainer.model_cfg.style_size, trainer.cfg.k
        self.grid, self.probes = [], {}
        for split, n in (("val", 2), ("test", n_writers - 2)):
            words = data.get(split)
            if words is None or len(words) < 2:
                continue
            ds = StyleWordDataset(words, k=k, style_size=style_size, seed=0)
            by_writer = {}
            for n_, i in enumerate(ds.targets):
                by_writer.setdefault(words[i].writer, n_)
            for w in list(by_writer)[:n]:
                self.grid.append((split, w, ds[by_writer[w]]))
            pick = np.random.default_rng(0).choice(len(ds), size=min(n_cer, len(ds)), replace=False)
            self.probes[split] = collate_style_batch([ds[int(i)] for i in pick])
        self.text_ids = torch.zeros(len(GRID_WORDS), max(map(len, GRID_WORDS)), dtype=torch.long)
        for j, t in enumerate(GRID_WORDS):
            self.text_ids[j, : len(t)] = torch.tensor(self.cs.encode(t))
        self.text_lengths = torch.tensor([len(t) for t in GRID_WORDS])

    @torch.no_grad()
    def record(self, step: int, minutes: float) -> dict[str, float]:
        G, R, dev = self.trainer.sampler_G, self.trainer.R, self.trainer.device
        was_training = G.training, R.training
        G.eval()
        R.eval()
        row = {"step": step, "minutes": round(minutes, 3)}
        for split, b in self.probes.items():
            b = b.to(dev)
            fake, w = G.write(G.encode_style(b.style, b.style_widths), b.text_ids, b.text_lengths)
            pred = R.greedy_decode(R(fake, w), R.output_lengths(w), self.cs)
            row[f"cer_{split}"] = round(float(CharErrorRate()(pred, b.texts)), 4)
        if self.grid:
            rows = []
            for _split, _writer, item in self.grid:
                style = item["style"][None].to(dev)
                mem = G.encode_style(style, item["style_widths"][None].to(dev))
                imgs, widths = G.write(mem, self.text_ids.to(dev), self.text_lengths.to(dev))
                ref = to_uint8(item["style"][:1])[0]
                ref = ref[:, : int(item["style_widths"][0])] if ref.shape[0] == 32 else _crop_ink_rows(ref)
                gen = to_uint8(imgs, widths)
                rows.append(_row([ref, np.full((32, 4), 0, np.uint8)] + gen))
            folder = self.out / "samples"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(stack_rows(rows)).save(folder / f"step_{step:07d}.png")
        G.train(was_training[0])
        R.train(was_training[1])
        append_csv(self.out / "eval.csv", row)
        return row


def _crop_ink_rows(img: np.ndarray) -> np.ndarray:
    """A style canvas taller than 32 px: keep the 32 rows around its centre (where the word is)."""
    top = (img.shape[0] - 32) // 2
    return img[top : top + 32]


def append_csv(path: Path, row: dict, fieldnames: list[str] | None = None) -> None:
    """Append a row to a CSV file, writing the header (`fieldnames` or the row's keys) first
    if the file is new; keys missing from the row are left empty. A file whose header lacks
    some of the columns (a run resumed by a newer version) is rewritten with them, empty in
    its old rows, so no value ever lands under another column's name."""
    fields = list(fieldnames or row)
    if path.exists():
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            old = list(reader.fieldnames or [])
            missing = [c for c in fields if c not in old]
            rows = list(reader) if missing else None
        if missing:
            fields = old + missing
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields, restval="")
                w.writeheader()
                w.writerows(rows)
        else:
            fields = old
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, restval="", extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)
