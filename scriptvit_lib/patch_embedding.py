"""Patch embedding: k style word images -> one sequence of tokens.

ScriptViT (arXiv 2511.18307, Sec. 3) pads each of the k reference words of a writer to a
square canvas (224x224), cuts it into 16x16 patches and embeds every patch linearly, as in
ViT (Dosovitskiy et al., 2021). We add three things to each token:

* a learned 2-D position embedding (one vector per grid cell, shared by the k images), so the
  encoder knows where on the canvas a stroke is;
* a learned *image* embedding (which of the k images the patch comes from), so attention can
  tell "the same place in another word" apart from "this word";
* a `blank` flag per patch: True when the patch holds no ink (its darkest pixel is lighter
  than `blank_threshold`, paper being +1 and ink -1) or lies right of the word's width.
  Most of a 224x224 canvas around a 32-px word is blank; the style encoder can mask or drop
  those tokens.

The projection is `einops` + `nn.Linear`: cut into patches, flatten each, multiply. A
`Conv2d(kernel=stride=patch)` computes the same thing; `as_conv()` builds that conv from our
weights so a notebook (and the tests) can check the two agree.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


class PatchEmbedding(nn.Module):
    def __init__(
        self,
        *,
        image_size: tuple[int, int],
        patch_size: int,
        dim: int,
        max_images: int = 15,
        in_channels: int = 1,
        blank_threshold: float = 0.75,
    ):
        super().__init__()
        h, w = image_size
        assert h % patch_size == 0 and w % patch_size == 0, (
            f"image size {image_size} must be divisible by patch size {patch_size}"
        )
        self.image_size = (h, w)
        self.patch_size = patch_size
        self.grid = (h // patch_size, w // patch_size)  # (gh, gw)
        self.in_channels = in_channels
        self.blank_threshold = blank_threshold
        self.proj = nn.Linear(patch_size * patch_size * in_channels, dim)
        # paper silent on positions: chose a learned 2-D grid table (as ViT) shared by the k
        # canvases, plus a learned per-image vector so tokens of different words stay apart.
        self.pos = nn.Parameter(torch.zeros(self.grid[0], self.grid[1], dim))  # [gh, gw, D]
        self.image_emb = nn.Parameter(torch.zeros(max_images, dim))  # [Kmax, D]
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.image_emb, std=0.02)

    @property
    def num_patches(self) -> int:
        """Patches per image (gh * gw)."""
        return self.grid[0] * self.grid[1]

    def forward(
        self, images: torch.Tensor, widths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B, K, C, H, W] in [-1, 1] (+1 = paper), widths [B, K] px or None.

        Returns tokens [B, K*N, D] (image-major: all N patches of image 0, then image 1, ...)
        and blank [B, K*N] (True = no ink in this patch).
        """
        assert images.dim() == 5, f"expected [B, K, C, H, W], got {tuple(images.shape)}"
        b, k, c, h, w = images.shape
        assert (h, w) == self.image_size, f"style images are {h}x{w}, encoder expects {self.image_size}"
        assert c == self.in_channels, f"expected {self.in_channels} channel(s), got {c}"
        assert k <= self.image_emb.shape[0], f"k = {k} style images, at most {self.image_emb.shape[0]}"
        p = self.patch_size
        patches = rearrange(images, "b k c (h p1) (w p2) -> b k (h w) (p1 p2 c)", p1=p, p2=p)
        x = self.proj(patches)  # [B, K, N, D]
        x = x + rearrange(self.pos, "h w d -> (h w) d") + self.image_emb[:k, None, :]
        blank = self.blank_mask(patches, widths)  # [B, K, N]
        return rearrange(x, "b k n d -> b (k n) d"), rearrange(blank, "b k n -> b (k n)")

    def blank_mask(self, patches: torch.Tensor, widths: torch.Tensor | None) -> torch.Tensor:
        """patches [B, K, N, P] -> [B, K, N] bool: no ink, or entirely right of the word."""
        blank = patches.amin(dim=-1) > self.blank_threshold
        if widths is not None:
            gh, gw = self.grid
            x0 = torch.arange(gw, device=patches.device).repeat(gh) * self.patch_size  # [N] left px
            blank = blank | (x0 >= widths[..., None].to(patches.device))  # [B, K, N]
        return blank

    def as_conv(self) -> nn.Conv2d:
        """The strided Conv2d that computes exactly `self.proj` on every patch."""
        p, c = self.patch_size, self.in_channels
        conv = nn.Conv2d(c, self.proj.out_features, kernel_size=p, stride=p)
        with torch.no_grad():
            # Linear weight [D, (p1 p2 c)] -> conv weight [D, c, p1, p2]
            conv.weight.copy_(rearrange(self.proj.weight, "d (p1 p2 c) -> d c p1 p2", p1=p, p2=p))
            conv.bias.copy_(self.proj.bias)
        return conv
