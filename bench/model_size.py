"""Parameters and forward FLOPs of every ScriptViT component, per preset, and what dropping
blank style patches saves.

Setting: batch 1, k = 5 style words, a 10-character target word (image 32 x 160).
Style words are synthetic but shaped like real ones: 32 px high, 100-150 px wide (clipped to
the canvas width), left-aligned and vertically centred on the paper-white canvas, strokes
mostly in the x-height band with a few ascenders/descenders.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode` (1 multiply-add = 2 FLOPs). It
does not count PyTorch's CPU fused attention kernel, so we register its formula
(2 * B * heads * Lq * Lk * (d_qk + d_v)). Times are CPU milliseconds on ONE thread (median of
`--repeats` runs after a warm-up), in eval mode without autograd.

    python bench/model_size.py                 # all presets -> bench/results/model_size.{json,md}
    python bench/model_size.py --presets tiny  # quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from scriptvit_lib.charset import Charset
from scriptvit_lib.config import ScriptViTConfig
from scriptvit_lib.discriminator import Discriminator
from scriptvit_lib.generator import ScriptViT, build_style_encoder
from scriptvit_lib.recognizer import Recognizer
from scriptvit_lib.writer_classifier import WriterClassifier

K, WORD = 5, "ScriptViT!"  # 10 characters
RESULTS = Path(__file__).parent / "results"


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    b, h, lq, d = query_shape
    return 2 * b * h * lq * key_shape[2] * (d + value_shape[3])


SDPA_CPU = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}


def flops(fn) -> int:
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=SDPA_CPU) as counter:
        fn()
    return counter.get_total_flops()


def cpu_ms(fn, repeats: int) -> float:
    with torch.no_grad():
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def fake_word(width: int, seed: int) -> torch.Tensor:
    """[32, width] in {-1, +1}: a wavy stroke in the x-height band plus a few tall strokes."""
    g = torch.Generator().manual_seed(seed)
    img = torch.ones(32, width)
    x = torch.arange(width, dtype=torch.float32)
    phase = float(torch.rand(1, generator=g)) * 6.28
    y = (16 + 5 * torch.sin(x / 2.5 + phase)).round().long()  # the x-height zig-zag
    for dy in (-1, 0, 1):
        img[(y + dy).clamp(0, 31), torch.arange(width)] = -1.0
    for c in torch.randint(0, width, (max(1, width // 40),), generator=g).tolist():
        top, bottom = (2, 20) if torch.rand(1, generator=g) < 0.6 else (12, 30)  # ascender / descender
        img[top:bottom, c : c + 2] = -1.0
    return img


def realistic_style(cfg: ScriptViTConfig, k: int = K, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """[1, k, 1, Hs, Ws] canvases holding words 100-150 px wide, and their widths [1, k]."""
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.style_size
    style, widths = torch.ones(1, k, 1, h, w), []
    for j in range(k):
        width = min(int(torch.randint(100, 151, (1,), generator=g)), w)
        top = (h - 32) // 2
        style[0, j, 0, top : top + 32, :width] = fake_word(width, seed * 100 + j)
        widths.append(width)
    return style, torch.tensor([widths])


def measure_components(name: str) -> list[dict]:
    cfg = ScriptViTConfig.preset(name)
    torch.manual_seed(0)
    g = ScriptViT(cfg).eval()
    cnn = build_style_encoder(ScriptViTConfig.preset(name, style_encoder="cnn")).eval()
    d = Discriminator.from_config(cfg).eval()
    r = Recognizer.from_config(cfg).eval()
    w = WriterClassifier.from_config(cfg).eval()
    style, sw = realistic_style(cfg)
    ids = torch.tensor([Charset().encode(WORD)])
    lengths = torch.tensor([len(WORD)])
    with torch.no_grad():
        mem = g.encode_style(style, sw)
        queries = g.content_encoder(ids)
        h = g.fusion(queries, mem.tokens, memory_pad=mem.pad_mask)
        img = g.synthesis(h, lengths)
    widths = g.output_widths(lengths)
    rows = [
        (
            f"style encoder (ViT, blank={cfg.blank_patches})",
            g.style_encoder,
            lambda: g.encode_style(style, sw),
        ),
        ("style encoder (CNN baseline)", cnn, lambda: cnn(style, sw)),
        ("content encoder", g.content_encoder, lambda: g.content_encoder(ids)),
        ("fusion decoder", g.fusion, lambda: g.fusion(queries, mem.tokens, memory_pad=mem.pad_mask)),
        ("synthesis", g.synthesis, lambda: g.synthesis(h, lengths)),
        ("**generator (ViT) total**", g, lambda: g(style, ids, lengths, style_widths=sw)),
        ("discriminator", d, lambda: d(img)),
        ("recognizer", r, lambda: r(img, widths)),
        ("writer classifier", w, lambda: w(img, widths)),
    ]
    return [{"component": c, "params": n_params(m), "flops": flops(fn)} for c, m, fn in rows]


def measure_blank_savings(name: str, repeats: int) -> dict:
    """Style encoder at k = 5 under each blank-patch mode (same weights)."""
    base = ScriptViTConfig.preset(name)
    style, sw = realistic_style(base)
    torch.manual_seed(0)
    ref = build_style_encoder(replace_mode(base, "keep")).eval()
    out = {}
    for mode in ("keep", "mask", "drop"):
        enc = build_style_encoder(replace_mode(base, mode)).eval()
        enc.load_state_dict(ref.state_dict())
        mem = enc(style, sw)
        out[mode] = {
            "tokens": int(mem.tokens.shape[1]),
            "attended_tokens": int((~mem.pad_mask).sum()),
            "flops": flops(lambda enc=enc: enc(style, sw)),
            "cpu_ms": cpu_ms(lambda enc=enc: enc(style, sw), repeats),
        }
    return out


def replace_mode(cfg: ScriptViTConfig, mode: str) -> ScriptViTConfig:
    return ScriptViTConfig.from_dict({**cfg.to_dict(), "blank_patches": mode, "style_encoder": "vit"})


def _m(n: int) -> str:
    return f"{n / 1e6:.2f} M"


def _g(n: int) -> str:
    return f"{n / 1e9:.3f}" if n < 1e10 else f"{n / 1e9:.1f}"


def to_markdown(results: dict) -> str:
    presets = list(results["components"])
    lines = [
        f"Batch 1, k = {K} style words (100-150 px wide), a {len(WORD)}-character word (32 x 160 px). "
        "GFLOPs = forward FLOPs / 1e9 (multiply-add = 2).",
        "",
        "| component | " + " | ".join(f"{p} params | {p} GFLOPs" for p in presets) + " |",
        "|---|" + "---:|---:|" * len(presets),
    ]
    names = [row["component"] for row in results["components"][presets[0]]]
    for i, comp in enumerate(names):
        cells = []
        for p in presets:
            row = results["components"][p][i]
            cells += [_m(row["params"]), _g(row["flops"])]
        label = (
            comp if not comp.startswith("style encoder (ViT") else "style encoder (ViT, preset's blank mode)"
        )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    modes = ", ".join(f"{p}: {results['components'][p][0]['component'].split('=')[1][:-1]}" for p in presets)
    lines += ["", f"Preset blank modes: {modes}.", ""]
    lines += [
        f"**Blank style patches** - ViT style encoder alone, k = {K}, same weights; "
        "CPU ms on 1 thread (median).",
        "",
        "| preset | canvas / patch | tokens keep -> drop | GFLOPs keep | GFLOPs mask | GFLOPs drop "
        "| ms keep | ms mask | ms drop | FLOPs saved by drop |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p, s in results["blank_savings"].items():
        cfg = ScriptViTConfig.preset(p)
        keep, mask, drop = s["keep"], s["mask"], s["drop"]
        saved = 1 - drop["flops"] / keep["flops"]
        lines.append(
            f"| {p} | {cfg.style_size[0]}x{cfg.style_size[1]} / {cfg.patch_size} "
            f"| {keep['tokens']} -> {drop['tokens']} | {_g(keep['flops'])} | {_g(mask['flops'])} "
            f"| {_g(drop['flops'])} | {keep['cpu_ms']:.1f} | {mask['cpu_ms']:.1f} | {drop['cpu_ms']:.1f} "
            f"| {saved:.0%} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["tiny", "cpu", "paper"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    results = {
        "setting": {"batch": 1, "k": K, "word": WORD, "threads": 1, "torch": torch.__version__},
        "components": {p: measure_components(p) for p in args.presets},
        "blank_savings": {p: measure_blank_savings(p, args.repeats) for p in args.presets},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model_size.json").write_text(json.dumps(results, indent=2) + "\n")
    md = to_markdown(results)
    (args.out / "model_size.md").write_text(md)
    print(md)
    return results


if __name__ == "__main__":
    main()
