"""Command line: `scriptvit <command> ...` (also `python -m scriptvit_lib ...`).

Each command's arguments are declared here; the work is done by library functions, so the
notebooks and the CLI call the same code. Errors meant for the user (`UserError`) are printed
as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import sys


class UserError(Exception):
    """A problem with the user's input or environment, reported as one clear line."""


def _data_build(args: argparse.Namespace) -> None:
    from .dataset import build_dataset

    build_dataset(
        out=args.out,
        families=args.families,
        fonts_dir=args.fonts_dir,
        writers_per_family=args.writers_per_family,
        words_per_writer=args.words,
        seed=args.seed,
        workers=args.workers,
    )


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
    b.add_argument("--workers", type=int, default=2)
    b.set_defaults(func=_data_build)
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
