"""Command line: `scriptvit <command> ...` (also `python -m scriptvit_lib ...`).

Each command's arguments are declared here; the work is done by library functions, so the
notebooks and the CLI call the same code. Errors meant for the user (`UserError`) are printed
as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .charset import RARE_LETTERS
from .errors import UserError


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
        rare_letters=args.rare_letters,
        splits=("train",) if args.only_train else None,
        glyph_variation=args.glyph_variation,
    )


def parse_overrides(items: list[str]) -> dict:
    """`--set FIELD=VALUE` items -> {field: value}: numbers, booleans and lists as JSON, anything
    else (e.g. `width_mode=predicted`, `style_modulation=film`) as a string."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects FIELD=VALUE, got {item!r}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def train_config_from_namespace(args: argparse.Namespace):
    """`scriptvit train`'s arguments -> a TrainConfig (also used by bench/gpu_leg, which takes
    the same flags as a string)."""
    from .trainer import train_config_from_args

    overrides = parse_overrides(args.set or [])
    return train_config_from_args(
        recipe=args.recipe,
        preset=args.preset,
        out=args.out,
        steps=args.steps,
        minutes=args.minutes,
        batch_size=args.batch_size,
        k=args.k,
        k_max=args.k_max,
        lr=args.lr,
        lr_decay_start=args.lr_decay_start,
        lr_decay_end=args.lr_decay_end,
        lr_end_factor=args.lr_end_factor,
        w_recon=args.w_recon,
        w_adv=args.w_adv,
        w_ctc=args.w_ctc,
        w_writer=args.w_writer,
        w_width=args.w_width,
        w_style_id=args.w_style_id,
        w_style_nce=args.w_style_nce,
        nce_tau=args.nce_tau,
        w_feat=args.w_feat,
        w_match=args.w_match,
        balance=args.balance,
        g_every=args.g_every,
        pretrain_steps=args.pretrain_steps,
        pretrain_critics=args.pretrain_critics,
        ema=args.ema,
        amp=args.amp,
        grad_clip=args.grad_clip,
        seed=args.seed,
        device=args.device,
        resume=args.resume,
        init_from=args.init_from,
        fresh_critics=tuple(args.fresh_critics or ()),
        critics_from=args.critics_from,
        ckpt_every_minutes=args.ckpt_every_minutes,
        ckpt_every_steps=args.ckpt_every_steps,
        keep_last=args.keep_last,
        sample_every=args.sample_every,
        train_writers=args.train_writers,
        tensorboard=args.tensorboard,
        data=tuple(getattr(args, "data", None) or ()),
        model_overrides=overrides,
    )


def _train(args: argparse.Namespace) -> None:
    from .data import load_data
    from .trainer import CheckpointError, TrainingDiverged, train

    cfg = train_config_from_namespace(args)
    if not (cfg.steps or cfg.minutes):
        raise UserError("say how long to train: --steps S or --minutes M")
    try:
        train(cfg, load_data(args.data))
    except (TrainingDiverged, CheckpointError) as e:
        raise UserError(str(e)) from None


