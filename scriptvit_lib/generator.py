"""`ScriptViT`: the generator - style encoder + content queries + fusion decoder + synthesis.

The full pipeline of ScriptViT (arXiv 2511.18307, Fig. 2):

    style [B, K, 1, Hs, Ws] --style encoder (ViT, or the CNN baseline)--> memory [B, N, D]
    text_ids [B, L] --content encoder--> queries [B, L, D]
    queries x memory --fusion decoder (3 layers, 8 heads)--> [B, L, D]
    --synthesis--> image [B, 1, 32, char_width * L]   (non-autoregressive, one pass)

`encode_style` and `decode` are separate so a writer's style memory can be computed once
and reused for many words (a memory of batch 1 is broadcast over any number of texts).
`save_pretrained` / `from_pretrained` keep a model as `model.safetensors` + `config.json`;
loading never unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .cnn_style_encoder import CNNStyleEncoder
from .config import ScriptViTConfig
from .content_encoder import ContentEncoder
from .fusion import FusionDecoder
from .style_encoder import StyleMemory, ViTStyleEncoder
from .synthesis import MAX_CHAR_WIDTH, MIN_CHAR_WIDTH, SynthesisNetwork, WidthHead, resample_widths

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def build_style_encoder(cfg: ScriptViTConfig) -> nn.Module:
    """The ViT encoder or the CNN baseline, chosen by `cfg.style_encoder`."""
    if cfg.style_encoder == "vit":
        return ViTStyleEncoder(
            image_size=cfg.style_size,
            patch_size=cfg.patch_size,
            dim=cfg.vit_dim,
            depth=cfg.vit_depth,
            heads=cfg.vit_heads,
            out_dim=cfg.d_model,
            mlp_ratio=cfg.vit_mlp_ratio,
            dropout=cfg.dropout,
            max_images=cfg.max_style_images,
            blank_patches=cfg.blank_patches,
            blank_threshold=cfg.blank_threshold,
        )
    return CNNStyleEncoder(
        image_size=cfg.style_size,
        out_dim=cfg.d_model,
        enc_layers=cfg.cnn_enc_layers,
        heads=cfg.dec_heads,
        dropout=cfg.dropout,
        max_images=cfg.max_style_images,
    )


class ScriptViT(nn.Module):
    def __init__(self, config: ScriptViTConfig | None = None):
        super().__init__()
        cfg = config if config is not None else ScriptViTConfig()
        self.config = cfg
        self.style_encoder = build_style_encoder(cfg)
        self.content_encoder = ContentEncoder(num_classes=cfg.num_classes, dim=cfg.d_model)
        self.fusion = FusionDecoder(
            dim=cfg.d_model, layers=cfg.dec_layers, heads=cfg.dec_heads, ff=cfg.dec_ff, dropout=cfg.dropout
        )
        self.synthesis = SynthesisNetwork(
            in_dim=cfg.d_model,
            channels=cfg.syn_channels,
            res_blocks=cfg.syn_res_blocks,
            char_width=cfg.char_width,
            style_dim=cfg.d_model if cfg.style_modulation == "film" else 0,
            min_channels=cfg.syn_min_channels,
        )
        self.width_head = WidthHead(cfg.d_model) if cfg.width_mode == "predicted" else None
        units = torch.tensor(cfg.char_widths) if cfg.char_widths is not None else torch.empty(0)
        self.register_buffer("char_units", units.float(), persistent=False)  # in config.json, not weights

    def encode_style(self, style: torch.Tensor, style_widths: torch.Tensor | None = None) -> StyleMemory:
        """style [B, K, 1, Hs, Ws] in [-1, 1] (+1 paper), style_widths [B, K] -> StyleMemory."""
        return self.style_encoder(style, style_widths)

    def decode(
        self,
        memory: StyleMemory,
        text_ids: torch.Tensor,
        text_lengths: torch.Tensor | None = None,
        return_attention: bool = False,
    ):
        """memory (batch B or 1), text_ids [B, L] -> images [B, 1, 32, char_width*L].

        text_lengths [B] defaults to the count of non-zero ids. With `return_attention`,
        also returns cross-attention weights [B, layers, heads, L, N].
        """
        b, length = text_ids.shape
        if text_lengths is None:
            text_lengths = (text_ids != 0).sum(dim=1)
        text_lengths = text_lengths.to(text_ids.device)
        assert text_lengths.shape == (b,), f"text_lengths {tuple(text_lengths.shape)} != ({b},)"
        assert int(text_lengths.min()) >= 1, "every text needs at least one character"
        assert int(text_lengths.max()) <= length, "a text length exceeds the width of text_ids"
        tokens, pad = memory.tokens, memory.pad_mask  # batch 1: one writer's memory for every word
        assert tokens.shape[0] in (1, b), f"memory batch {tokens.shape[0]} != text batch {b}"
        text_pad = torch.arange(length, device=text_ids.device)[None, :] >= text_lengths[:, None]  # [B, L]
        queries = self.content_encoder(text_ids)  # [B, L, D]
        out = self.fusion(
            queries, tokens, text_pad=text_pad, memory_pad=pad, return_attention=return_attention
        )
        h, attn = out if return_attention else (out, None)
        style = memory.pooled() if self.synthesis.film is not None else None  # [B or 1, D]
        images = self.synthesis(h, text_lengths, style)  # [B, 1, 32, char_width*L]
        return (images, attn) if return_attention else images

    def forward(
        self,
        style: torch.Tensor,
        text_ids: torch.Tensor,
        text_lengths: torch.Tensor | None = None,
        style_widths: torch.Tensor | None = None,
        return_attention: bool = False,
    ):
        """Style images + text -> word images (see `decode`)."""
        memory = self.encode_style(style, style_widths)
        return self.decode(memory, text_ids, text_lengths, return_attention=return_attention)

    def output_widths(self, text_lengths: torch.Tensor) -> torch.Tensor:
        """True width in px of each word as `decode` makes it: char_width x text length."""
        return text_lengths * self.config.char_width

    def width_units(self, text_ids: torch.Tensor, text_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """How many units of the writer's px per character each word is wide, [B] float: its
        length, or with `config.char_widths` the sum of its characters' relative widths."""
        if text_lengths is None:
            text_lengths = (text_ids != 0).sum(dim=1)
        text_lengths = text_lengths.to(text_ids.device)
        if self.char_units.numel() == 0:
            return text_lengths.float()
        inside = torch.arange(text_ids.shape[1], device=text_ids.device)[None, :] < text_lengths[:, None]
        return (self.char_units[text_ids] * inside).sum(dim=1)

    def log_char_width(self, memory: StyleMemory) -> torch.Tensor:
        """`width_mode="predicted"`: log px per character (per `width_units` unit) of the
        writer, [B] (memory batch)."""
        if self.width_head is None:
            raise ValueError("this model writes a fixed char_width (width_mode='fixed')")
        return self.width_head(memory.pooled())

    def write(
        self,
        memory: StyleMemory,
        text_ids: torch.Tensor,
        text_lengths: torch.Tensor | None = None,
        widths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Words as the model finally writes them -> (images [B, 1, 32, W], widths [B] px).

        width_mode 'fixed': `decode` as it is (char_width px per character). 'predicted': each
        word resampled to `widths` if given (training: the real words' widths), else to the
        predicted px per character x `width_units` (the text length, or the sum of its
        characters' widths when the config has `char_widths`).
        """
        if text_lengths is None:
            text_lengths = (text_ids != 0).sum(dim=1)
        text_lengths = text_lengths.to(text_ids.device)
        raw = self.decode(memory, text_ids, text_lengths)
        if self.width_head is None:
            return raw, self.output_widths(text_lengths)
        if widths is None:
            per_char = self.log_char_width(memory).exp().clamp(MIN_CHAR_WIDTH, MAX_CHAR_WIDTH)
            per_char = per_char.expand(len(text_ids)) if per_char.shape[0] == 1 else per_char
            units = self.width_units(text_ids, text_lengths)
            widths = (per_char.detach() * units).round().clamp_min(4).long()
        return resample_widths(
            raw, self.output_widths(text_lengths), widths, mode=self.config.resample
        ), widths

    # --- checkpoints: safetensors + json, never pickle --------------------------------------
    def save_pretrained(self, directory: str | Path, metadata: dict[str, str] | None = None) -> Path:
        """Write `model.safetensors` and `config.json` into `directory` (created if needed)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(d / WEIGHTS_NAME), metadata={k: str(v) for k, v in (metadata or {}).items()})
        self.config.save(d / CONFIG_NAME)
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> ScriptViT:
        """Rebuild a model saved by `save_pretrained`; clear errors for missing/corrupt files."""
        d = Path(directory)
        if not d.is_dir():
            raise FileNotFoundError(f"no checkpoint directory at {d}")
        for name in (WEIGHTS_NAME, CONFIG_NAME):
            if not (d / name).is_file():
                raise FileNotFoundError(f"{d} is not a ScriptViT checkpoint: {name} is missing")
        try:
            cfg = ScriptViTConfig.from_dict(json.loads((d / CONFIG_NAME).read_text()))
        except (json.JSONDecodeError, TypeError, ValueError, AssertionError) as e:
            raise ValueError(f"{d / CONFIG_NAME} is not a valid ScriptViT config: {e}") from e
        try:
            state = load_file(str(d / WEIGHTS_NAME), device=str(map_location))
        except (SafetensorError, OSError) as e:
            raise ValueError(f"{d / WEIGHTS_NAME} is not a readable safetensors file: {e}") from e
        model = cls(cfg).to(map_location)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ValueError(f"weights in {d} do not match its config.json: {e}") from e
        return model
