"""Writer classifier: which training writer wrote this word? (the style loss)

ScriptViT (arXiv 2511.18307), following HWT, adds a writer-classification loss: a
classifier is trained on real words to tell the training writers apart, and the generator
is rewarded when its fake words are classified as the writer whose style images it got.
HWT's classifier (`WDiscriminator`) is its BigGAN discriminator with one output per writer.
Ours shares the discriminator's residual trunk and pools over the word's true width only
(masked mean), so padding never influences the writer decision:

    image [B, 1, 32, W] -> features [B, 8ch, 4, W/8] -> masked mean -> [B, 8ch] -> logits [B, writers]
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .config import ScriptViTConfig
from .discriminator import STRIDE, conv_trunk, trunk_maps, width_mask


class WriterClassifier(nn.Module):
    def __init__(self, *, num_writers: int, ch: int = 64, spectral: bool = True):
        super().__init__()
        # paper silent: chose HWT's design (BigGAN D trunk + spectral norm, one logit per writer)
        self.num_writers = num_writers
        self.trunk = conv_trunk(ch, spectral=spectral)
        self.head = nn.Linear(8 * ch, num_writers)

    @classmethod
    def from_config(cls, cfg: ScriptViTConfig) -> WriterClassifier:
        """Build from a `ScriptViTConfig` (uses `num_writers`, `wcls_ch`)."""
        return cls(num_writers=cfg.num_writers, ch=cfg.wcls_ch)

    def forward(self, images: torch.Tensor, widths: torch.Tensor | None = None) -> torch.Tensor:
        """images [B, 1, 32, W] in [-1, 1], widths [B] px or None -> logits [B, num_writers]."""
        assert images.dim() == 4 and images.shape[1:3] == (1, 32), (
            f"expected [B, 1, 32, W] word images, got {tuple(images.shape)}"
        )
        return self.head(self.embed(images, widths))

    def embed(self, images: torch.Tensor, widths: torch.Tensor | None = None) -> torch.Tensor:
        """[B, 1, 32, W] -> [B, 8ch]: the features the writer decision is made from (masked mean
        over the word's columns). The style-contrastive loss compares words in this space."""
        return self.pool(self.trunk(images), widths)

    @staticmethod
    def columns(trunk_out: torch.Tensor) -> torch.Tensor:
        """The trunk's output [B, 8ch, 4, W/8] -> features per 8-px column [B, 8ch, W/8] (what
        `pool` averages; the style-matching discriminator reads them column by column)."""
        return F.relu(trunk_out).mean(dim=2)

    def pool(self, trunk_out: torch.Tensor, widths: torch.Tensor | None = None) -> torch.Tensor:
        """The trunk's output [B, 8ch, 4, W/8] (or `feature_maps(...)[-1]`) -> embedding [B, 8ch]."""
        h = self.columns(trunk_out)  # [B, 8ch, W/8]
        if widths is None:
            return h.mean(dim=2)
        m = width_mask(widths.to(h.device), h.shape[-1], STRIDE).float()[:, None, :]  # [B, 1, W/8]
        return (h * m).sum(dim=2) / m.sum(dim=2).clamp_min(1.0)  # [B, 8ch]

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The output of every trunk block: [B, ch, 16, W/2], [B, 2ch, 8, W/4], [B, 4ch, 4, W/8],
        [B, 8ch, 4, W/8] (the feature-matching loss compares a fake and its real target here)."""
        return trunk_maps(self.trunk, images)
