"""Discriminator: is this 32-px word image real or generated? One verdict per 8-px column.

ScriptViT (arXiv 2511.18307) trains with a hinge adversarial loss, like HWT and VATr, whose
discriminator is BigGAN's (Brock et al., 2019): pre-activation residual blocks with
spectral normalisation and 2x2 average-pool downsampling, then global sum pooling and a
linear layer. Word images have different widths, so instead of one logit per image we keep
the width axis: after three downsamplings (32 -> 4 px high, W -> W/8) we sum over height
only and apply a 1x1 conv, giving a logit per column ("patch") of 8 px:

    image [B, 1, 32, W] -> features [B, 8ch, 4, W/8] -> logits [B, W/8]

so the hinge loss can be averaged over the columns inside each word's true width
(`width_mask`) and padding never counts as "real" or "fake".
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from .config import ScriptViTConfig

STRIDE = 8  # image px per logit column


def _sn(module: nn.Module, on: bool) -> nn.Module:
    return spectral_norm(module) if on else module


def width_mask(widths: torch.Tensor, num_cols: int, stride: int = STRIDE) -> torch.Tensor:
    """[B] true widths in px -> [B, num_cols] bool, True for columns that start inside the word."""
    cols = torch.arange(num_cols, device=widths.device)
    return cols[None, :] * stride < widths[:, None]


class DBlock(nn.Module):
    """BigGAN discriminator block: [ReLU] conv3 ReLU conv3 [avgpool2] + (conv1x1 [avgpool2]) shortcut."""

    def __init__(self, cin: int, cout: int, *, downsample: bool, preactivation: bool, spectral: bool):
        super().__init__()
        self.downsample, self.preactivation = downsample, preactivation
        self.conv1 = _sn(nn.Conv2d(cin, cout, 3, padding=1), spectral)
        self.conv2 = _sn(nn.Conv2d(cout, cout, 3, padding=1), spectral)
        self.shortcut = _sn(nn.Conv2d(cin, cout, 1), spectral) if (cin != cout or downsample) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        s = self.shortcut(x) if self.shortcut is not None else x
        if self.downsample:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return h + s


def conv_trunk(ch: int, *, spectral: bool) -> nn.Sequential:
    """[B, 1, 32, W] -> [B, 8ch, 4, W/8]: four blocks (x1, x2, x4, x8 ch), three downsamplings."""
    chans = [1, ch, 2 * ch, 4 * ch, 8 * ch]
    return nn.Sequential(
        *(
            DBlock(chans[i], chans[i + 1], downsample=i < 3, preactivation=i > 0, spectral=spectral)
            for i in range(4)
        )
    )


class Discriminator(nn.Module):
    stride = STRIDE

    def __init__(self, *, ch: int = 64, spectral: bool = True):
        super().__init__()
        # paper silent on D: chose HWT's BigGAN D (spectral norm, hinge), kept per-column
        self.trunk = conv_trunk(ch, spectral=spectral)
        self.head = _sn(nn.Conv1d(8 * ch, 1, 1), spectral)

    @classmethod
    def from_config(cls, cfg: ScriptViTConfig) -> Discriminator:
        """Build from a `ScriptViTConfig` (uses `d_ch`)."""
        return cls(ch=cfg.d_ch)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 1, 32, W] in [-1, 1] -> logits [B, W // 8] (one per 8-px column)."""
        assert images.dim() == 4 and images.shape[1:3] == (1, 32), (
            f"expected [B, 1, 32, W] word images, got {tuple(images.shape)}"
        )
        assert images.shape[-1] >= STRIDE, f"image width {images.shape[-1]} < {STRIDE} px"
        h = self.trunk(images)  # [B, 8ch, 4, W/8]
        h = F.relu(h).sum(dim=2)  # [B, 8ch, W/8]: sum-pool over height only (SN-GAN style)
        return self.head(h).squeeze(1)  # [B, W/8]

    def output_widths(self, widths: torch.Tensor) -> torch.Tensor:
        """Columns of the logit map that start inside a word of `widths` px: ceil(w / 8)."""
        return (widths + STRIDE - 1) // STRIDE

    def width_mask(self, widths: torch.Tensor, num_cols: int) -> torch.Tensor:
        return width_mask(widths, num_cols, STRIDE)
