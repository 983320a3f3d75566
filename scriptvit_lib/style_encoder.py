"""ViT style encoder: self-attention over the patches of all k style images at once.

The idea of ScriptViT (arXiv 2511.18307, Sec. 3.1): instead of a CNN that sees one local
window at a time (HWT, VATr), a Vision Transformer looks at every patch of every reference
word together, so a stroke in word 1 can attend to a similar stroke in word 4 and the
encoder can gather *global* style cues (slant, stroke width, spacing). The output - one
token per patch, from all k images - is the *style memory* the decoder's content queries
cross-attend to.

The blocks are timm's ViT `Block` (pre-norm attention + MLP). What to do with blank patches
(no ink; most of a padded canvas) is `blank_patches`:

* ``"keep"``: every patch is a token and attends everywhere (the paper as written).
* ``"mask"``: blank tokens stay in the sequence but nobody attends to them (an `attn_mask`
  passed to timm's `Block`, which forwards it to `scaled_dot_product_attention`) and they
  come back in `pad_mask` so the decoder ignores them too.
* ``"drop"``: blank tokens are removed before the first block (each sample padded to the
  largest ink-patch count in the batch) - same result as "mask" for the tokens that remain,
  far fewer FLOPs.

Each sample always keeps at least one token (its first patch), so attention never sees an
all-masked row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from timm.models.vision_transformer import Block
from torch import nn

from .patch_embedding import PatchEmbedding


@dataclass
class StyleMemory:
    """What a style encoder returns and the decoder reads; cacheable per writer."""

    tokens: torch.Tensor  # [B, N, D]
    pad_mask: torch.Tensor  # [B, N] bool, True = ignore this token
    positions: torch.Tensor | None = None
    """[B, N] long: which patch of the K canvases (index into K * patches-per-canvas, image-major)
    each token came from, so attention can be drawn back onto the images (also after `drop`).
    None for encoders whose tokens are not patches (the CNN baseline)."""

    def to(self, device) -> StyleMemory:
        pos = None if self.positions is None else self.positions.to(device)
        return StyleMemory(self.tokens.to(device), self.pad_mask.to(device), pos)

    def detach(self) -> StyleMemory:
        return StyleMemory(self.tokens.detach(), self.pad_mask, self.positions)

    def pooled(self) -> torch.Tensor:
        """Mean of the unmasked tokens: one [B, D] vector per style memory."""
        keep = (~self.pad_mask).unsqueeze(-1).to(self.tokens.dtype)
        return (self.tokens * keep).sum(1) / keep.sum(1).clamp_min(1.0)


def keep_at_least_one(pad_mask: torch.Tensor) -> torch.Tensor:
    """Unmask token 0 of every sample whose tokens are all masked."""
    all_masked = pad_mask.all(dim=1)  # [B]
    if all_masked.any():
        pad_mask = pad_mask.clone()
        pad_mask[all_masked, 0] = False
    return pad_mask


def drop_tokens(
    tokens: torch.Tensor, pad_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gather the unmasked tokens to the front, trimmed to the largest count in the batch.

    tokens [B, N, D], pad_mask [B, N] -> tokens [B, M, D], pad_mask [B, M], kept indices [B, M]
    (M = max kept). Order of the kept tokens is preserved (a stable sort puts kept ones first).
    """
    keep = ~pad_mask
    counts = keep.sum(dim=1)  # [B]
    m = int(counts.max())
    order = torch.sort(pad_mask.to(torch.uint8), dim=1, stable=True).indices[:, :m]  # [B, M]
    tokens = torch.gather(tokens, 1, order[..., None].expand(-1, -1, tokens.shape[-1]))
    new_pad = torch.arange(m, device=tokens.device)[None, :] >= counts[:, None]  # [B, M]
    return tokens, new_pad, order


class ViTStyleEncoder(nn.Module):
    def __init__(
        self,
        *,
        image_size: tuple[int, int],
        patch_size: int,
        dim: int,
        depth: int,
        heads: int,
        out_dim: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        max_images: int = 15,
        blank_patches: str = "keep",
        blank_threshold: float = 0.75,
    ):
        super().__init__()
        assert blank_patches in ("keep", "mask", "drop"), f"blank_patches={blank_patches!r}"
        self.blank_patches = blank_patches
        self.embed = PatchEmbedding(
            image_size=image_size,
            patch_size=patch_size,
            dim=dim,
            max_images=max_images,
            blank_threshold=blank_threshold,
        )
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio=mlp_ratio, qkv_bias=True, proj_drop=dropout, attn_drop=dropout)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        # paper silent: no CLS token (the decoder reads every patch token) and a linear map
        # from the ViT width to the decoder width when they differ (384 -> 512 for ViT-S).
        self.out = nn.Linear(dim, out_dim) if dim != out_dim else nn.Identity()

    def forward(self, style: torch.Tensor, style_widths: torch.Tensor | None = None) -> StyleMemory:
        """style [B, K, 1, H, W] in [-1, 1] (+1 paper); style_widths [B, K] px or None."""
        x, blank = self.embed(style, style_widths)  # [B, K*N, D], [B, K*N]
        if self.blank_patches == "keep":
            pad = torch.zeros_like(blank)
        else:
            pad = keep_at_least_one(blank)
        positions = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)  # [B, K*N]
        if self.blank_patches == "drop":
            x, pad, positions = drop_tokens(x, pad)  # [B, M, D], M <= K*N
        # timm / SDPA boolean mask: True = may attend. Shape [B, 1, 1, N] broadcasts over
        # heads and queries, so it masks *keys* only.
        attn_mask = (~pad)[:, None, None, :] if pad.any() else None
        for blk in self.blocks:
            x = blk(x, attn_mask=attn_mask)
        tokens = self.out(self.norm(x))  # [B, N', out_dim]
        return StyleMemory(tokens=tokens, pad_mask=pad, positions=positions)
