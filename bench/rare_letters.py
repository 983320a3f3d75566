"""Rare letters: does a model write 'z', 'q', 'j', 'x', 'k', 'v' in an unseen writer's hand?

Running English (the font data's word distribution, like IAM's) writes 'z' in 0.06 % and 'q' in
0.07 % of letters, so a writer of 300 words writes 'z' less than once and a model can learn to
scribble it ("lazy" in `figures/demo.png`). `scriptvit data build --rare-letters --only-train`
adds words with those letters to the training writers. This benchmark asks the question on the
*unseen* writers of `--data`: for each rare letter, words holding it (and, as a control, as many
common words holding none of them) are rendered by the writer's font (the real words) and written
by each model from k of the writer's test words; then

* letter recall: the share of the letter's occurrences that the evaluation judges' recognizer
  (trained on the training writers' real words, never a loss) finds in its reading of the word
  (the count of the letter in the reading, capped by the count in the text) - real and generated;
* CER of the same recognizer, real and generated (dCER);
* HWD (judges' feature net) between each writer's generated and real words of the group.

    scriptvit data build --out data/fonts-rare --families all --words 40 --rare-letters --only-train
    python bench/rare_letters.py --models models/scriptvit-cpu runs/x/checkpoints/step_*.pt \\
        --labels v9 continued --data data/fonts-all --judges-data data/fonts-all data/fonts-rare \\
        --judges results/judges --name rare_letters --figure figures/rare_letters.png

The judges' recognizer must have seen the letters: judges trained on running text alone (the
benchmark's usual ones) find 'q', 'x' and 'z' in *none* of the real words, so `--judges-data`
adds the rare-letter folder to their training words (they are still never a training loss).

Writes `results/style_fidelity/<name>.json` and `.md`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scriptvit_lib.data import load_data  # noqa: E402
from scriptvit_lib.dataset import RARE_LETTERS, default_vocabulary, load_writers, rare_letter_vocabulary  # noqa: E402
from scriptvit_lib.features import judges_at  # noqa: E402
from scriptvit_lib.fidelity import style_memory, write_texts  # noqa: E402
from scriptvit_lib.metrics import cer, hwd, tokens_by_writer  # noqa: E402
from scriptvit_lib.render import render_word  # noqa: E402
from scriptvit_lib.trainer import sampling_generator  # noqa: E402

FIGURE_WORDS = ("lazy", "quiz", "jinx", "vex", "kayak")


def word_groups(letters: str, n: int, seed: int) -> dict[str, list[str]]:
    """{letter: n distinct lower-case words holding it} + {"common": as many words holding none
    of `letters`}, drawn by frequency ** 0.5 (as `rare_letter_vocabulary`) with a fixed seed."""
    rng = np.random.default_rng(seed)
    words, freq = default_vocabulary()
    groups = {}
    for c in letters:
        w, p = rare_letter_vocabulary(c, (words, freq))
        groups[c] = [w[i] for i in rng.choice(len(w), size=n, replace=False, p=p)]
    plain = np.array([not set(w) & set(letters) for w in words])
    w, p = [x for x, ok in zip(words, plain) if ok], np.sqrt(freq[plain])
    groups["common"] = [w[i] for i in rng.choice(len(w), size=n * len(letters), replace=False, p=p / p.sum())]
    return groups


def letter_recall(readings: list[str], texts: list[str], letter: str) -> float:
    """Share of `letter`'s occurrences in `texts` that the readings hold (per word, capped)."""
    found = sum(min(r.lower().count(letter), t.lower().count(letter)) for r, t in zip(readings, texts))
    total = sum(t.lower().count(letter) for t in texts)
    return found / total if total else float("nan")


def judged(images: dict, judges) -> dict:
    """{key: (the judges' reading, the word's feature tokens)} for every image, each read once."""
    keys = list(images)
    words = [images[k] for k in keys]
    return dict(zip(keys, zip(judges.read(words), judges.describe(words)["tokens"])))


def score(groups: dict, writers: list[str], real: dict, fake: dict) -> dict:
    """Per group, from `judged` real and generated words: letter recall (real / generated), CER
    (real / generated), dCER, HWD."""
    out = {}
    for g, texts in groups.items():
        keys = [(w, t) for w in writers for t in texts]
        r_read, f_read = [real[k][0] for k in keys], [fake[k][0] for k in keys]
        all_texts = [t for _, t in keys]
        row = {
            "words": len(keys),
            "cer_real": cer(r_read, all_texts),
            "cer_generated": cer(f_read, all_texts),
        }
        row["dcer"] = row["cer_generated"] - row["cer_real"]
        if g != "common":
            row["recall_real"] = letter_recall(r_read, all_texts, g)
            row["recall_generated"] = letter_recall(f_read, all_texts, g)
        who = [w for w, _ in keys]
        row["hwd"] = hwd(
            tokens_by_writer([real[k][1] for k in keys], who),
            tokens_by_writer([fake[k][1] for k in keys], who),
        )
        out[g] = row
    return out


