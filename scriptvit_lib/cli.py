"""Command line: `scriptvit <command> ...` (also `python -m scriptvit_lib ...`).

Each command's arguments are declared here; the work is done by library functions, so the
notebooks and the CLI call the same code. Errors meant for the user (`UserError`) are printed
as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys


class UserError(Exception):
    """A problem with the user's input or environment, reported as one clear line."""


def _data_build(args: argparse.Namespace) -> None:
    import warnings

    from .dataset import build_dataset

    vocab = None
    if args.vocab is not None:
        try:
            with open(args.vocab, encoding="utf-8") as fh:
                vocab = fh.read().split()
        except OSError as e:
            raise UserError(f"cannot read --vocab {args.vocab}: {e.strerror}") from None
    # skipped fonts etc. are warnings: show them as one plain line each
    warnings.showwarning = lambda msg, *a, **k: print(f"scriptvit: warning: {msg}", file=sys.stderr)
    build_dataset(
        out=args.out,
        families=args.families,
        fonts_dir=args.fonts_dir,
        writers_per_family=args.writers_per_family,
        words_per_writer=args.words,
        seed=args.seed,
        workers=args.workers,
        vocab=vocab,
    )


def _train(args: argparse.Namespace) -> None:
    from .data import load_data
    from .trainer import TrainingDiverged, train, train_config_from_args

    overrides = {}
    for item in args.set or []:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value) if value[:1] in "[{0123456789-tfn" else value
    cfg = train_config_from_args(
        recipe=args.recipe,
        preset=args.preset,
        out=args.out,
        steps=args.steps,
        minutes=args.minutes,
        batch_size=args.batch_size,
        k=args.k,
        lr=args.lr,
        w_recon=args.w_recon,
        w_adv=args.w_adv,
        w_ctc=args.w_ctc,
        w_writer=args.w_writer,
        balance=args.balance,
        g_every=args.g_every,
        pretrain_steps=args.pretrain_steps,
        ema=args.ema,
        amp=args.amp,
        grad_clip=args.grad_clip,
        seed=args.seed,
        device=args.device,
        resume=args.resume,
        ckpt_every_minutes=args.ckpt_every_minutes,
        ckpt_every_steps=args.ckpt_every_steps,
        sample_every=args.sample_every,
        model_overrides=overrides,
    )
    if not (cfg.steps or cfg.minutes):
        raise UserError("say how long to train: --steps S or --minutes M")
    try:
        train(cfg, load_data(args.data))
    except TrainingDiverged as e:
        raise UserError(str(e)) from None


def _demo(args: argparse.Namespace) -> None:
    """Build the default dataset (if needed) and draw its writers."""
    from pathlib import Path

    from .dataset import build_dataset, writer_grid_figure

    root = build_dataset(out=args.data, families="core", words_per_writer=300, workers=args.workers)
    out = Path(args.figures) / "writers.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    writer_grid_figure(root, text="handwriting", n_writers=38, path=out)
    print(f"wrote {out}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scriptvit", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="build or convert datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)
    b = dsub.add_parser("build", help="render the font-writer dataset")
    b.add_argument("--out", default="data/fonts", help="output folder (default: data/fonts)")
    b.add_argument(
        "--families",
        default="core",
        help="'core' (38 families), 'all' (every family in the shipped list), a comma list, "
        "or a text file with one family a line",
    )
    b.add_argument("--fonts-dir", default=None, help="use these .ttf/.otf/.woff files instead of npm")
    b.add_argument("--writers-per-family", type=int, default=1)
    b.add_argument("--words", type=int, default=300, help="words per writer")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument(
        "--vocab", default=None, help="text file of words to write (default: English by frequency)"
    )
    b.add_argument("--workers", type=int, default=2)
    b.set_defaults(func=_data_build)

    t = sub.add_parser("train", help="train ScriptViT (torchrun for several GPUs: same arguments)")
    t.add_argument("--data", default="data/fonts", help="built font dataset, IAM folder or IAM-32.pickle")
    t.add_argument("--out", default="runs/cpu", help="run folder (checkpoints, samples, logs, model/)")
    t.add_argument("--preset", default="cpu", help="model preset: tiny | cpu | paper")
    t.add_argument(
        "--recipe",
        default="cpu",
        help="'paper' (HWT/VATr's losses and Adam) or 'cpu' (+ L1, pretraining, EMA)",
    )
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--minutes", type=float, default=None)
    t.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    for name, typ in [
        ("batch-size", int), ("k", int), ("lr", float), ("w-recon", float), ("pretrain-steps", int),
        ("w-adv", float), ("w-ctc", float), ("w-writer", float), ("balance", float), ("g-every", int),
        ("ema", float), ("grad-clip", float), ("seed", int), ("ckpt-every-minutes", float),
        ("ckpt-every-steps", int), ("sample-every", int),
    ]:  # fmt: skip
        t.add_argument(f"--{name}", type=typ, default=None, help="(default: the recipe's)")
    t.add_argument("--amp", choices=["none", "bf16", "fp16"], default=None)
    t.add_argument("--device", default=None, help="auto | cpu | cuda")
    t.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a model-config field")
    t.set_defaults(func=_train)

    d = sub.add_parser("demo", help="what `make demo` runs")
    d.add_argument("--data", default="data/fonts")
    d.add_argument("--figures", default="figures")
    d.add_argument("--workers", type=int, default=2)
    d.set_defaults(func=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as e:
        print(f"scriptvit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scriptvit: interrupted (finished work is kept; rerun to resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
