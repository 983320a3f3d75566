"""Content queries: the target text as one d-dim query vector per character.

In ScriptViT (arXiv 2511.18307) as in HWT, the text to write is turned into a sequence of
learned character embeddings (512-d in the paper). Each one becomes a *query* of the fusion
decoder, which asks the style memory "how does this writer draw this character, here?".
Because generation is non-autoregressive, the queries must also know their order in the
word, so a fixed sinusoidal position code (Vaswani et al., 2017) is added:

    q_i = E[c_i] + PE(i),   PE(i)_{2j} = sin(i / 10000^{2j/d}),  PE(i)_{2j+1} = cos(...)

Id 0 is padding (`charset.py`): its embedding is fixed at zero and gets no gradient.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_positions(length: int, dim: int, device=None) -> torch.Tensor:
    """[length, dim] sine/cosine position codes (dim even)."""
    assert dim % 2 == 0, f"sinusoidal positions need an even dim, got {dim}"
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]  # [L, 1]
    freq = torch.exp(torch.arange(0, dim, 2, device=device) * (-math.log(10000.0) / dim))  # [D/2]
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


class ContentEncoder(nn.Module):
    def __init__(self, *, num_classes: int, dim: int):
        super().__init__()
        self.dim = dim
        # paper silent on the position code: chose sinusoidal so any word length works
        # (the paper tests long words; a learned table would cap the length).
        self.embed = nn.Embedding(num_classes, dim, padding_idx=0)

    def forward(self, text_ids: torch.Tensor) -> torch.Tensor:
        """text_ids [B, L] long (0 = padding) -> queries [B, L, D]."""
        assert text_ids.dim() == 2, f"expected [B, L] ids, got {tuple(text_ids.shape)}"
        assert int(text_ids.min()) >= 0 and int(text_ids.max()) < self.embed.num_embeddings, (
            f"character ids must be in [0, {self.embed.num_embeddings - 1}]"
        )
        x = self.embed(text_ids)  # [B, L, D]
        return x + sinusoidal_positions(text_ids.shape[1], self.dim, device=x.device)
