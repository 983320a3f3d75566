"""Style fidelity of a model on unseen writers: issue 8's five targets beside floors and baselines.

    python bench/style_fidelity.py --model models/scriptvit-cpu --data data/fonts-all \
        --exclude-from data/fonts --name scriptvit-cpu --figure figures/style_fidelity.png

`--data` should have >= 20 unseen (test) writers: `scriptvit data build --families all` has 31.
`--exclude-from DATA`: test writers that are *training* writers of DATA (the data the model was
trained on) are left out, so every scored writer is truly unseen by the model. The judges are
those of `--data`'s training split (cached in `--judges`, trained on a miss: ~10 min).
Writes `<out>/<name>.json` and `<out>/<name>.md`; see `scriptvit_lib/fidelity.py` for what
each number means.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scriptvit_lib.adaptation import WHAT, AdaptConfig, load_critic, load_recognizer  # noqa: E402
from scriptvit_lib.config import RESAMPLE_MODES  # noqa: E402
from scriptvit_lib.data import load_data  # noqa: E402
from scriptvit_lib.features import judges_at  # noqa: E402
from scriptvit_lib.fidelity import (  # noqa: E402
    fidelity_figure,
    per_writer_correlations,
    per_writer_figure,
    style_fidelity,
)
from scriptvit_lib.generator import ScriptViT  # noqa: E402

ROWS = (
    ("model", "model (k style words of the writer)"),
    ("mean", "mean-style baseline"),
    ("nearest", "nearest-training-writer baseline"),
    ("floor", "real-vs-real floor"),
    ("one_pass", "one pass, the adapted model's style words (with --adapt-steps)"),
)


def markdown(result: dict) -> str:
    r, t = result["rows"], result["targets"]
    lines = [
        f"# Style fidelity: `{result['model']}` on `{result['data']}`",
        "",
        f"{result['writers']} unseen writers, {result['words_per_set']} words per set, k = {result['k']}, "
        f"seed {result['seed']}; judges trained on the training writers of `{result['data']}` only; "
        f"FID/HWD: judges' feature net, protocol full. CER of the real words: {result['cer_real']:.3f}."
        + (
            f" Test-time adaptation: {a['steps']} steps, lr {a['lr']}, {a['what']}, L1 {a.get('w_l1', 1.0)}, "
            f"feature {a.get('w_feat', 0)} (D: {a.get('w_feat_d', 0)}), hand {a.get('w_hand', 0)}, legibility anchor "
            f"{a.get('w_ctc', 0)} ({a.get('draws', 1)} draw(s) of k per writer)."
            if (a := result.get("adapt"))
            else ""
        )
        + (
            f" Words resampled with `{result['resample']}` instead of the model's own kernel (diagnostic)."
            if result.get("resample")
            else ""
        ),
        "",
        "| | attribution (judges) | attribution (hand-crafted stats) | FID | HWD | sharpness / real | CER | dCER |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, name in ROWS:
        if key not in r:
            continue
        m = r[key]
        if key == "model" and result.get("adapt"):
            name = "model, adapted to the writer's k style words"
        lines.append(
            f"| {name} | {m['attribution_learned']:.3f} | {m['attribution_stats']:.3f} | {m['fid']:.1f} "
            f"| {m['hwd']:.2f} | {m['sharpness_ratio']:.2f} | {m['cer']:.3f} | {m['dcer']:+.3f} |"
        )
    d = r["model"]["distinctness"]
    ok = lambda p: "**PASS**" if p else "FAIL"  # noqa: E731
    lines += [
        "",
        "| target | goal | measured | |",
        "|---|---|---|---|",
        f"| 1 attribution | ≥ 0.8 × floor | {t['1_attribution']['value']:.3f} = "
        f"{t['1_attribution']['ratio']:.2f} × floor ({t['1_attribution']['floor']:.3f}) | {ok(t['1_attribution']['pass'])} |",
        f"| 2 distribution | ≤ 2 × floor | FID {t['2_distribution']['fid']:.1f} "
        f"({t['2_distribution']['fid'] / t['2_distribution']['fid_floor']:.1f} × floor), HWD "
        f"{t['2_distribution']['hwd']:.2f} ({t['2_distribution']['hwd'] / t['2_distribution']['hwd_floor']:.1f} × floor) "
        f"| {ok(t['2_distribution']['pass'])} |",
        f"| 3 sharpness | within 20 % of real | {t['3_sharpness']['ratio']:.2f} × real | {ok(t['3_sharpness']['pass'])} |",
        f"| 4 legibility | dCER ≤ 0.05 | {t['4_legibility']['dcer']:+.3f}"
        f"{' (more legible than the real words)' if t['4_legibility']['more_legible_than_real'] else ''} "
        f"| {ok(t['4_legibility']['pass'])} |",
        f"| 5 style matters | beats both baselines on 1-3; between/within > 1 | beats mean: "
        f"{t['5_style_matters']['beats_mean']}, beats nearest: {t['5_style_matters']['beats_nearest']}; "
        f"same text, two writers vs two draws of one: {d['between_writers']:.3f} / {d['within_writer']:.3f} "
        f"= {d['ratio']:.2f} | {ok(t['5_style_matters']['pass'])} |",
    ]
    if sep := result.get("separability"):
        lines += [
            "",
            f"**Style separability** (before any word is generated; {sep['writers']} writers, "
            f"{sep['sets_per_writer']} disjoint sets of k = {sep['k']} real words each, leave-one-out nearest "
            f"centroid, chance {sep['chance']:.3f}): the model's style memory {sep['memory_mean']:.3f} "
            f"(token mean) / {sep['memory_mean_std']:.3f} (mean and std); the judges' embedding "
            f"{sep['judges']:.3f}.",
        ]
    if geo := result.get("geometry"):
        g = lambda n: f"{geo[n]['direction']:.3f} / {geo[n]['magnitude']:.3f} / {geo[n]['shift']:.3f}"  # noqa: E731
        lines += [
            "",
            "**Centroid geometry** in the judges' embedding (each writer's centroid as its deviation from the "
            "mean over writers, against the real words'; direction = mean cosine, magnitude = mean norm ratio, "
            f"shift = distance of the means / mean real deviation): model {g('model')}; nearest-writer "
            f"baseline {g('nearest')}; real-vs-real floor {g('floor')}.",
        ]
    if per := result.get("per_writer"):
        rho = per_writer_correlations(per)
        lines += [
            "",
            "## Per writer (attribution by the judges' embedding; worst first)",
            "",
            f"Spearman over writers, model attribution vs: floor {rho['floor']:+.2f}, novelty "
            f"{rho['novelty']:+.2f}, nearest-writer baseline {rho['nearest_baseline']:+.2f}. Novelty = cosine "
            "distance of the writer's real words (judges' embedding) to the closest training writer.",
            "",
            "| writer | model | floor | nearest baseline | model words most often given to | HWD model / floor "
            "| novelty | closest training writer |",
            "|---|---:|---:|---:|---|---:|---:|---|",
        ]
        for w in sorted(per, key=lambda w: (per[w]["model"], w)):
            p = per[w]
            conf = (
                f"{p['model_confused_with']} ({p['model_confused_share']:.2f})"
                if p["model_confused_with"]
                else "–"
            )
            lines.append(
                f"| {w} | {p['model']:.2f} | {p['floor']:.2f} | {p['nearest_baseline']:.2f} | {conf} "
                f"| {p['hwd_model']:.1f} / {p['hwd_floor']:.1f} | {p['novelty']:.3f} | {p['nearest_training_writer']} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "scriptvit-cpu"))
    ap.add_argument("--data", default=str(ROOT / "data" / "fonts-all"))
    ap.add_argument("--exclude-from", default=None, help="data the model was trained on")
    ap.add_argument(
        "--judges", default=None, help="judges folder, or a cache root (default: $SCRIPTVIT_JUDGES)"
    )
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--n-per-writer", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--resample",
        default=None,
        choices=RESAMPLE_MODES,
        help="write with this width-resampling kernel instead of the model's own (a diagnostic)",
    )
    ap.add_argument("--name", default=None, help="result file name (default: the model folder's name)")
    ap.add_argument("--out", default=str(ROOT / "results" / "style_fidelity"))
    ap.add_argument("--figure", default=None, help="also draw the figure (rows = unseen writers) here")
    ap.add_argument("--figure-only", action="store_true", help="draw --figure without scoring (minutes less)")
    ap.add_argument("--per-writer-figure", default=None, help="also draw attribution per writer here")
    ap.add_argument(
        "--adapt-steps", type=int, default=0, help="test-time adaptation steps per writer (0 = one pass)"
    )
    ap.add_argument("--adapt-lr", type=float, default=AdaptConfig.lr)
    ap.add_argument("--adapt-what", default=AdaptConfig.what, choices=WHAT)
    ap.add_argument("--adapt-ctc", type=float, default=AdaptConfig.w_ctc, help="legibility anchor weight")
    ap.add_argument(
        "--adapt-draws", type=int, default=1, help="draws of k style words per writer, each adapted to"
    )
    ap.add_argument("--adapt-l1", type=float, default=AdaptConfig.w_l1, help="paired pixel L1 weight")
    ap.add_argument(
        "--adapt-feat",
        type=float,
        default=AdaptConfig.w_feat,
        help="paired feature loss weight (in W's trunk)",
    )
    ap.add_argument(
        "--adapt-feat-d",
        type=float,
        default=AdaptConfig.w_feat_d,
        help="paired feature loss weight in the discriminator D's trunk",
    )
    ap.add_argument(
        "--adapt-hand", type=float, default=AdaptConfig.w_hand, help="hand loss weight (W-embedding centroid)"
    )
    ap.add_argument(
        "--recognizer", default=None, help="R for the anchor: model folder or checkpoint (default: --model)"
    )
    ap.add_argument(
        "--critic",
        default=None,
        help="W (and D) for the feature / hand losses: folder or checkpoint (default: --model)",
    )
    args = ap.parse_args()

    t0 = time.time()
    data = load_data(args.data)
    judges = judges_at(args.judges, data["train"])
    excluded = []
    if args.exclude_from:
        excluded = sorted(load_data(args.exclude_from)["train"].writers)
    model = ScriptViT.from_pretrained(args.model)
    if args.resample:
        model.config.resample = args.resample
    adapt = None
    if args.adapt_steps:
        adapt = AdaptConfig(
            args.adapt_steps,
            args.adapt_lr,
            args.adapt_what,
            w_ctc=args.adapt_ctc,
            w_l1=args.adapt_l1,
            w_feat=args.adapt_feat,
            w_hand=args.adapt_hand,
            w_feat_d=args.adapt_feat_d,
        )
        if adapt.w_ctc > 0:
            adapt.recognizer = load_recognizer(args.recognizer or args.model, model.config)
        if adapt.needs_critic:
            adapt.critic = load_critic(args.critic or args.model)
        if adapt.w_feat_d > 0:
            adapt.discriminator = load_critic(args.critic or args.model, "D")
    name = args.name or Path(args.model).name

    def figure(a, b) -> None:
        fidelity_figure(model, a, b, k=args.k, seed=args.seed, path=args.figure, adapt=adapt,
                        title=f"{name}: unseen writers - {args.k} style words | generated "
                        f"{'(one pass | adapted) ' if adapt else ''}| real (same words); "
                        "last row: mean style")  # fmt: skip
        print(f"wrote {args.figure}")

    if args.figure_only:  # the same halves and draws as a scored run, no scoring
        from scriptvit_lib.evaluate import halves

        if not args.figure:
            ap.error("--figure-only needs --figure PATH")
        test = data["test"].subset(writers=set(data["test"].writers) - set(excluded))
        figure(*halves(test, args.n_per_writer, args.seed))
        return
    result, extra = style_fidelity(
        model,
        data,
        judges,
        k=args.k,
        n_per_writer=args.n_per_writer,
        seed=args.seed,
        exclude_writers=excluded,
        adapt=adapt,
        adapt_draws=args.adapt_draws,
    )
    result = {"model": str(Path(args.model)), "data": str(Path(args.data)), **result}
    if args.resample:
        result["resample"] = args.resample
    result["seconds"] = round(time.time() - t0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    md = markdown(result)
    (out / f"{name}.md").write_text(md)
    print(md)
    if args.figure:
        figure(extra["a"], extra["b"])
    if args.per_writer_figure:
        per_writer_figure(result, args.per_writer_figure, title=f"{name}: attribution per unseen writer")
        print(f"wrote {args.per_writer_figure}")
    print(f"wrote {out / name}.json/.md in {result['seconds']} s")


if __name__ == "__main__":
    main()
