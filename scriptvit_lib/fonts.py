"""Handwriting fonts: which families to use, where to get them, which glyphs they really have.

The default data set imitates many writers with Google Fonts handwriting families (SIL OFL).
They are fetched as npm packages (`npm pack @fontsource/<family>`), whose tarball holds one
file per subset and weight (`files/<family>-latin-<weight>-normal.woff2`) and the license.
We keep the latin normal weights and the LICENSE in a cache folder

    $SCRIPTVIT_CACHE/fonts/<family>/     (default ~/.cache/scriptvit/fonts/<family>/)

so a family is downloaded once. Only families of the shipped list
(`resources/handwriting-families.txt`) may be used. Without npm, any folder of .ttf/.otf/.woff/
.woff2 files works instead (`--fonts-dir`): one file = one family.

A font may lack some characters of the IAM alphabet. Pillow then draws the *.notdef* glyph
(usually an empty box, "tofu"), so `coverage()` compares each character's bitmap with the one
of a code point no font has: equal (or empty) means missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from PIL import ImageFont

from .charset import IAM_ALPHABET
from .errors import UserError

CORE_FAMILIES = (
    "caveat indie-flower kalam patrick-hand shadows-into-light homemade-apple dancing-script "
    "gloria-hallelujah reenie-beanie architects-daughter cedarville-cursive sue-ellen-francisco "
    "rock-salt schoolbell covered-by-your-grace handlee gochi-hand yellowtail marck-script bad-script "
    "sacramento satisfy allura the-girl-next-door annie-use-your-telescope short-stack neucha delius "
    "itim sriracha caveat-brush permanent-marker swanky-and-moo-moo shantell-sans kristi crafty-girls "
    "walter-turncoat just-another-hand"
).split()
FONT_SUFFIXES = (".ttf", ".otf", ".woff", ".woff2")
MIN_LOWERCASE = 24  # a family must draw at least this many of a-z, else it is dropped
_LATIN_FILE = re.compile(r"^package/files/[a-z0-9-]+-latin-(\d+)-normal\.(woff2|woff)$")


@dataclass(frozen=True)
class FontFamily:
    """One family on disk: its weights (None for a lone --fonts-dir file) -> font file."""

    name: str
    files: dict  # {weight (int | None): Path}
    license: Path | None = None


def cache_dir() -> Path:
    return Path(os.environ.get("SCRIPTVIT_CACHE", Path.home() / ".cache" / "scriptvit")) / "fonts"


def shipped_families() -> list[str]:
    text = resources.files("scriptvit_lib").joinpath("resources/handwriting-families.txt").read_text()
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def resolve_families(spec: str | list[str]) -> list[str]:
    """'core' | 'all' | 'a,b,c' | path of a text file (one name a line) -> checked family names."""
    allowed = shipped_families()
    if isinstance(spec, str):
        if spec == "core":
            names = list(CORE_FAMILIES)
        elif spec == "all":
            names = list(allowed)
        elif os.path.isfile(spec):
            lines = Path(spec).read_text().splitlines()
            names = [ln.split("#")[0].strip() for ln in lines]
        else:
            names = spec.split(",")
    else:
        names = list(spec)
    names = list(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    if not names:
        raise UserError(f"no font family given in {spec!r}")
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise UserError(
            f"unknown font family {', '.join(unknown)}: only families of the shipped list "
            "scriptvit_lib/resources/handwriting-families.txt may be used"
        )
    return names


def _cached(name: str) -> FontFamily | None:
    folder = cache_dir() / name
    files = {}
    for p in folder.glob("*-latin-*-normal.woff*"):
        weight = int(p.name.rsplit("-latin-", 1)[1].split("-")[0])
        if weight not in files or p.suffix == ".woff2":
            files[weight] = p
    if not files:
        return None
    lic = folder / "LICENSE"
    return FontFamily(name, dict(sorted(files.items())), lic if lic.exists() else None)


def _npm_pack(name: str, npm: str) -> FontFamily:
    """Download @fontsource/<name>, keep latin normal weights + LICENSE in the cache."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        run = subprocess.run(
            [npm, "pack", f"@fontsource/{name}", "--pack-destination", tmp],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=180,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if run.returncode != 0 or not tarballs:
            if "E404" in run.stderr:
                raise OSError(f"@fontsource/{name} is not on npm")
            errors = [ln for ln in run.stderr.splitlines() if "error" in ln] or ["no tarball written"]
            raise OSError(f"npm pack @fontsource/{name} failed: {errors[0]}")
        staged = Path(tmp) / name
        staged.mkdir()
        with tarfile.open(tarballs[0]) as tar:
            for m in tar.getmembers():
                match = _LATIN_FILE.match(m.name)
                if (match or m.name == "package/LICENSE") and m.isfile():
                    (staged / Path(m.name).name).write_bytes(tar.extractfile(m).read())
        if not any(staged.glob("*.woff*")):
            raise OSError(f"@fontsource/{name} has no latin normal font file")
        # drop .woff when the .woff2 of the same weight is there (same glyphs, smaller file)
        for woff in staged.glob("*.woff"):
            if woff.with_suffix(".woff2").exists():
                woff.unlink()
        os.replace(staged, cache / name)  # atomic: a cached folder is always complete
    return _cached(name)


