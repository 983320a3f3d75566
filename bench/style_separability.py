"""Does the style memory know the writer? `fidelity.style_separability` for several models.

    # the shipped model and its earlier versions (from git history), plus an untrained one
    for v in e69f8ce b938bf2 5e46915; do mkdir -p /tmp/$v; for f in model.safetensors config.json; do
        git show $v:models/scriptvit-cpu/$f > /tmp/$v/$f; done; done
    python bench/style_separability.py --data data/fonts-all --untrained \
        --models /tmp/e69f8ce /tmp/b938bf2 /tmp/5e46915 models/scriptvit-cpu --labels v1 v2 v3 v4
    # later: one more row (a newly shipped model), keeping those already scored
    python bench/style_separability.py --data data/fonts-all --models models/scriptvit-cpu --labels v8 --append

Each unseen (test) writer's real words are split into 8 disjoint sets of k = 5; each set is
described by the model's style memory (token mean) and by the judges' embedding; leave-one-out
nearest-centroid accuracy among the test writers says how well each identifies the writer.
Beside the generated words' attribution (results/style_fidelity), it locates the loss: a
memory that separates writers as well as the judges do, feeding words that are attributed far
less often, means the style is lost after the encoder. Writes
`results/style_fidelity/<name>.json` and `.md`. CPU: a few seconds per model (judges cached).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from scriptvit_lib.data import load_data  # noqa: E402
from scriptvit_lib.features import judges_at  # noqa: E402
from scriptvit_lib.fidelity import style_separability  # noqa: E402
from scriptvit_lib.generator import ScriptViT  # noqa: E402

CHAIN = ("fusion_output", "generated_raw_width", "generated")


def kept_rows(saved: dict, data: str, texts: list[str], labels: set[str]) -> list[dict]:
    """The saved rows that `--append` keeps: all but those of models scored again (by label).

    Rows are comparable only when scored on the same data with the same texts."""
    if Path(saved["data"]).resolve() != Path(data).resolve():
        raise ValueError(f"scored on {saved['data']}, not {data}")
    if saved["texts"] != texts:
        raise ValueError(f"scored with the texts {saved['texts']}, not {texts}")
    return [r for r in saved["rows"] if r["label"] not in labels]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=[str(ROOT / "models" / "scriptvit-cpu")])
    ap.add_argument("--labels", nargs="*", default=None)
    ap.add_argument("--untrained", action="store_true", help="also a randomly initialised model (seed 0)")
    ap.add_argument("--data", default=str(ROOT / "data" / "fonts-all"))
    ap.add_argument(
        "--judges", default=None, help="judges folder, or a cache root (default: $SCRIPTVIT_JUDGES)"
    )
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--texts", type=int, default=8, help="texts each set writes (0: memory and judges only)")
    ap.add_argument("--name", default="separability")
    ap.add_argument("--out", default=str(ROOT / "results" / "style_fidelity"))
    ap.add_argument(
        "--append",
        action="store_true",
        help="keep the rows already in <name>.json (same data and texts) and add these models' rows",
    )
    args = ap.parse_args()
    labels = args.labels or [Path(m).name for m in args.models]
    if len(labels) != len(args.models):
        sys.exit("--labels: one per model")
    data = load_data(args.data)
    judges = judges_at(args.judges, data["train"])
    models = [(lab, ScriptViT.from_pretrained(m), m) for lab, m in zip(labels, args.models)]
    if args.untrained:
        torch.manual_seed(0)
        models.insert(
            0, ("untrained", ScriptViT(models[-1][1].config), "random init, the last model's config")
        )
    import numpy as np

    pool = sorted({s.text for s in data["test"] if len(s.text) >= 3})
    texts = (
        [str(t) for t in np.random.default_rng(0).choice(pool, size=args.texts, replace=False)]
        if args.texts
        else []
    )
    rows = []
    saved_path = Path(args.out) / f"{args.name}.json"
    if args.append and saved_path.exists():
        try:
            rows = kept_rows(json.loads(saved_path.read_text()), args.data, texts, {m[0] for m in models})
        except ValueError as e:
            sys.exit(f"--append: {saved_path}: {e}; use another --name")
    for lab, model, src in models:
        r = style_separability(model, data["test"], judges, k=args.k, draws=args.draws, texts=texts)
        rows.append({"label": lab, "model": str(src), **r})
        chain = "".join(f", {key} {r[key]:.3f}" for key in CHAIN if key in r)
        print(
            f"{lab}: memory {r['memory_mean']:.3f} (mean+std {r['memory_mean_std']:.3f}){chain}, judges {r['judges']:.3f}"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(
        json.dumps({"data": args.data, "texts": texts, "rows": rows}, indent=1) + "\n"
    )
    r0 = rows[0]
    md = [
        f"# Style separability on `{args.data}`",
        "",
        f"{r0['writers']} unseen writers, {r0['sets_per_writer']} disjoint sets of k = {r0['k']} real words each; "
        f"leave-one-out nearest centroid (chance {r0['chance']:.3f}).",
        "",
        f"Then each set's memory writes the same {len(texts)} texts ({', '.join(texts)}): the fusion decoder's "
        "output (mean over characters and texts), and the judges' embedding of the words as synthesised "
        "on the model's canvas (16 px per character up to v7, 32 from v8) and as finally written (resampled to the predicted width), each a mean over "
        "the texts. Last column: the judges' embedding of the real sets themselves.",
        "",
        "| model | style memory (token mean) | (mean + std) | fusion output | generated, canvas | generated "
        "| real words (judges) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    fmt = lambda r, key: f"{r[key]:.3f}" if key in r else "–"  # noqa: E731
    md += [
        f"| {r['label']} | {r['memory_mean']:.3f} | {r['memory_mean_std']:.3f} | "
        + " | ".join(fmt(r, key) for key in CHAIN)
        + f" | {r['judges']:.3f} |"
        for r in rows
    ]
    (out / f"{args.name}.md").write_text("\n".join(md) + "\n")
    print(f"wrote {out / args.name}.json/.md")


if __name__ == "__main__":
    main()
