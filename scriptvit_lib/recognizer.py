"""Text recognizer (CRNN + CTC): can the word in this image be read?

ScriptViT (arXiv 2511.18307), like HWT and VATr, keeps generated words legible with a
handwriting recognizer trained on real words; its CTC loss on fake words is a generator
loss. The recognizer is a CRNN (Shi et al., 2016) as in HWT: conv layers reduce the 32-px
height to 1 while keeping W/4 columns, each column then predicts a distribution over the
81 classes (blank = 0). HWT uses a linear per-column head; a BiLSTM head is an option.

    image [B, 1, 32, W] -> features [B, 8ch, 1, W/4] -> log-probs [B, W/4, num_classes]

At 16 px per character a word gets 4 columns per character, enough for CTC (it needs at
least one column per character plus one blank between repeated letters).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .charset import Charset
from .config import ScriptViTConfig

STRIDE = 4  # image px per output column


def _conv(cin: int, cout: int, *, bn: bool, kernel=3, padding=1) -> list[nn.Module]:
    layers = [nn.Conv2d(cin, cout, kernel, padding=padding)]
    return layers + ([nn.BatchNorm2d(cout)] if bn else []) + [nn.ReLU(inplace=True)]


NORMS = ("batch", "none")


class Recognizer(nn.Module):
    stride = STRIDE

    def __init__(
        self,
        *,
        num_classes: int = 81,
        ch: int = 64,
        head: str = "linear",
        hidden: int = 256,
        norm: str = "batch",
    ):
        super().__init__()
        assert head in ("linear", "lstm"), f"head must be 'linear' or 'lstm', got {head!r}"
        # 'batch' = HWT's CRNN; 'none' makes every sample independent of the others in its batch
        # (multi-process CPU training, where BatchNorm statistics cannot be synchronised).
        assert norm in NORMS, f"norm must be one of {NORMS}, got {norm!r}"
        bn = norm == "batch"
        c = [ch, 2 * ch, 4 * ch, 4 * ch, 8 * ch, 8 * ch, 8 * ch]  # HWT/CRNN widths for ch = 64
        self.cnn = nn.Sequential(
            *_conv(1, c[0], bn=False), nn.MaxPool2d(2, 2),  # [16, W/2]
            *_conv(c[0], c[1], bn=False), nn.MaxPool2d(2, 2),  # [8, W/4]
            *_conv(c[1], c[2], bn=bn), *_conv(c[2], c[3], bn=False), nn.MaxPool2d((2, 1)),  # [4, W/4]
            *_conv(c[3], c[4], bn=bn), *_conv(c[4], c[5], bn=False), nn.MaxPool2d((2, 1)),  # [2, W/4]
            *_conv(c[5], c[6], bn=bn, kernel=(2, 3), padding=(0, 1)),  # [1, W/4]
        )  # fmt: skip
        self.head_type = head
        if head == "lstm":
            self.rnn = nn.LSTM(c[6], hidden, num_layers=2, bidirectional=True, batch_first=True)
            self.head = nn.Linear(2 * hidden, num_classes)
        else:
            self.rnn = None
            self.head = nn.Linear(c[6], num_classes)

    @classmethod
    def from_config(cls, cfg: ScriptViTConfig) -> Recognizer:
        """Build from a `ScriptViTConfig` (`num_classes`, `rec_ch`, `rec_head`, `rec_hidden`, `rec_norm`)."""
        return cls(
            num_classes=cfg.num_classes,
            ch=cfg.rec_ch,
            head=cfg.rec_head,
            hidden=cfg.rec_hidden,
            norm=cfg.rec_norm,
        )

    def forward(self, images: torch.Tensor, widths: torch.Tensor | None = None) -> torch.Tensor:
        """images [B, 1, 32, W >= 16] in [-1, 1] -> log-probs [B, W//4, num_classes].

        `widths` [B] (px) lets the BiLSTM head ignore columns right of each word.
        """
        assert images.dim() == 4 and images.shape[1:3] == (1, 32), (
            f"expected [B, 1, 32, W] word images, got {tuple(images.shape)}"
        )
        assert images.shape[-1] >= 16, f"recognizer needs width >= 16 px, got {images.shape[-1]}"
        f = self.cnn(images)  # [B, C, 1, W/4]
        x = rearrange(f, "b c 1 t -> b t c")  # [B, T, C]
        if self.rnn is not None:
            if widths is None:
                x = self.rnn(x)[0]
            else:
                lengths = self.output_lengths(widths).clamp(1, x.shape[1]).cpu()
                packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
                x = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])[0]
        return self.head(x).log_softmax(dim=-1)  # [B, T, num_classes]

    @staticmethod
    def output_lengths(widths: torch.Tensor) -> torch.Tensor:
        """Output columns that belong to a word of `widths` px (floor(w / 4))."""
        return widths // STRIDE

    @staticmethod
    def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor, charset: Charset) -> list[str]:
        """Best path: argmax per column, then collapse repeats and drop blanks."""
        best = log_probs.argmax(dim=-1)  # [B, T]
        return [charset.ctc_decode(row[: int(n)].tolist()) for row, n in zip(best, lengths)]
