"""Looking at a trained ScriptViT: per-character attention maps and style interpolation.

ScriptViT (arXiv 2511.18307, Sec. 4) shows cross-attention maps: for each character the
decoder writes, which patches of the k style words it reads. We draw the same thing:

    decode(memory, text, return_attention=True) -> attention [1, layers, heads, L, N]
    --pick a layer / head, or average them--> [L, N] (each row a distribution over tokens)
    --scatter token n to its patch `memory.positions[n]`--> [L, K * gh * gw]
    --reshape to the K patch grids, repeat each patch over its p x p pixels--> [L, K, Hs, Ws]

Masked tokens get exactly 0, and with blank patches dropped the blank patches simply receive
nothing. Looking never changes the output: `decode` computes the same pixels with or without
`return_attention` (tests/test_attention.py). Attention is not explanation: a map shows where a
character's query *reads* from, not which pixels caused a stroke (values are mixed by the
output projection, the feed-forward layers and two more layers of self-attention).

`interpolate_styles(a, b, alpha)` mixes two writers' style memories token by token; see its
docstring for how memories of different lengths are aligned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .charset import Charset
from .generator import ScriptViT
from .monitor import to_uint8
from .sampler import place_on_canvas
from .style_encoder import StyleMemory
from .writer import Writer, _inference, crop_to_ink


def _ids(texts: Sequence[str], charset: Charset) -> tuple[torch.Tensor, torch.Tensor]:
    """Words -> ids [B, L] (0 = padding) and lengths [B]."""
    assert texts and all(texts), "every text needs at least one character"
    bad = sorted({c for t in texts for c in charset.unknown(t)})
    assert not bad, f"characters the model cannot write: {bad}"
    lengths = torch.tensor([len(t) for t in texts])
    ids = torch.zeros(len(texts), int(lengths.max()), dtype=torch.long)
    for b, t in enumerate(texts):
        ids[b, : len(t)] = torch.tensor(charset.encode(t))
    return ids, lengths


def reduce_attention(attn: torch.Tensor, layer: str | int = "mean", head: str | int = "mean"):
    """attention [layers, heads, L, N] -> ([L, N], label): one layer/head, or the mean over them.

    A mean of distributions is a distribution, so every row still sums to 1.
    """
    assert attn.ndim == 4, f"expected attention [layers, heads, L, N], got {tuple(attn.shape)}"
    n_layers, n_heads = attn.shape[:2]
    parts = []
    for name, choice, size in (("layer", layer, n_layers), ("head", head, n_heads)):
        if choice == "mean":
            parts.append(f"mean of {size} {name}s")
        else:
            assert 0 <= int(choice) < size, f"{name} {choice} out of range 0..{size - 1}"
            parts.append(f"{name} {int(choice)}")
    a = attn.mean(0) if layer == "mean" else attn[int(layer)]  # [heads, L, N]
    a = a.mean(0) if head == "mean" else a[int(head)]  # [L, N]
    return a, ", ".join(parts)


def scatter_to_patches(weights: torch.Tensor, memory: StyleMemory, num_patches: int) -> torch.Tensor:
    """Token weights [R, N] of a batch-1 memory -> patch weights [R, K*gh*gw] (image-major).

    Masked tokens contribute 0; patches without a token (dropped blanks) get 0.
    """
    assert memory.positions is not None, "this memory's tokens are not patches (CNN encoder?)"
    pos, pad = memory.positions[0], memory.pad_mask[0]  # [N]
    assert weights.shape[-1] == pos.shape[0], f"{weights.shape[-1]} weights for {pos.shape[0]} tokens"
    w = weights.float().masked_fill(pad[None, :], 0.0)
    out = torch.zeros(w.shape[0], num_patches, dtype=w.dtype, device=w.device)
    return out.index_add_(1, pos, w)  # index_add: a position appears at most once, but is safe anyway


def patches_to_pixels(patch_weights: torch.Tensor, k: int, style_size: tuple[int, int], patch: int):
    """[R, K*gh*gw] -> [R, K, Hs, Ws]: each pixel carries its patch's weight (nearest upsampling)."""
    hs, ws = style_size
    grid = patch_weights.reshape(patch_weights.shape[0], k, hs // patch, ws // patch)  # [R, K, gh, gw]
    return grid.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)  # [R, K, Hs, Ws]


