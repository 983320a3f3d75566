"""How fast the shipped model writes on a CPU: batched throughput, one-word latency, style
encoding vs decoding, peak memory, and blank style patches dropped vs kept.

Setting: one writer of the mini font data set, k = 5 style words (32 x 128 canvases); the
target words are distinct words of the data set (3-12 letters). Every time is the median of
`--repeats` runs after a warm-up, eval mode, no autograd, with 2 and with 1 intra-op thread
(`torch.set_num_threads`).

* encode: `encode_style` of the k canvases (done once per writer; `Writer` caches it);
* decode 1 word: `decode` of one 5-letter word from the cached memory (the model alone);
* write 1 word: `Writer.write` of that word (decode + crop + layout, memory cached);
* batched: `Writer.write_batch` of `--words` distinct one-word texts (decodes 64 words per
  call, grouped as they come), in words/s; "decode batch" is the model alone on one batch of
  64 of them (padded to the longest);
* keep vs drop: the same weights with `blank_patches="keep"` (every patch is a token) instead of
  the shipped "drop" (ink patches only) - the decoder then attends to ~5x more tokens.

Peak memory: `ru_maxrss` of the process (includes torch, the model and the data) and the
tracemalloc peak of one batched write (Python-side allocations only; torch tensors live
outside tracemalloc).

    python bench/generation_speed.py                        # -> bench/results/generation_speed.{json,md}
    python bench/generation_speed.py --model /tmp/ckpt --words 64 --repeats 3   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import torch
from machine_info import cpu_name  # bench/ is on sys.path when run as a script

from scriptvit_lib.data import mini_dataset
from scriptvit_lib.generator import ScriptViT
from scriptvit_lib.sampler import place_on_canvas
from scriptvit_lib.writer import Writer, load_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
K, ONE_WORD, BATCH = 5, "hello", 64
TARGET_WPS, TARGET_MS = 200.0, 50.0  # words/s batched, ms for one word with the style cached


def median_s(fn, repeats: int) -> float:
    """Median wall time of `fn()` in seconds, after one warm-up call."""
    with torch.no_grad():
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def with_blank_patches(model: ScriptViT, mode: str) -> ScriptViT:
    """The same weights under another `blank_patches` mode (no parameter depends on it)."""
    if model.config.blank_patches == mode:
        return model
    other = ScriptViT(replace(model.config, blank_patches=mode)).eval()
    other.load_state_dict(model.state_dict())
    return other


def measure(model: ScriptViT, style_words, texts: list[str], repeats: int) -> dict:
    w = Writer(model, style_words, k=K)
    canvases, widths = zip(*(place_on_canvas(w.words[i], model.config.style_size) for i in w.chosen))
    style, widths = torch.stack(canvases)[None], torch.tensor([widths])  # [1, K, 1, Hs, Ws], [1, K]
    memory = w.memory()
    one = torch.tensor([w.charset.encode(ONE_WORD)])
    batch_words = (texts * BATCH)[:BATCH]
    ids = torch.zeros(BATCH, max(map(len, batch_words)), dtype=torch.long)
    for b, t in enumerate(batch_words):
        ids[b, : len(t)] = torch.tensor(w.charset.encode(t))
    lengths = torch.tensor([len(t) for t in batch_words])
    encode = median_s(lambda: model.encode_style(style, widths), repeats)
    decode_one = median_s(lambda: model.decode(memory, one), repeats)
    write_one = median_s(lambda: w.write(ONE_WORD), repeats)
    decode_batch = median_s(lambda: model.decode(memory, ids, lengths), repeats)
    batched = median_s(lambda: w.write_batch(texts), max(1, repeats // 3))
    return {
        "tokens": int(memory.tokens.shape[1]),
        "encode_ms": 1000 * encode,
        "decode_1_word_ms": 1000 * decode_one,
        "write_1_word_ms": 1000 * write_one,
        "decode_batch64_words_per_s": BATCH / decode_batch,
        "write_batch_words_per_s": len(texts) / batched,
        "encode_over_decode_1_word": encode / decode_one,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "scriptvit-cpu"))
    ap.add_argument("--data", default=str(ROOT / "data" / "fonts-mini"))
    ap.add_argument("--words", type=int, default=256, help="words in the batched write")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    model = load_model(args.model).eval()
    data = mini_dataset(args.data)
    writer = data["test"].writers[0]
    style_words = [s.image for s in data["test"].of_writer(writer)][:20]
    # distinct words: `Writer` decodes a repeated word only a few times, which would inflate words/s
    texts = [t for t in dict.fromkeys(s.text for split in data.values() for s in split)]
    texts = [t for t in texts if t.isalpha() and 3 <= len(t) <= 12][: args.words]
    assert len(texts) == args.words, f"only {len(texts)} distinct words in {args.data}"
    load_before = os.getloadavg()
    rss_loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for mode in ("drop", "keep"):
            r = measure(with_blank_patches(model, mode), style_words, texts, args.repeats)
            rows.append({"threads": threads, "blank_patches": mode, **r})
            print(f"  threads {threads}, {mode}: {r}", flush=True)

    torch.set_num_threads(2)
    w = Writer(model, style_words, k=K)
    w.memory()
    tracemalloc.start()
    w.write_batch(texts)
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    by = {(r["threads"], r["blank_patches"]): r for r in rows}
    ratios = {
        str(t): {
            "keep_over_drop_tokens": by[(t, "keep")]["tokens"] / by[(t, "drop")]["tokens"],
            "keep_over_drop_encode": by[(t, "keep")]["encode_ms"] / by[(t, "drop")]["encode_ms"],
            "keep_over_drop_decode_1_word": by[(t, "keep")]["decode_1_word_ms"]
            / by[(t, "drop")]["decode_1_word_ms"],
            "drop_over_keep_words_per_s": by[(t, "drop")]["write_batch_words_per_s"]
            / by[(t, "keep")]["write_batch_words_per_s"],
        }
        for t in sorted({r["threads"] for r in rows})
    }
    result = {
        "model": os.path.relpath(args.model, ROOT) if str(args.model).startswith(str(ROOT)) else args.model,
        "config_blank_patches": model.config.blank_patches,
        "params": sum(p.numel() for p in model.parameters()),
        "k": K,
        "style_writer": writer,
        "batched_words": len(texts),
        "mean_letters": sum(map(len, texts)) / len(texts),
        "one_word": ONE_WORD,
        "repeats": args.repeats,
        "rows": rows,
        "ratios": ratios,
        "peak_rss_mb": rss_mb,
        "peak_rss_mb_after_loading_model_and_data": rss_loaded_mb,
        "tracemalloc_peak_mb_batched_write": py_peak / 2**20,
        "targets": {"batched_words_per_s": TARGET_WPS, "one_word_ms": TARGET_MS},
        "machine": {
            "cpu": cpu_name(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "note": "2 CPU cores shared with other processes; numbers vary run to run",
        },
    }

    lines = [
        f"Generation speed: `{result['model']}` ({result['params'] / 1e6:.1f} M params), k = {K}, "
        f"CPU ({result['machine']['cpu']}, {os.cpu_count()} cores, shared), torch {torch.__version__}",
        "",
        "| threads | blank patches | tokens | encode ms | decode 1 word ms | write 1 word ms | "
        "decode batch-64 words/s | write_batch words/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['threads']} | {r['blank_patches']} | {r['tokens']} | {r['encode_ms']:.1f} | "
            f"{r['decode_1_word_ms']:.1f} | {r['write_1_word_ms']:.1f} | "
            f"{r['decode_batch64_words_per_s']:.0f} | {r['write_batch_words_per_s']:.0f} |"
        )
    lines.append("")
    for t, q in ratios.items():
        lines.append(
            f"- {t} thread(s): keep/drop tokens x{q['keep_over_drop_tokens']:.1f}, encode x{q['keep_over_drop_encode']:.2f}, "
            f"decode 1 word x{q['keep_over_drop_decode_1_word']:.2f}; batched words/s drop/keep x{q['drop_over_keep_words_per_s']:.2f}"
        )
    d2 = by.get((2, "drop"))
    if d2:
        ok_wps = d2["write_batch_words_per_s"] >= TARGET_WPS
        ok_ms = d2["write_1_word_ms"] <= TARGET_MS
        lines.append(
            f"- targets (2 threads, drop): batched >= {TARGET_WPS:.0f} words/s: "
            f"{d2['write_batch_words_per_s']:.0f} {'PASS' if ok_wps else 'FAIL'}; one word <= {TARGET_MS:.0f} ms "
            f"(style cached): {d2['write_1_word_ms']:.1f} ms {'PASS' if ok_ms else 'FAIL'}"
        )
    lines += [
        f"- peak RSS {rss_mb:.0f} MB (whole process; {rss_loaded_mb:.0f} MB already after loading torch, the model "
        f"and the data set); tracemalloc peak of a {len(texts)}-word batched write "
        f"{result['tracemalloc_peak_mb_batched_write']:.1f} MB (Python side only)",
        f"- load average before/after: {load_before[0]:.2f} / {result['machine']['loadavg_after'][0]:.2f} "
        "(2 cores shared with other work: treat the numbers as +-20 %)",
    ]
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "generation_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "generation_speed.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
