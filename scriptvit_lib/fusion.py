"""Fusion decoder: content queries cross-attend to the style memory.

ScriptViT (arXiv 2511.18307, Sec. 3) fuses content and style with a 3-layer Transformer
decoder with 8 heads, as HWT does. In every layer, the character queries

1. self-attend (each character sees its neighbours in the word - ligatures, spacing),
2. cross-attend to the style memory (each character gathers the style tokens that matter
   for it - the paper's attention maps show characters attending to similar glyphs),
3. pass a feed-forward network.

We use pre-norm layers with a final LayerNorm (HWT uses `normalize_before=True`). Both
attentions are `nn.MultiheadAttention`; padding is handled by key-padding masks: text
positions beyond a word's length are never attended to, nor are masked style tokens (a
masked key gets weight exactly 0, since its score is -inf before the softmax).

`return_attention=True` also returns the cross-attention weights
[B, layers, heads, L, N]: for every layer, head and character, a distribution over the N
style tokens (sums to 1). Asking for them does not change a single bit of the output: the
cross-attention always runs PyTorch's explicit-softmax path (`need_weights=True`; with
False it may pick a fused kernel whose rounding differs), the weights are just dropped.
"""

from __future__ import annotations

import torch
from torch import nn


class DecoderLayer(nn.Module):
    def __init__(self, *, dim: int, heads: int, ff: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(
            nn.Linear(dim, ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff, dim)
        )  # paper silent on the activation: chose HWT's ReLU
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        *,
        text_pad: torch.Tensor,
        memory_pad: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, L, D], memory [B or 1, N, D], text_pad [B, L], memory_pad [B or 1, N] (True =
        ignore); a memory of batch 1 is every word's."""
        h = self.norm1(x)
        x = x + self.drop(self.self_attn(h, h, h, key_padding_mask=text_pad, need_weights=False)[0])
        b, length, dim = x.shape
        shared = memory.shape[0] == 1 and b > 1  # one writer's memory for every word
        q = self.norm2(x)
        if shared:  # queries never see each other here: all B*L of them read the memory at once,
            q = q.reshape(1, b * length, dim)  # its keys and values projected once, not B times
        h, attn = self.cross_attn(
            q,
            memory,
            memory,
            key_padding_mask=memory_pad,
            need_weights=True,  # same kernel whether or not the caller looks (see module doc)
            average_attn_weights=False,
        )  # attn [B, heads, L, N]
        if shared:
            h = h.reshape(b, length, dim)
            attn = attn.reshape(attn.shape[1], b, length, -1).transpose(0, 1)
        x = x + self.drop(h)
        x = x + self.drop(self.ff(self.norm3(x)))
        return x, attn


class FusionDecoder(nn.Module):
    def __init__(self, *, dim: int, layers: int, heads: int, ff: int, dropout: float = 0.0):
        super().__init__()
        # paper silent: the queries themselves are the decoder input (HWT/DETR instead start
        # from zeros and add the queries as positions in every layer); pre-norm as HWT.
        self.layers = nn.ModuleList(
            DecoderLayer(dim=dim, heads=heads, ff=ff, dropout=dropout) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(
        self,
        queries: torch.Tensor,
        memory: torch.Tensor,
        *,
        text_pad: torch.Tensor | None = None,
        memory_pad: torch.Tensor | None = None,
        return_attention: bool = False,
    ):
        """queries [B, L, D], memory [B or 1, N, D] -> [B, L, D] (+ attention [B, layers, heads,
        L, N]); a memory of batch 1 (one writer) is read by every query."""
        assert memory.shape[0] in (1, queries.shape[0]), "queries and memory have different batch sizes"
        assert queries.shape[-1] == memory.shape[-1], (
            f"query dim {queries.shape[-1]} != memory dim {memory.shape[-1]}"
        )
        if memory_pad is not None:
            assert not memory_pad.all(dim=1).any(), "a sample has every style token masked"
        if text_pad is not None:
            assert not text_pad.all(dim=1).any(), "a sample has no characters (text length 0)"
        x, maps = queries, []
        for layer in self.layers:
            x, attn = layer(x, memory, text_pad=text_pad, memory_pad=memory_pad)
            maps.append(attn)
        x = self.norm(x)
        if return_attention:
            return x, torch.stack(maps, dim=1)  # [B, layers, heads, L, N]
        return x