def _eval(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .evaluate import evaluate, markdown_report

    if not Path(args.model).is_dir():
        raise UserError(
            f"no model at {args.model}: pass the folder save_pretrained wrote (e.g. runs/cpu/model)"
        )
    try:
        result = evaluate(
            args.model,
            args.data,
            split=args.split,
            k=args.k,
            n_per_writer=args.n_per_writer,
            seed=args.seed,
            judges_dir=args.judges,
            protocol=args.protocol,
            out=args.out,
            inception_weights=args.inception_weights,
            hwd_weights=args.hwd_weights,
            match_width=args.match_width,
            batch_size=args.batch_size,
            device=args.device,
        )
    except (FileNotFoundError, ModuleNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    print(markdown_report(result))
    print(f"wrote {Path(args.out) / 'metrics.json'} and {Path(args.out) / 'metrics.md'}")


def _demo(args: argparse.Namespace) -> None:
    """Build the default dataset (if needed), draw its writers and, with the shipped model,
    write a sentence in hands it never trained on."""
    from pathlib import Path

    from .dataset import build_dataset, load_font_dataset, writer_grid_figure

    root = build_dataset(out=args.data, families="core", words_per_writer=300, workers=args.workers)
    figures = Path(args.figures)
    figures.mkdir(parents=True, exist_ok=True)
    writer_grid_figure(root, text="handwriting", n_writers=38, path=figures / "writers.png")
    print(f"wrote {figures / 'writers.png'}")
    if not (Path(args.model) / "model.safetensors").exists():
        print(f"no trained model at {args.model}: skipping figures/demo.png (see README, 'Training')")
        return
    from .demo import demo_figure, demo_styles

    listed = Path(args.model) / "training_writers.json"  # written by bench/ship_model.py
    trained_on = set(json.loads(listed.read_text())) if listed.exists() else set()
    styles = demo_styles(Path(args.examples), load_font_dataset(root)["test"], exclude=trained_on)
    demo_figure(args.model, styles, figures / "demo.png")
    print(f"wrote {figures / 'demo.png'}")


def _write(args: argparse.Namespace) -> None:
    """Pictures of the user's handwriting + a text -> PNG(s) of the text in that hand."""
    import warnings
    from pathlib import Path

    from .charset import Charset
    from .writer import Writer, parse_text

    if args.text_file is not None:
        try:
            text = Path(args.text_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            why = getattr(e, "strerror", None) or e
            raise UserError(f"cannot read --text-file {args.text_file}: {why}") from None
    else:
        text = args.text
    if args.variations < 1:
        raise UserError(f"--variations must be >= 1, got {args.variations}")
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"):
        raise UserError(f"-o {out}: give an image file name, e.g. out.png")
    parse_text(text, Charset(), args.replace_unknown)  # a bad text fails before any image work
    if args.adapt_feat_d and args.style_texts is None:
        raise UserError("--adapt-feat-d fits the style to its words: give --style-texts too")
    writer = Writer.from_images(args.style, model=args.model, k=args.k, seed=args.seed)
    for note in writer.notes:
        print(f"scriptvit: note: {note}", file=sys.stderr)
    if args.style_texts is not None:
        writer.adapt(args.style_texts.split(), steps=args.adapt_steps, feat_d=args.adapt_feat_d)
        print(
            f"scriptvit: adapting the style to its {len(writer.words)} words ({args.adapt_steps} steps)",
            file=sys.stderr,
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kw = dict(width=args.width, seed=args.seed, replace_unknown=args.replace_unknown)
        if args.variations == 1:
            images, paths = [writer.write_lines(text, **kw)], [out]
        else:
            images = writer.variations(text, args.variations, **kw)
            paths = [out.with_name(f"{out.stem}_{v + 1}{out.suffix}") for v in range(args.variations)]
    for w in caught:
        print(f"scriptvit: warning: {w.message}", file=sys.stderr)
    for image, path in zip(images, paths):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot write {path}: {e}") from None
        print(f"wrote {path}")


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
    b.add_argument(
        "--glyph-variation",
        type=float,
        default=0.0,
        metavar="G",
        help="with --writers-per-family > 1: each writer of a family after the first changes the font's "
        "letters its own way (per letter: width, height, lean, baseline; G = 1 the designed strength, "
        "0 = off); the first writer keeps the font's letters",
    )
    b.add_argument("--words", type=int, default=300, help="words per writer")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument(
        "--vocab", default=None, help="text file of words to write (default: English by frequency)"
    )
    b.add_argument(
        "--rare-letters",
        nargs="?",
        const=RARE_LETTERS,
        default=None,
        metavar="LETTERS",
        help=f"write only words with these letters, each letter equally often (default set: {RARE_LETTERS}, "
        "the six that running English writes least); for a folder that adds words: --only-train",
    )
    b.add_argument(
        "--only-train",
        action="store_true",
        help="render only the training families' writers (same ids and styles as a full build with "
        "the same --seed): a folder to train on beside the full one, `train --data FULL EXTRA`",
    )
    b.add_argument("--workers", type=int, default=2)
    b.set_defaults(func=_data_build)

    t = sub.add_parser("train", help="train ScriptViT (torchrun for several GPUs: same arguments)")
    t.add_argument(
        "--data",
        nargs="+",
        default=["data/fonts"],
        help="built font dataset, IAM folder or IAM-32.pickle; several built font folders are "
        "trained on together (their writers must agree, e.g. a build with --only-train beside the full one)",
    )
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
    t.add_argument(
        "--init-from",
        default=None,
        help="start a new run from this checkpoint's weights (fresh optimizers), e.g. with "
        "--set style_modulation=film; or from a model folder (its generator and recognizer, and "
        "the critics D, W, S of its critics.safetensors where it has one - else they start fresh: "
        "give --pretrain-steps to train W on real words first)",
    )
    for name, typ in [
        ("batch-size", int), ("k", int), ("k-max", int), ("lr", float), ("w-recon", float),
        ("lr-decay-start", int), ("lr-decay-end", int), ("lr-end-factor", float),
        ("pretrain-steps", int),
        ("w-adv", float), ("w-ctc", float), ("w-writer", float), ("w-width", float), ("w-style-id", float),
        ("w-style-nce", float), ("nce-tau", float), ("w-feat", float), ("w-match", float),
        ("balance", float), ("g-every", int), ("ema", float), ("grad-clip", float), ("seed", int),
        ("ckpt-every-minutes", float), ("ckpt-every-steps", int), ("sample-every", int),
        ("train-writers", int), ("keep-last", int),
    ]:  # fmt: skip
        t.add_argument(f"--{name}", type=typ, default=None, help="(default: the recipe's)")
    t.add_argument(
        "--pretrain-critics",
        action="store_true",
        default=None,
        help="pre-training also trains D on the frozen generator's fakes and the style-id head "
        "(fine-tuning a model folder, whose critics start fresh)",
    )
    t.add_argument(
        "--fresh-critics",
        nargs="+",
        choices=["D", "W", "M"],
        default=None,
        help="with --init-from: these critics start fresh (e.g. a wider D via --set d_ch=32)",
    )
    t.add_argument(
        "--critics-from",
        default=None,
        help="a training checkpoint (same training writers) whose D, W and style-id head replace "
        "the new run's, e.g. to fine-tune a model folder against trained critics",
    )
    t.add_argument("--amp", choices=["none", "bf16", "fp16"], default=None)
    t.add_argument("--tensorboard", action="store_true", default=None, help="also log to <out>/tensorboard")
    t.add_argument("--device", default=None, help="auto | cpu | cuda")
    t.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a model-config field")
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="score a trained model: FID, KID, HWD, CER/dCER, writer-id, + floors")
    e.add_argument("--model", required=True, help="model folder (model.safetensors + config.json)")
    e.add_argument("--data", default="data/fonts", help="built font dataset, IAM folder or IAM-32.pickle")
    e.add_argument(
        "--split", choices=["both", "val", "test"], default="both", help="val = seen writers, test = unseen"
    )
    e.add_argument("--k", type=int, default=5, help="style words per generated word")
    e.add_argument("--n-per-writer", type=int, default=100, help="words per writer in each compared set")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", default="results/eval", help="folder for metrics.json and metrics.md")
    e.add_argument(
        "--protocol", choices=["full", "hwd", "ganwriting"], default="full", help="what FID/KID look at"
    )
    e.add_argument(
        "--judges",
        default=None,
        help="judges folder (default: trained once per dataset, cached in "
        "$SCRIPTVIT_JUDGES or results/judges)",
    )
    e.add_argument(
        "--inception-weights", default=None, help="pt_inception-2015-12-05 .pth: FID/KID with Inception"
    )
    e.add_argument("--hwd-weights", default=None, help="HWD's VGG16_class_10400.pth: HWD with VGG16")
    e.add_argument(
        "--match-width",
        action="store_true",
        help="resize generated words to their real counterparts' widths (diagnostic)",
    )
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--device", default="cpu")
    e.set_defaults(func=_eval)

    w = sub.add_parser("write", help="write a text in the hand of a few pictures of handwriting")
    w.add_argument(
        "--style",
        nargs="+",
        required=True,
        metavar="IMAGE",
        help="photos or scans of your handwriting: words, lines or a page",
    )
    src = w.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="what to write")
    src.add_argument("--text-file", help="a UTF-8 text file to write (blank lines = paragraphs)")
    w.add_argument("-o", "--out", required=True, help="output image (with --variations N: OUT_1 ... OUT_N)")
    w.add_argument(
        "--model",
        default=os.environ.get("SCRIPTVIT_MODEL", "models/scriptvit-cpu"),
        help="trained model folder (default: $SCRIPTVIT_MODEL or models/scriptvit-cpu)",
    )
    w.add_argument("--seed", type=int, default=0, help="which style words and spacing jitter")
    w.add_argument("--variations", type=int, default=1, help="write N versions of the text")
    w.add_argument("--width", type=int, default=None, help="wrap lines to this many px")
    w.add_argument(
        "--replace-unknown",
        default=None,
        metavar="CHAR",
        help="write characters the model lacks as CHAR ('' drops them)",
    )
    w.add_argument("--k", type=int, default=None, help="style words per memory (default 5, at most 15)")
    w.add_argument(
        "--style-texts",
        default=None,
        metavar="TEXT",
        help="what the style pictures say, word by word in reading order: the style is fitted to "
        "them before writing (test-time adaptation; a closer likeness, slower)",
    )
    w.add_argument("--adapt-steps", type=int, default=40, help="adaptation steps per style draw")
    w.add_argument(
        "--adapt-feat-d",
        type=float,
        default=0.0,
        metavar="W",
        help="also fit the style in the discriminator's features with weight W (e.g. 7; the model "
        "folder's D; README, 'Style fidelity')",
    )
    w.set_defaults(func=_write)

    d = sub.add_parser("demo", help="what `make demo` runs")
    d.add_argument("--data", default="data/fonts")
    d.add_argument("--figures", default="figures")
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--model", default="models/scriptvit-cpu")
    d.add_argument("--examples", default="examples")
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