@dataclass
class CharacterAttention:
    """What `character_attention` returns: everything a plot needs, nothing recomputed."""

    text: str
    image: np.ndarray  # uint8 [32, 16 L] the generated word (uncropped: char i is columns 16i..16i+15)
    canvases: torch.Tensor  # [K, 1, Hs, Ws] the style canvases, +1 = paper
    attention: torch.Tensor  # [layers, heads, L, N] raw cross-attention of the decode
    patches: torch.Tensor  # [L, K*gh*gw] the chosen reduction, scattered onto the patches
    maps: torch.Tensor  # [L, K, Hs, Ws] the same per pixel
    layer: str | int
    head: str | int
    label: str  # e.g. "mean of 3 layers, head 5": shown on every plot
    patch_size: int
    char_width: int

    def share_per_image(self) -> torch.Tensor:
        """[L, K]: how much of each character's attention goes to each style image (rows sum to 1)."""
        return self.patches.reshape(self.patches.shape[0], self.canvases.shape[0], -1).sum(-1)


def character_attention(
    source: Writer | ScriptViT,
    text: str,
    *,
    style: torch.Tensor | None = None,
    style_widths: torch.Tensor | None = None,
    layer: str | int = "mean",
    head: str | int = "mean",
    draw: int = 0,
    charset: Charset | None = None,
) -> CharacterAttention:
    """Where each character of one word looks in the k style images.

    `source` is a `Writer` (its cached memory of `draw` and its chosen words), or a `ScriptViT`
    with `style` [K, 1, Hs, Ws] (or [1, K, 1, Hs, Ws]) canvases and optional `style_widths` [K].
    `layer` / `head`: an index, or "mean" to average; the choice is kept in `.label`.
    """
    charset = charset or getattr(source, "charset", None) or Charset()
    assert " " not in text.strip(), "one word at a time (the model writes words)"
    if isinstance(source, Writer):
        model, memory = source.model, source.memory(draw)
        idx = source.chosen if draw == 0 else source._draw(draw)
        canvases, _ = zip(*(place_on_canvas(source.words[i], model.config.style_size) for i in idx))
        canvases = torch.stack(canvases)  # [K, 1, Hs, Ws]
    else:
        assert style is not None, "with a model, pass the style canvases: style=[K, 1, Hs, Ws]"
        model, canvases = source, (style[0] if style.ndim == 5 else style).cpu()
        widths = None if style_widths is None else style_widths.reshape(1, -1)
        device = next(model.parameters()).device
        with _inference(model):
            memory = model.encode_style(
                canvases[None].to(device), None if widths is None else widths.to(device)
            )
    cfg = model.config
    device = next(model.parameters()).device
    ids, lengths = _ids([text], charset)
    with _inference(model):
        images, attn = model.decode(memory, ids.to(device), lengths.to(device), return_attention=True)
    attn = attn[0].cpu()  # [layers, heads, L, N]
    mem = memory.to("cpu")
    reduced, label = reduce_attention(attn, layer, head)  # [L, N]
    k, (hs, ws), p = canvases.shape[0], cfg.style_size, cfg.patch_size
    patches = scatter_to_patches(reduced, mem, k * (hs // p) * (ws // p))  # [L, K*gh*gw]
    return CharacterAttention(
        text=text,
        image=to_uint8(images.cpu())[0],
        canvases=canvases,
        attention=attn,
        patches=patches,
        maps=patches_to_pixels(patches, k, (hs, ws), p),
        layer=layer,
        head=head,
        label=label,
        patch_size=p,
        char_width=cfg.char_width,
    )


def layer_head_maps(result: CharacterAttention, char: int, memory: StyleMemory) -> torch.Tensor:
    """One character's pixel maps for every layer x head, plus a mean row and column:
    [layers + 1, heads + 1, K, Hs, Ws] (last row = mean over layers, last column = mean over heads).
    `memory` is the one the result was decoded with (`Writer.memory()`)."""
    attn = result.attention[:, :, char]  # [layers, heads, N]
    attn = torch.cat([attn, attn.mean(0, keepdim=True)], dim=0)  # + mean over layers
    attn = torch.cat([attn, attn.mean(1, keepdim=True)], dim=1)  # + mean over heads
    rows, cols, n = attn.shape
    k, _, hs, ws = result.canvases.shape
    p = result.patch_size
    patches = scatter_to_patches(attn.reshape(-1, n), memory.to("cpu"), k * (hs // p) * (ws // p))
    return patches_to_pixels(patches, k, (hs, ws), p).reshape(rows, cols, k, hs, ws)


# --- style interpolation -------------------------------------------------------------------------
def pad_memory(memory: StyleMemory, n: int) -> StyleMemory:
    """Append masked zero tokens to a memory until it has `n` tokens."""
    tokens, pad = memory.tokens, memory.pad_mask  # [B, N, D], [B, N]
    extra = n - tokens.shape[1]
    assert extra >= 0, f"memory already has {tokens.shape[1]} > {n} tokens"
    if extra == 0:
        return memory
    tokens = torch.cat([tokens, tokens.new_zeros(tokens.shape[0], extra, tokens.shape[2])], dim=1)
    pad = torch.cat([pad, pad.new_ones(pad.shape[0], extra)], dim=1)
    pos = memory.positions
    if pos is not None:
        pos = torch.cat([pos, pos.new_zeros(pos.shape[0], extra)], dim=1)  # masked: never drawn
    return StyleMemory(tokens, pad, pos)


def interpolate_styles(memory_a: StyleMemory, memory_b: StyleMemory, alpha: float) -> StyleMemory:
    """A memory "between" two writers: token i = (1 - alpha) a_i + alpha b_i.

    The choice (the paper does not interpolate; documented because it is ours):

    * Memories of different lengths (drop mode keeps only ink patches) are padded to the same
      N with masked tokens, and token i of A is paired with token i of B. With drop mode both
      run through their ink patches in reading order (image by image, row by row), so pairs are
      "the i-th ink patch of each" - a rough correspondence, not a matched stroke.
    * Where only one writer has a token, that token is used unscaled: blending it toward the
      zero padding vector would shrink it to a length the decoder never saw.
    * Masks are combined as a union (a token is read if either writer has it), except at
      exactly alpha = 0 / 1, where the mask is that writer's own: the endpoints reproduce each
      writer exactly. So writer B's extra tokens appear as soon as alpha > 0 (a small jump).
    * `positions` is None: a mixed token is no patch of any canvas (no attention maps).
    """
    assert 0.0 <= alpha <= 1.0, f"alpha must be in [0, 1], got {alpha}"
    n = max(memory_a.tokens.shape[1], memory_b.tokens.shape[1])
    a, b = pad_memory(memory_a, n), pad_memory(memory_b, n)
    assert a.tokens.shape == b.tokens.shape, f"memories {tuple(a.tokens.shape)} vs {tuple(b.tokens.shape)}"
    only_a = (b.pad_mask & ~a.pad_mask)[..., None]  # [B, N, 1]
    only_b = (a.pad_mask & ~b.pad_mask)[..., None]
    mixed = torch.lerp(a.tokens, b.tokens, float(alpha))
    tokens = torch.where(only_a, a.tokens, torch.where(only_b, b.tokens, mixed))  # [B, N, D]
    if alpha == 0.0:
        pad = a.pad_mask
    elif alpha == 1.0:
        pad = b.pad_mask
    else:
        pad = a.pad_mask & b.pad_mask  # union of the tokens either writer has
    return StyleMemory(tokens, pad, None)


def decode_words(model: ScriptViT, memory: StyleMemory, words: Sequence[str], charset=None, crop=True):
    """Words written with one memory (batch 1, or one memory per word) -> uint8 images."""
    charset = charset or Charset()
    device = next(model.parameters()).device
    ids, lengths = _ids(list(words), charset)
    with _inference(model):
        images = model.decode(memory.to(device), ids.to(device), lengths.to(device))  # [B, 1, 32, 16 L]
    out = to_uint8(images.cpu(), model.output_widths(lengths))
    return [crop_to_ink(im) for im in out] if crop else out


def interpolation_strip(
    model: ScriptViT,
    memory_a: StyleMemory,
    memory_b: StyleMemory,
    word: str,
    alphas: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    charset: Charset | None = None,
) -> list[np.ndarray]:
    """`word` written with the memories interpolated at each alpha, in one batched decode."""
    mems = [interpolate_styles(memory_a, memory_b, float(a)) for a in alphas]
    stacked = StyleMemory(
        torch.cat([m.tokens for m in mems]), torch.cat([m.pad_mask for m in mems]), None
    )  # [len(alphas), N, D]
    return decode_words(model, stacked, [word] * len(alphas), charset)
