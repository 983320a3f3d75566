"""CNN style encoder: the HWT / VATr baseline that ScriptViT replaces with a ViT.

HWT (Bhunia et al., ICCV 2021) and VATr (Pippi et al., CVPR 2023) encode each style word
with a ResNet-18 trunk (first conv changed to one input channel, classifier removed), flatten
the final feature map into tokens and run a Transformer encoder over them (HWT: 3 layers).
Each CNN feature sees only a local receptive field of one word; global context comes only
from the encoder on top. ScriptViT's claim (arXiv 2511.18307) is that attention over patches
from the start captures style better - with this module the comparison is one config switch
(`style_encoder="cnn"`), because it returns the same `StyleMemory(tokens, pad_mask)`.

Weights are randomly initialised (`weights=None`): nothing is ever downloaded.
Tokens: ResNet-18 downsamples by 32, so a 224x224 canvas gives 7x7 = 49 tokens per image and
a 32x128 canvas 1x4. A token is masked when its column starts right of the word's width.
"""

from __future__ import annotations

import torch
import torchvision
from einops import rearrange
from timm.models.vision_transformer import Block
from torch import nn

from .style_encoder import StyleMemory, keep_at_least_one

STRIDE = 32  # total downsampling of ResNet-18 up to layer4
FEATURES = 512  # channels of ResNet-18 layer4


def resnet18_trunk(in_channels: int = 1) -> nn.Sequential:
    """torchvision ResNet-18 (random init) without avgpool/fc, first conv for `in_channels`."""
    net = torchvision.models.resnet18(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return nn.Sequential(*list(net.children())[:-2])  # conv1 .. layer4


class CNNStyleEncoder(nn.Module):
    def __init__(
        self,
        *,
        image_size: tuple[int, int],
        out_dim: int,
        enc_layers: int = 0,
        heads: int = 8,
        dropout: float = 0.0,
        max_images: int = 15,
    ):
        super().__init__()
        h, w = image_size
        assert h % STRIDE == 0 and w % STRIDE == 0, f"CNN encoder needs a canvas divisible by {STRIDE}"
        self.image_size = (h, w)
        self.grid = (h // STRIDE, w // STRIDE)
        self.trunk = resnet18_trunk(1)
        self.proj = nn.Linear(FEATURES, out_dim)
        self.pos = nn.Parameter(torch.zeros(self.grid[0] * self.grid[1], out_dim))  # [n, D]
        self.image_emb = nn.Parameter(torch.zeros(max_images, out_dim))  # [Kmax, D]
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.image_emb, std=0.02)
        self.blocks = nn.ModuleList(
            Block(out_dim, heads, qkv_bias=True, proj_drop=dropout, attn_drop=dropout)
            for _ in range(enc_layers)
        )
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, style: torch.Tensor, style_widths: torch.Tensor | None = None) -> StyleMemory:
        """style [B, K, 1, H, W] in [-1, 1]; style_widths [B, K] px or None."""
        assert style.dim() == 5, f"expected [B, K, 1, H, W], got {tuple(style.shape)}"
        b, k = style.shape[:2]
        assert tuple(style.shape[-2:]) == self.image_size, (
            f"style images are {tuple(style.shape[-2:])}, encoder expects {self.image_size}"
        )
        assert k <= self.image_emb.shape[0], f"k = {k} style images, at most {self.image_emb.shape[0]}"
        f = self.trunk(rearrange(style, "b k c h w -> (b k) c h w"))  # [B*K, 512, h, w]
        f = rearrange(f, "(b k) c h w -> b k (h w) c", b=b)  # [B, K, n, 512]
        x = self.proj(f) + self.pos + self.image_emb[:k, None, :]  # [B, K, n, D]
        x = rearrange(x, "b k n d -> b (k n) d")
        if style_widths is None:
            pad = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        else:
            gh, gw = self.grid
            x0 = torch.arange(gw, device=x.device).repeat(gh) * STRIDE  # [n] left px of a token
            pad = x0 >= style_widths[..., None].to(x.device)  # [B, K, n]
            pad = keep_at_least_one(rearrange(pad, "b k n -> b (k n)"))
        attn_mask = (~pad)[:, None, None, :] if pad.any() else None
        for blk in self.blocks:
            x = blk(x, attn_mask=attn_mask)
        return StyleMemory(tokens=self.norm(x), pad_mask=pad)
