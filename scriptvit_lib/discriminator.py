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


def trunk_maps(trunk: nn.Sequential, images: torch.Tensor) -> list[torch.Tensor]:
    """The output of every block of a `conv_trunk`: [B, ch, 16, W/2], [B, 2ch, 8, W/4],
    [B, 4ch, 4, W/8], [B, 8ch, 4, W/8] (what the feature-matching loss compares)."""
    maps, h = [], images
    for block in trunk:
        h = block(h)
        maps.append(h)
    return maps


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

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The output of every trunk block (`trunk_maps`): features of realism, where the writer
        classifier's are features of identity (test-time adaptation can match either)."""
        return trunk_maps(self.trunk, images)

    def output_widths(self, widths: torch.Tensor) -> torch.Tensor:
        """Columns of the logit map that start inside a word of `widths` px: ceil(w / 8)."""
        return (widths + STRIDE - 1) // STRIDE

    def width_mask(self, widths: torch.Tensor, num_cols: int) -> torch.Tensor:
        return width_mask(widths, num_cols, STRIDE)


class StyleMatchDiscriminator(nn.Module):
    """Library option (`TrainConfig.w_match`): was this word written by the writer of these k
    style words? A matching-aware discriminator (Reed et al., 2016, GAN-CLS) whose condition is
    not a writer id but the style words themselves, so it speaks for writers nobody trained on.
    It is a head over a feature network's columns - in training, the writer classifier W's
    trunk (trained on real words to tell writers apart), so it starts from features that already
    separate hands; a trunk of its own from random weights barely learned in our tests (every
    word maps to nearly the same features at first, and the matching signal is second-order):

        h_p = column p of W's trunk(word)         s = mean over the k style words of W.embed
        logit_p = head([h_p, s, h_p * s, |h_p - s|])          (1x1 convs; one logit per 8-px column)

    Trained with hinge losses (`losses.match_d_hinge_loss`) to score a real word with its own
    writer's style words above +1, and both a fake with the style words it was written from and
    a real word with *another* writer's style words below -1 - the second negative is what makes
    it judge the hand rather than realism (which `Discriminator` already does). Not in the paper,
    which has an unconditional D and a writer classifier over training writers only."""

    stride = STRIDE

    def __init__(self, dim: int, *, hidden: int | None = None, spectral: bool = True):
        super().__init__()
        hidden = hidden or dim
        self.head = nn.Sequential(
            _sn(nn.Conv1d(4 * dim, hidden, 1), spectral), nn.ReLU(), _sn(nn.Conv1d(hidden, 1, 1), spectral)
        )

    @classmethod
    def from_config(cls, cfg: ScriptViTConfig) -> StyleMatchDiscriminator:
        """Build for the writer classifier's features (8 x `wcls_ch` channels)."""
        return cls(8 * cfg.wcls_ch)

    def score(self, columns: torch.Tensor, style_vec: torch.Tensor) -> torch.Tensor:
        """Word features per column [B, C, P] and the style words' features [B, C] -> logits
        [B, P] (one feature pass can be scored against several style vectors)."""
        s = style_vec[:, :, None].expand_as(columns)
        return self.head(torch.cat([columns, s, columns * s, (columns - s).abs()], dim=1)).squeeze(1)

    forward = score

    def width_mask(self, widths: torch.Tensor, num_cols: int) -> torch.Tensor:
        return width_mask(widths, num_cols, STRIDE)
