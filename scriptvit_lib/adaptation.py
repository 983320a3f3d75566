"""Test-time adaptation: a few gradient steps on the writer's own style words (library option).

Not in ScriptViT (arXiv 2511.18307), which writes an unseen hand in one forward pass. Issue 8
measured what that pass gives on writers the generator never saw: a generic hand, far below the
real-vs-real floors. Yet the k style words carry more than the encoder reads from them: their
*texts* are known (a dataset's labels, or what the user typed), so each is a paired example of
this writer's hand. Adaptation fits the generator to reproduce them before it writes anything:

    memory = E(style words)                                   (as usual, once)
    for step in 1..steps:                                     (k targets per step)
        L = mean_i |G(memory, text_i)[:, :w_i] - style_word_i|     (L1, each at its real width w_i)
        update the `what` parameters with Adam
    write any text with the adapted memory / generator

`what` picks the free parameters:
- "memory": an offset added to the style-memory tokens (the network is untouched);
- "decoder": a copy of the fusion decoder and synthesis network (the content embeddings,
  style encoder and width head stay fixed) - the writer's own small generator;
- "synthesis": a copy of the synthesis network only.

The same information as the one-pass model (the k style words) plus their texts; nothing of the
words to be written. It costs `steps` decoder passes per writer (seconds on a CPU for k = 5).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .charset import Charset
from .errors import UserError
from .generator import ScriptViT
from .sampler import place_on_canvas, to_tensor_image
from .style_encoder import StyleMemory

WHAT = ("memory", "decoder", "synthesis")


@dataclass
class AdaptConfig:
    steps: int = 60
    """Adam steps over the k style words (0 = no adaptation)."""
    lr: float = 3e-4
    """Adam learning rate (the generator's own training used 2e-4)."""
    what: str = "decoder"
    """'memory' | 'decoder' | 'synthesis': which parameters move (module docstring)."""

    def __post_init__(self):
        if self.what not in WHAT:
            raise UserError(f"adaptation `what` must be one of {WHAT}, got {self.what!r}")
        if self.steps < 0 or self.lr <= 0:
            raise UserError(f"adaptation needs steps >= 0 and lr > 0, got {self.steps}, {self.lr}")


def _targets(words: Sequence[np.ndarray], texts: Sequence[str], charset: Charset):
    """Style words + their texts -> target [K, 1, 32, Wmax] (paper-padded), widths [K],
    ids [K, L], lengths [K]."""
    if len(words) != len(texts):
        raise UserError(f"{len(words)} style words but {len(texts)} texts: give one text per word")
    bad = sorted({c for t in texts for c in charset.unknown(t)})
    if bad or not all(texts):
        raise UserError(f"every style word needs a non-empty text the model can write; unknown: {bad}")
    widths = torch.tensor([w.shape[1] for w in words])
    lengths = torch.tensor([len(t) for t in texts])
    target = torch.ones(len(words), 1, words[0].shape[0], int(widths.max()))
    ids = torch.zeros(len(words), int(lengths.max()), dtype=torch.long)
    for i, (w, t) in enumerate(zip(words, texts)):
        target[i, :, :, : w.shape[1]] = to_tensor_image(w)
        ids[i, : len(t)] = torch.tensor(charset.encode(t))
    return target, widths, ids, lengths


def reconstruction_l1(
    model: ScriptViT, memory: StyleMemory, target: torch.Tensor, widths: torch.Tensor, ids, lengths
) -> torch.Tensor:
    """Mean over words of mean |fake - real| inside each word's real width (the trainer's L1)."""
    k = len(ids)
    mem = StyleMemory(memory.tokens.expand(k, -1, -1), memory.pad_mask.expand(k, -1), None)
    if model.width_head is not None:  # predicted widths: resample to the real words' widths
        fake, _ = model.write(mem, ids, lengths, widths=widths)
    else:  # fixed char_width: the real words are resampled to the fake's width instead
        fake = model.decode(mem, ids, lengths)
        target = torch.nn.functional.interpolate(
            target, size=(target.shape[-2], fake.shape[-1]), mode="bilinear"
        )
        widths = model.output_widths(lengths)
    w = min(fake.shape[-1], target.shape[-1])
    inside = (torch.arange(w)[None, :] < widths[:, None]).to(fake.dtype)[:, None, None, :]  # [K,1,1,W]
    diff = ((fake[..., :w] - target[..., :w]).abs() * inside).flatten(1).sum(1)
    return (diff / (fake.shape[-2] * widths.clamp_min(1))).mean()


def adapt(
    model: ScriptViT,
    words: Sequence[np.ndarray],
    texts: Sequence[str],
    config: AdaptConfig | None = None,
    *,
    memory: StyleMemory | None = None,
    charset: Charset | None = None,
    progress: bool = False,
) -> tuple[ScriptViT, StyleMemory, list[float]]:
    """Fit `model` to one writer's style words (uint8 [32, w], 255 = paper) and their texts.

    Returns (the generator to write with - `model` itself for 'memory', else an adapted copy;
    the style memory to write with; the L1 loss before each step and after the last). `memory`
    defaults to the encoding of all `words` (at most the model's k). `model` is never changed.
    """
    cfg = config or AdaptConfig()
    charset = charset or Charset()
    if not words:
        raise UserError("adaptation needs at least one style word")
    device = next(model.parameters()).device
    target, widths, ids, lengths = (t.to(device) for t in _targets(words, texts, charset))
    was_training = model.training
    model.eval()
    if memory is None:
        if len(words) > model.config.max_style_images:
            raise UserError(f"at most {model.config.max_style_images} style words, got {len(words)}")
        canvases, cw = zip(*(place_on_canvas(w, model.config.style_size) for w in words))
        with torch.no_grad():
            memory = model.encode_style(
                torch.stack(canvases)[None].to(device), torch.tensor([cw], device=device)
            )
    memory = memory.detach()
    if cfg.what == "memory":
        g = model
        offset = torch.zeros_like(memory.tokens, requires_grad=True)
        params = [offset]
    else:
        g = copy.deepcopy(model)
        g.requires_grad_(False)
        parts = [g.synthesis] if cfg.what == "synthesis" else [g.fusion, g.synthesis]
        params = [p for m in parts for p in m.parameters()]
        for p in params:
            p.requires_grad_(True)
        offset = None
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.5, 0.999))

    def current() -> StyleMemory:
        if offset is None:
            return memory
        return StyleMemory(memory.tokens + offset, memory.pad_mask, memory.positions)

    losses = []
    for _ in tqdm(range(cfg.steps), desc="adapting", disable=not progress, leave=False):
        loss = reconstruction_l1(g, current(), target, widths, ids, lengths)
        losses.append(loss.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        losses.append(float(reconstruction_l1(g, current(), target, widths, ids, lengths)))
        final = current().detach()
    g.requires_grad_(False)
    g.eval()
    model.train(was_training)
    return g, final, losses
