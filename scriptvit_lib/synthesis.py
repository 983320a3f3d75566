"""Synthesis network: decoder outputs -> a word image 32 px high, 16 px per character.

ScriptViT (arXiv 2511.18307) follows HWT's non-autoregressive decoder head: every
character's fused vector is projected by one linear layer to a small feature map
(HWT: 512 -> 512 x 4 x 2, i.e. 4 high and 2 wide per character), the L maps are laid side
by side into a [C, 4, 2L] canvas, refined by residual conv blocks and upsampled three times
by 2 (nearest + 5x5 conv, halving the channels), then a 7x7 conv and tanh give one channel:

    [B, L, D] -> [B, C, 4, 2L] -> [B, C/8, 32, 16L] -> image [B, 1, 32, 16L]

Output range: tanh, so (-1, 1) inside the word (-1 ink, +1 paper, as the inputs); every
pixel right of a word's true width (char_width x text_length) is exactly +1 (paper).

Padding does not leak into a word: features of text positions beyond a sample's length are
zeroed before every conv (so the conv sees the same zeros as its own zero padding would)
and the instance norm takes its statistics over the true width only. A word therefore comes
out the same whether it is generated alone or padded in a batch with longer words.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from .config import RESAMPLE_MODES


def column_mask(lengths: torch.Tensor, num_chars: int, cols_per_char: int) -> torch.Tensor:
    """[B] text lengths -> [B, 1, 1, num_chars*cols_per_char] float, 1 inside the word."""
    cols = torch.arange(num_chars * cols_per_char, device=lengths.device)
    return (cols[None, :] < (lengths[:, None] * cols_per_char)).float()[:, None, None, :]


class MaskedInstanceNorm(nn.Module):
    """Instance norm whose mean/variance are taken over the masked (true-width) columns."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, film: tuple | None = None) -> torch.Tensor:
        """x [B, C, H, W], mask [B, 1, 1, W] -> [B, C, H, W], zero outside the mask.
        film: optional (gamma, beta), each [B, C, 1, 1]: x * (1 + gamma) + beta after the norm."""
        n = mask.sum(dim=(2, 3), keepdim=True) * x.shape[2]  # valid pixels per sample
        mean = (x * mask).sum(dim=(2, 3), keepdim=True) / n  # [B, C, 1, 1]
        var = ((x - mean) ** 2 * mask).sum(dim=(2, 3), keepdim=True) / n
        x = (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias
        if film is not None:
            x = x * (1 + film[0]) + film[1]
        return x * mask


class ResBlock(nn.Module):
    """x + IN(conv(ReLU(IN(conv(x))))), all masked to the word's width."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1, self.norm2 = MaskedInstanceNorm(channels), MaskedInstanceNorm(channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, films: tuple = (None, None)) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x), mask, films[0]))
        return x + self.norm2(self.conv2(h), mask, films[1])


# Nearest x2 upsampling then a 5x5 conv (padding 2) is, for each of the 4 output phases
# (row parity, column parity), a 3x3 conv (padding 1) of the low-resolution map: output row 2m
# sees input rows m-1, m-1, m, m, m+1 through kernel rows -2..2, row 2m+1 sees m-1, m, m, m+1,
# m+1. _PHASE_TAPS[p, t, k] = 1 where kernel tap k lands on low-res tap t (-1, 0, +1) for parity p.
_PHASE_TAPS = torch.tensor(
    [
        [[1, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1]],  # even output rows / columns
        [[1, 0, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 1, 1]],  # odd
    ],
    dtype=torch.float32,
)


def fold_upsample_conv(weight: torch.Tensor) -> torch.Tensor:
    """5x5 kernel [Co, Ci, 5, 5] applied after nearest x2 upsampling -> the same map as one 3x3
    conv on the low-resolution input [Co*4, Ci, 3, 3] followed by `pixel_shuffle(2)`: channel
    4c + 2i + j holds output channel c at row parity i, column parity j."""
    taps = _PHASE_TAPS.to(device=weight.device, dtype=weight.dtype)
    folded = torch.einsum("iay,jbx,ocyx->oijcab", taps, taps, weight)  # [Co, 2, 2, Ci, 3, 3]
    return folded.reshape(weight.shape[0] * 4, weight.shape[1], 3, 3)


class UpBlock(nn.Module):
    """Nearest x2 upsampling, 5x5 conv (HWT's kernel), masked IN, ReLU.

    Computed without materialising the upsampled map: the 5x5 kernel is folded into four 3x3
    phase kernels (`fold_upsample_conv`) and the result interleaved by a pixel shuffle - the
    same function of the same weights (equal up to float rounding), 2.8x fewer multiply-adds
    (9 instead of 25 per output pixel): each stage 3-5x faster on a CPU when writing. (A training
    iteration, where the critics' convolutions dominate, did not get measurably faster.)
    """

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 5, padding=2)
        self.norm = MaskedInstanceNorm(cout)

    def upsample_conv(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, Ci, H, W] -> conv5x5(nearest_x2(x)) [B, Co, 2H, 2W]."""
        bias = None if self.conv.bias is None else self.conv.bias.repeat_interleave(4)
        return F.pixel_shuffle(F.conv2d(x, fold_upsample_conv(self.conv.weight), bias, padding=1), 2)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, film: tuple | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = F.interpolate(mask, scale_factor=(1, 2), mode="nearest")  # [B, 1, 1, 2W]
        return F.relu(self.norm(self.upsample_conv(x), mask, film)), mask


def synthesis_stages(channels: int, min_channels: int = 0) -> list[int]:
    """Channels before and after each of the three upsampling stages: halved each time (HWT),
    but never below `min_channels` (library option `syn_min_channels`; 0 = HWT's halving)."""
    return [channels] + [max(channels >> (i + 1), min_channels) for i in range(3)]


class SynthesisNetwork(nn.Module):
    def __init__(
        self,
        *,
        in_dim: int,
        channels: int,
        res_blocks: int = 2,
        char_width: int = 16,
        style_dim: int = 0,
        min_channels: int = 0,
    ):
        super().__init__()
        assert char_width % 8 == 0, f"char_width {char_width} must be a multiple of 8 (x8 upsampling)"
        assert channels % 8 == 0, f"synthesis channels {channels} must be divisible by 8"
        self.char_width = char_width
        self.h0, self.w0 = 4, char_width // 8  # feature map per character before upsampling
        # paper silent: chose HWT's head (4 x 2 map per char, residual blocks, 3 x (up + 5x5
        # conv), 7x7 conv + tanh) but project the decoder output alone (HWT concatenates the
        # query embedding; our pre-norm residual stream already carries it) and mask the
        # instance norm to the word's width so padding cannot change a word.
        self.proj = nn.Linear(in_dim, channels * self.h0 * self.w0)
        self.res = nn.ModuleList(ResBlock(channels) for _ in range(res_blocks))
        stages = synthesis_stages(channels, min_channels)
        self.ups = nn.ModuleList(UpBlock(stages[i], stages[i + 1]) for i in range(3))
        self.to_img = nn.Conv2d(stages[3], 1, 7, padding=3)
        # library option (style_modulation="film"): one FiLM per instance norm, in the order the
        # norms run (each residual block's two, then each upsampling block's one); zero-initialised,
        # so the network starts as it is without it
        norm_channels = [channels] * (2 * res_blocks) + stages[1:]
        self.film = (
            nn.ModuleList(nn.Linear(style_dim, 2 * c) for c in norm_channels) if style_dim > 0 else None
        )
        if self.film is not None:
            for lin in self.film:
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

    def _films(self, style: torch.Tensor | None, b: int) -> list:
        if self.film is None:
            return [None] * (2 * len(self.res) + len(self.ups))
        if style is None:
            raise ValueError("this synthesis network has style modulation (FiLM): pass the pooled style")
        style = style.expand(b, -1) if style.shape[0] == 1 else style
        return [tuple(t[:, :, None, None] for t in lin(style).chunk(2, dim=1)) for lin in self.film]

    def forward(
        self, h: torch.Tensor, lengths: torch.Tensor, style: torch.Tensor | None = None
    ) -> torch.Tensor:
        """h [B, L, D] decoder output, lengths [B] -> image [B, 1, 32, char_width*L].
        style [B or 1, style_dim]: the pooled style memory (only with FiLM)."""
        assert h.dim() == 3, f"expected [B, L, D], got {tuple(h.shape)}"
        b, length = h.shape[:2]
        films = self._films(style, b)
        x = rearrange(self.proj(h), "b l (c h w) -> b c h (l w)", h=self.h0, w=self.w0)  # [B, C, 4, L*w0]
        mask = column_mask(lengths.to(h.device), length, self.w0)  # [B, 1, 1, L*w0]
        x = x * mask
        if x.device.type == "cpu":  # oneDNN's convolutions run ~10 % faster on NHWC (measured)
            x = x.contiguous(memory_format=torch.channels_last)
        for i, block in enumerate(self.res):
            x = block(x, mask, (films[2 * i], films[2 * i + 1]))
        for i, up in enumerate(self.ups):
            x, mask = up(x, mask, films[2 * len(self.res) + i])  # x2 height and width each time
        img = torch.tanh(self.to_img(x))  # [B, 1, 32, L*char_width]
        return torch.where(mask.bool(), img, torch.ones_like(img))  # paper (+1) beyond the word


def widen_synthesis_state(state: dict, net: SynthesisNetwork, prefix: str = "") -> tuple[dict, list[str]]:
    """A narrower synthesis network's weights (`state`, keys under `prefix`) -> weights for the
    wider `net` (a larger `syn_min_channels`) that write exactly the same images.

    Each grown tensor keeps the old weights in its leading channels. New output channels of a
    conv keep `net`'s random initial weights: the instance norm after it is per channel, so they
    disturb nothing, and every weight *from* a new channel into the next layer is zero, so the
    output is unchanged until training moves those weights (Net2Net-style growth with zero
    fan-out). FiLM rows of new channels are zero (the identity), as FiLM starts anyway.
    Returns the new state and the names of the tensors that grew; tensors of any other shape
    are left for `load_state_dict` to refuse."""
    own = net.state_dict()
    state, grown = dict(state), []
    for name, new in own.items():
        key = prefix + name
        old = state.get(key)
        if old is None or old.shape == new.shape or old.dim() != new.dim():
            continue
        if any(o > n for o, n in zip(old.shape, new.shape)):
            continue
        out = new.clone()
        if name.startswith("film."):  # [2C, style] / [2C]: gamma rows, then beta rows
            c_old, c_new = old.shape[0] // 2, new.shape[0] // 2
            out.zero_()
            out[:c_old], out[c_new : c_new + c_old] = old[:c_old], old[c_old:]
        elif old.dim() == 4 and (name.endswith("conv.weight") or name == "to_img.weight"):
            co, ci = old.shape[:2]
            out[:co, ci:] = 0  # from new input channels into old outputs: nothing, yet
            out[:co, :ci] = old
        elif old.dim() == 4:  # instance-norm affine [1, C, 1, 1]
            out[:, : old.shape[1]] = old
        elif old.dim() == 1:  # conv bias
            out[: old.shape[0]] = old
        else:
            continue
        state[key] = out
        grown.append(key)
    return state, grown


# --- library option (`width_mode="predicted"`): the writer's own width -----------------------
MIN_CHAR_WIDTH, MAX_CHAR_WIDTH = 3.0, 40.0  # px per character a predicted width is clamped to


class WidthHead(nn.Module):
    """Style memory -> the writer's px per character (one number per sample).

    Real hands differ in width (fonts of the default data: ~6 to ~16 px per character at 32 px
    height), which a fixed 16 px per character cannot show. Masked mean of the memory tokens ->
    MLP -> exp, starting at `init` px; trained by regression on log(real width / text length).
    """

    def __init__(self, dim: int, hidden: int = 128, init: float = 10.0):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.constant_(self.mlp[-1].bias, float(torch.log(torch.tensor(init))))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled style memory [B, D] (`StyleMemory.pooled`) -> log px per character [B]."""
        return self.mlp(pooled).squeeze(-1)


def fit_char_widths(
    texts: list[list[int]], widths, writers: list, num_classes: int, iters: int = 15, min_width: float = 0.2
) -> tuple[float, ...]:
    """Relative character widths for `ScriptViTConfig.char_widths`, from real words.

    texts: character ids of each word; widths: its width in px; writers: its writer. Fits
    width ~ scale(writer) x sum of the word's character widths by alternating least squares (the
    writer's scale in closed form, the widths by `lstsq`; widths below `min_width` are clamped),
    then normalises so that the geometric mean over the words of (sum of widths / length) is 1:
    the writer's px per character (what `WidthHead` learned without them) keeps its meaning on
    average. Characters no word holds get 1.0. Fit on training writers only."""
    w = np.asarray(widths, dtype=np.float64)
    ids = {x: i for i, x in enumerate(dict.fromkeys(writers))}
    g = np.array([ids[x] for x in writers])
    counts = np.zeros((len(texts), num_classes))
    for i, t in enumerate(texts):
        np.add.at(counts[i], np.asarray(t, dtype=int), 1.0)
    counts[:, 0] = 0.0  # padding
    lengths = counts.sum(1)
    if len(texts) == 0 or lengths.min() <= 0:
        raise ValueError("fit_char_widths needs words of at least one character")
    used = counts.sum(0) > 0
    r = np.where(used, 1.0, 0.0)
    for _ in range(iters):
        q = counts @ r
        scale = np.bincount(g, w * q) / np.bincount(g, q * q)
        fit, *_ = np.linalg.lstsq(counts[:, used] * scale[g][:, None], w, rcond=None)
        r[used] = np.clip(fit, min_width, None)
    r /= np.exp(np.log((counts @ r) / lengths).mean())
    r[~used] = 1.0
    r[0] = 0.0
    return tuple(float(x) for x in r)


def area_weights(w_in, w_out, device=None, dtype=torch.float32, cols: int | None = None) -> torch.Tensor:
    """Matrix of exact box resampling: output column j covers input columns [j s, (j+1) s),
    s = w_in / w_out, and is their mean weighted by overlap (each used column sums to 1).

    Ints -> [w_in, w_out]. Tensors [B] of widths -> [B, max(w_in), cols or max(w_out)], zero in
    every row >= w_in[i] and every column >= w_out[i] of word i (one batched product resizes
    words of different widths)."""
    batched = torch.is_tensor(w_in)
    w_in = torch.as_tensor(w_in, dtype=torch.float64).reshape(-1, 1, 1).cpu()
    w_out = torch.as_tensor(w_out, dtype=torch.float64).reshape(-1, 1, 1).cpu()
    rows, cols = int(w_in.max()), int(cols if cols is not None else w_out.max())
    s = w_in / w_out  # [B, 1, 1]
    lo = torch.arange(cols, dtype=torch.float64)[None, None, :] * s  # [B, 1, cols]
    i = torch.arange(rows, dtype=torch.float64)[None, :, None]  # [1, rows, 1]
    # rows >= w_in get no overlap from any column j < w_out (lo + s <= w_in); columns >= w_out do
    overlap = (torch.minimum(lo + s, i + 1) - torch.maximum(lo, i)).clamp_min(0)
    used = torch.arange(cols, dtype=torch.float64)[None, None, :] < w_out
    weights = (overlap / s * used).to(device=device, dtype=dtype)
    return weights if batched else weights[0]


def resample_widths(
    images: torch.Tensor,
    widths_in: torch.Tensor,
    widths_out: torch.Tensor,
    out_width: int | None = None,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Resize each word horizontally: images [B, 1, H, W] whose word i spans `widths_in[i]`
    columns -> [B, 1, H, out_width or max(widths_out)] with word i in `widths_out[i]` columns
    and paper (+1) right of it; differentiable. mode 'bilinear' (antialiased when shrinking) or
    'area' (exact box: `area_weights`, all words in one batched product)."""
    if mode not in RESAMPLE_MODES:
        raise ValueError(f"resample mode must be one of {RESAMPLE_MODES}, not {mode!r}")
    b, c, h, _ = images.shape
    width = int(out_width if out_width is not None else int(widths_out.max()))
    if mode == "area":
        w_in = widths_in.detach().cpu().long()
        w_out = widths_out.detach().cpu().long().clamp(max=width)
        weights = area_weights(w_in, w_out, images.device, images.dtype, cols=width)  # [B, Wi, width]
        out = images[..., : weights.shape[1]] @ weights[:, None]  # [B, C, H, width]
        paper = (torch.arange(width)[None, :] >= w_out[:, None]).to(images.device)  # [B, width]
        return out.masked_fill(paper[:, None, None, :], 1.0)
    rows = [images.new_ones(0, c, h, width)]
    for i in range(b):
        wi, wo = int(widths_in[i]), min(int(widths_out[i]), width)
        word = images[i : i + 1, :, :, :wi]
        word = F.interpolate(word, size=(h, wo), mode="bilinear", align_corners=False, antialias=wo < wi)
        rows.append(F.pad(word, (0, width - wo), value=1.0))
    return torch.cat(rows)