def markdown(result: dict) -> str:
    labels = [m["label"] for m in result["models"]]
    lines = [
        f"# Rare letters on `{result['data']}`",
        "",
        f"{result['writers']} unseen writers, {result['words_per_letter']} words per letter (the same for every "
        f"writer; 'common': {result['words_per_letter'] * len(result['letters'])} words without any of "
        f"{result['letters']}), k = {result['k']} style words of the writer, seed {result['seed']}. Recall: share "
        "of the letter's occurrences that the judges' recognizer finds in its reading (real = the writer's font "
        "rendering of the same words). HWD: each writer's generated vs real words of the group.",
        "",
        "| group | recall real | "
        + " | ".join(f"recall {x}" for x in labels)
        + " | CER real | "
        + " | ".join(f"CER {x}" for x in labels)
        + " | "
        + " | ".join(f"HWD {x}" for x in labels)
        + " |",
        "|---|" + "---:|" * (2 + 3 * len(labels)),
    ]
    for g in [*result["letters"], "common"]:
        rows = [m["groups"][g] for m in result["models"]]
        rec = (
            [f"{rows[0]['recall_real']:.2f}", *(f"{r['recall_generated']:.2f}" for r in rows)]
            if g != "common"
            else ["-"] * (1 + len(rows))
        )
        lines.append(
            f"| {g} | "
            + " | ".join(rec)
            + f" | {rows[0]['cer_real']:.3f} | "
            + " | ".join(f"{r['cer_generated']:.3f}" for r in rows)
            + " | "
            + " | ".join(f"{r['hwd']:.2f}" for r in rows)
            + " |"
        )
    lines += ["", "Models: " + "; ".join(f"{m['label']} = `{m['path']}`" for m in result["models"]), ""]
    return "\n".join(lines)


def figure(rows: list[tuple[str, list[np.ndarray]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gap = np.full((32, 14), 255, np.uint8)
    strips = [np.concatenate([x for im in ims for x in (im, gap)], axis=1) for _, ims in rows]
    width = max(s.shape[1] for s in strips)
    fig, axes = plt.subplots(len(rows), 1, figsize=(width / 70 + 2, 0.62 * len(rows) + 0.5))
    for ax, (label, _), s in zip(np.atleast_1d(axes), rows, strips):
        ax.imshow(
            np.pad(s, ((0, 0), (0, width - s.shape[1])), constant_values=255), cmap="gray", vmin=0, vmax=255
        )
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        for sp in ax.spines.values():
            sp.set_visible(False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--models", nargs="+", type=Path, required=True, help="model folders or training checkpoints"
    )
    ap.add_argument("--labels", nargs="+", default=None)
    ap.add_argument(
        "--data", required=True, help="a built font folder (the writers' fonts render the real words)"
    )
    ap.add_argument(
        "--judges", default=None, help="a judges folder, or a cache root (trained there on a miss)"
    )
    ap.add_argument(
        "--judges-data",
        nargs="+",
        default=None,
        help="train the judges on these folders' training words (default: --data's); with the "
        "--rare-letters folder beside the full one the recognizer has seen the letters it is asked about",
    )
    ap.add_argument("--letters", default=RARE_LETTERS)
    ap.add_argument("--words-per-letter", type=int, default=8)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figure-writers", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "style_fidelity")
    ap.add_argument("--name", default="rare_letters")
    ap.add_argument("--figure", type=Path, default=None)
    args = ap.parse_args(argv)
    labels = args.labels or [p.name for p in args.models]
    if len(labels) != len(args.models):
        ap.error("give one --labels entry per --models entry")

    torch.manual_seed(args.seed)
    data = load_data(args.data)
    judges = judges_at(
        args.judges, load_data(args.judges_data)["train"] if args.judges_data else data["train"]
    )
    metas = {w["id"]: w for w in load_writers(args.data) if w["split"] == "test"}
    writers = sorted(set(data["test"].writers) & set(metas))
    groups = word_groups(args.letters, args.words_per_letter, args.seed)
    group_texts = sorted({t for ts in groups.values() for t in ts})
    texts = sorted(set(group_texts) | set(FIGURE_WORDS))
    rng = np.random.default_rng(args.seed)
    real = {(w, t): render_word(metas[w], t, rng) for w in writers for t in texts}
    scored = [(w, t) for w in writers for t in group_texts]
    real_judged = judged({k: real[k] for k in scored}, judges)
    fig_writers = writers[: args.figure_writers]
    fig_rows = []
    result = dict(
        data=str(args.data),
        writers=len(writers),
        letters=args.letters,
        words_per_letter=args.words_per_letter,
        k=args.k,
        seed=args.seed,
        groups=groups,
        models=[],
    )
    models_fig = {w: [] for w in fig_writers}
    for path, label in zip(args.models, labels):
        model = sampling_generator(path)
        fake = {}
        for w in writers:
            memory = style_memory(model, data["test"], w, args.k, args.seed)
            for t, im in zip(texts, write_texts(model, memory, texts)):
                fake[(w, t)] = im
        result["models"].append(
            {
                "label": label,
                "path": str(path),
                "groups": score(groups, writers, real_judged, judged({k: fake[k] for k in scored}, judges)),
            }
        )
        for w in fig_writers:
            models_fig[w].append((f"{w}\n{label}", [fake[(w, t)] for t in FIGURE_WORDS]))
        print(f"{label}: scored", flush=True)
    for w in fig_writers:
        fig_rows += [(f"{w}\nreal (font)", [real[(w, t)] for t in FIGURE_WORDS]), *models_fig[w]]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    md = markdown(result)
    (args.out / f"{args.name}.md").write_text(md)
    print(md)
    if args.figure:
        figure(fig_rows, args.figure, f"rare letters, unseen writers: real (font) and {', '.join(labels)}")


if __name__ == "__main__":
    main()
