"""`ScriptViTConfig`: every size of the ScriptViT model in one typed dataclass.

ScriptViT (arXiv 2511.18307) fixes only a few numbers: k = 5 style images padded to 224x224,
a ViT style encoder, 512-d content queries, a 3-layer / 8-head Transformer decoder, and word
images 32 px high. Everything else is our choice, and each such choice carries a comment
"paper silent: chose X because Y" next to its field or preset.

Three named presets (`ScriptViTConfig.preset(name)`):

* ``tiny``  - tests and CI: runs a forward in milliseconds on a CPU.
* ``cpu``   - a generator of ~5 M parameters that trains (slowly) on 2 CPU cores.
* ``paper`` - the paper's sizes (ViT-S/16 on 224x224 canvases, d_model 512).

The defaults of the dataclass itself are the ``tiny`` preset (small defaults, big presets).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

STYLE_ENCODERS = ("vit", "cnn")
BLANK_MODES = ("keep", "mask", "drop")
REC_HEADS = ("linear", "lstm")
WIDTH_MODES = ("fixed", "predicted")
STYLE_MODULATIONS = ("none", "film")
RESAMPLE_MODES = ("bilinear", "area")


@dataclass
class ScriptViTConfig:
    # --- style input -------------------------------------------------------------------
    style_size: tuple[int, int] = (32, 64)
    """(H, W) canvas every style word is padded to (paper: 224x224)."""
    patch_size: int = 8
    """ViT patch side in px (paper: 16)."""
    max_style_images: int = 15
    """Largest k supported; sizes the per-image embedding table (k = 1..max)."""
    style_encoder: str = "vit"
    """'vit' (ScriptViT) or 'cnn' (HWT/VATr-style ResNet-18 baseline)."""
    # --- ViT style encoder ---------------------------------------------------------------
    vit_dim: int = 32
    vit_depth: int = 1
    vit_heads: int = 2
    vit_mlp_ratio: float = 4.0
    """paper silent: chose 4.0, the ratio of every standard ViT."""
    blank_patches: str = "mask"
    """'keep' | 'mask' | 'drop' patches without ink (see `style_encoder.py`)."""
    blank_threshold: float = 0.75
    """A patch is blank when its darkest pixel is lighter than this (paper = +1, ink = -1).
    paper silent: chose 0.75 (87.5% grey) so anti-aliased stroke edges still count as ink."""
    # --- CNN style encoder baseline -----------------------------------------------------
    cnn_enc_layers: int = 0
    """Transformer blocks after the ResNet features (HWT uses 3)."""
    # --- content queries + fusion decoder ----------------------------------------------
    d_model: int = 32
    """Width of content queries, style memory and decoder (paper: 512)."""
    dec_layers: int = 1
    """Decoder layers (paper: 3)."""
    dec_heads: int = 2
    """Decoder heads (paper: 8)."""
    dec_ff: int = 64
    """Feed-forward width of a decoder layer."""
    dropout: float = 0.0
    """Dropout in the ViT and the decoder."""
    # --- synthesis ----------------------------------------------------------------------
    syn_channels: int = 32
    """Channels of the 4 x 2-per-char feature map the decoder output is projected to."""
    syn_res_blocks: int = 1
    """Residual conv blocks before upsampling."""
    syn_min_channels: int = 0
    """Fewest channels an upsampling stage may have (0: none). The three stages halve the
    channels (HWT: 512 -> 256 -> 128 -> 64 at full resolution; `cpu`: 128 -> ... -> 16); a floor
    keeps the full-resolution stages wider, where the strokes are drawn. A library option: a
    trained model can be widened to it without changing what it writes (`widen_synthesis_state`)."""
    char_width: int = 16
    """Output px per character (HWT: 16); must be a multiple of 8 (three x2 upsamplings)."""
    img_height: int = 32
    """Output height in px; fixed by the paper (and HWT, VATr)."""
    width_mode: str = "fixed"
    """'fixed': every character is `char_width` px (paper, HWT). 'predicted' (a library option
    for style fidelity): the word is still synthesised at `char_width` px per character, then
    resampled to the writer's own width; px per character come from a small head on the
    pooled style memory, trained on the widths of real words (teacher widths in training)."""
    resample: str = "bilinear"
    """How `width_mode="predicted"` resizes a word to the writer's width: 'bilinear' (antialiased
    when shrinking: a tent filter two output px wide) or 'area' (each output column the exact
    mean of the input it covers: a box one output px wide, as the font renderer's S x S
    supersampling and a scanner's pixels average). A library option: the paper has no resampling."""
    char_widths: tuple[float, ...] | None = None
    """`width_mode="predicted"`: the relative width of each character id (index 0, padding,
    unused), so that a word is the writer's px per unit x the sum over its characters wide
    instead of px per character x its length ('m' is wider than 'i' in every hand). None: every
    character alike. Fitted on the training writers' real words (`synthesis.fit_char_widths`;
    `bench/char_widths.py` writes them into a model folder's config). A library option: the
    paper writes 16 px per character."""
    style_modulation: str = "none"
    """'none' (paper: the style reaches the synthesis only through cross-attention) or 'film'
    (a library option): every instance norm of the synthesis network is followed by a FiLM
    from the pooled style memory, x * (1 + gamma) + beta, initialised to the identity so a
    trained 'none' model can be continued with it (`TrainConfig.init_from`)."""
    num_classes: int = 81
    """Character ids incl. blank/padding 0 (IAM charset: 80 + 1)."""
    # --- training networks --------------------------------------------------------------
    d_ch: int = 8
    """Base channels of the discriminator (x1, x2, x4, x8 over its four stages)."""
    rec_ch: int = 8
    """Base channels of the CRNN recognizer (HWT: 64)."""
    rec_head: str = "linear"
    """'linear' (per-column, HWT's choice) or 'lstm' (BiLSTM over columns).
    paper silent: chose 'linear' as HWT - each column's output then depends only on nearby
    pixels, never on how much padding follows the word."""
    rec_hidden: int = 256
    """Hidden size of each direction of the BiLSTM head (used only with rec_head='lstm')."""
    rec_norm: str = "batch"
    """'batch' (HWT's CRNN) or 'none' (no cross-sample statistics; see `recognizer.py`)."""
    wcls_ch: int = 8
    """Base channels of the writer classifier."""
    num_writers: int = 8
    """Training writers the writer classifier tells apart (IAM split of HWT: 339)."""

    def __post_init__(self):
        self.style_size = tuple(int(s) for s in self.style_size)
        h, w = self.style_size
        p = self.patch_size
        assert h % p == 0 and w % p == 0, f"style_size {self.style_size} must be divisible by patch {p}"
        assert self.style_encoder in STYLE_ENCODERS, f"style_encoder must be one of {STYLE_ENCODERS}"
        assert self.blank_patches in BLANK_MODES, f"blank_patches must be one of {BLANK_MODES}"
        assert self.rec_head in REC_HEADS, f"rec_head must be one of {REC_HEADS}"
        assert self.vit_dim % self.vit_heads == 0, "vit_dim must be divisible by vit_heads"
        assert self.d_model % self.dec_heads == 0, "d_model must be divisible by dec_heads"
        assert self.char_width % 8 == 0, f"char_width {self.char_width} must be a multiple of 8"
        assert self.width_mode in WIDTH_MODES, f"width_mode must be one of {WIDTH_MODES}"
        assert self.resample in RESAMPLE_MODES, f"resample must be one of {RESAMPLE_MODES}"
        assert self.style_modulation in STYLE_MODULATIONS, (
            f"style_modulation must be one of {STYLE_MODULATIONS}"
        )
        assert self.img_height == 32, "the synthesis network makes 32-px images (4 x 8 upsampling)"
        assert self.syn_min_channels >= 0, "syn_min_channels must be >= 0"
        if self.char_widths is not None:
            if self.width_mode != "predicted":
                raise ValueError(
                    "char_widths need width_mode='predicted' (a fixed width has no use for them)"
                )
            self.char_widths = tuple(float(w) for w in self.char_widths)
            if len(self.char_widths) != self.num_classes or min(self.char_widths[1:]) <= 0:
                raise ValueError(
                    f"char_widths must hold {self.num_classes} numbers (one per character id, "
                    f"index 0 unused), all > 0 after the first; got {len(self.char_widths)}"
                )

    # --- presets and (de)serialisation ----------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides) -> ScriptViTConfig:
        """A named preset (`PRESETS`), optionally with some fields replaced."""
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["style_size"] = list(self.style_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ScriptViTConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}")
        return cls(**d)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ScriptViTConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


PRESETS: dict[str, ScriptViTConfig] = {
    # Seconds on a CPU; every test uses it.
    "tiny": ScriptViTConfig(),
    # paper silent (it is our CPU preset): ViT-Ti width (192, 3 heads) at depth 4 on 32x128
    # canvases - a 32-px word is ~100-150 px wide, so a wider-than-tall canvas wastes few patches;
    # decoder keeps the paper's 3 layers and 8 heads at d_model 256.
    "cpu": ScriptViTConfig(
        style_size=(32, 128),
        patch_size=8,
        vit_dim=192,
        vit_depth=4,
        vit_heads=3,
        blank_patches="drop",
        cnn_enc_layers=1,
        d_model=256,
        dec_layers=3,
        dec_heads=8,
        dec_ff=512,
        dropout=0.1,
        syn_channels=128,
        syn_res_blocks=2,
        d_ch=16,
        rec_ch=16,
        wcls_ch=16,
        num_writers=339,
    ),
    "paper": ScriptViTConfig(
        style_size=(224, 224),  # paper: words padded to 224x224
        patch_size=16,  # paper: 16x16 patches
        # paper silent on the ViT size: chose ViT-S/16 (384 wide, 12 deep, 6 heads), the
        # standard ViT whose width is closest to the 512-d decoder.
        vit_dim=384,
        vit_depth=12,
        vit_heads=6,
        # paper silent on blank patches: chose 'keep', i.e. the whole padded canvas goes into
        # the ViT exactly as described; 'drop' is our optional speed-up.
        blank_patches="keep",
        cnn_enc_layers=3,  # HWT: 3 encoder layers after the ResNet
        d_model=512,  # paper: 512-d content queries
        dec_layers=3,  # paper: 3 decoder layers
        dec_heads=8,  # paper: 8 heads
        dec_ff=512,  # paper silent: chose HWT's TN_DIM_FEEDFORWARD = 512
        dropout=0.1,  # paper silent: chose HWT's TN_DROPOUT = 0.1
        syn_channels=512,  # paper silent: chose HWT's 512 x 4 x 2 per character
        syn_res_blocks=2,  # paper silent: chose HWT's 2 residual blocks
        d_ch=64,  # paper silent: chose HWT/BigGAN's ch = 64
        rec_ch=64,  # paper silent: chose HWT's CRNN widths 64..512
        wcls_ch=64,
        num_writers=339,  # HWT's IAM training writers
    ),
}