def fetch_families(names: list[str], *, threads: int = 6) -> tuple[list[FontFamily], list[str]]:
    """Cached or npm-fetched families, in the given order; also the names skipped (with warnings)."""
    have = {n: _cached(n) for n in names}
    missing = [n for n in names if have[n] is None]
    if missing:
        npm = shutil.which("npm")
        if npm is None:
            raise UserError(
                f"npm is missing (needed to download {len(missing)} font families, e.g. "
                f"@fontsource/{missing[0]}): install Node.js/npm, or use --fonts-dir DIR with any "
                "folder of .ttf/.otf/.woff/.woff2 files (one font file = one writer group)"
            )

        print(f"fetching {len(missing)} font families with npm into {cache_dir()}", flush=True)

        def get(n):
            try:
                return _npm_pack(n, npm)
            except (OSError, subprocess.SubprocessError, tarfile.TarError) as e:
                return e

        with ThreadPoolExecutor(threads) as pool:  # npm is mostly network wait
            for n, got in zip(missing, pool.map(get, missing)):
                if isinstance(got, Exception):
                    warnings.warn(f"skipping font family {n}: {got}", stacklevel=2)
                    got = None
                have[n] = got
    families, skipped = [], [n for n in names if have[n] is None]
    for n in names:
        if have[n] is not None:
            if usable(have[n], strict=False):
                families.append(have[n])
            else:
                skipped.append(n)
    return families, skipped


def families_from_dir(fonts_dir: str | Path) -> list[FontFamily]:
    """Every font file of a folder (recursively) is a family named after its file stem."""
    root = Path(fonts_dir)
    if not root.is_dir():
        raise UserError(f"--fonts-dir {root} is not a folder")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in FONT_SUFFIXES and p.is_file())
    if not paths:
        raise UserError(f"no .ttf/.otf/.woff/.woff2 file in {root}")
    out = {}
    for p in paths:
        name = re.sub(r"[^a-z0-9]+", "-", p.stem.lower()).strip("-")
        if name in out:
            raise UserError(f"two font files in {root} have the same name {name!r}: rename one")
        out[name] = FontFamily(name, {None: p})
    fams = [out[n] for n in sorted(out) if usable(out[n], strict=True)]
    if not fams:
        raise UserError(f"none of the fonts in {root} draws enough lowercase letters")
    return fams


def load_font(path: str | Path, size: int) -> ImageFont.FreeTypeFont:
    try:
        return _load_font(str(path), int(size))
    except OSError as e:
        raise UserError(f"cannot read font file {path}: {e}") from None


@lru_cache(maxsize=64)
def _load_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@lru_cache(maxsize=256)
def coverage(path: str | Path, alphabet: str = IAM_ALPHABET) -> frozenset:
    """Characters of `alphabet` that the font really draws (not as .notdef, not empty)."""
    font = load_font(path, 48)
    notdef = font.getmask("\U0010fffd")  # a private-use code point: always .notdef
    key = (notdef.size, bytes(notdef))
    have = set()
    for ch in alphabet:
        if ch == " ":
            have.add(ch)
            continue
        m = font.getmask(ch)
        if m.getbbox() is not None and (m.size, bytes(m)) != key:
            have.add(ch)
    return frozenset(have)


def usable(family: FontFamily, *, strict: bool) -> bool:
    """False (with a warning) if a family lacks most lowercase letters; unreadable -> error/skip."""
    try:
        lower = [len(set("abcdefghijklmnopqrstuvwxyz") & coverage(p)) for p in family.files.values()]
    except UserError as e:
        if strict:
            raise
        warnings.warn(f"skipping font family {family.name}: {e}", stacklevel=2)
        return False
    if min(lower) < MIN_LOWERCASE:
        warnings.warn(
            f"skipping font family {family.name}: it draws only {min(lower)} of 26 lowercase letters",
            stacklevel=2,
        )
        return False
    return True
