"""The default data set: many imaginary writers made from handwriting fonts, IAM-shaped.

IAM (the paper's data) needs a registration, so the lab builds a stand-in that anyone can
rebuild: each *writer* is a Google Fonts handwriting family (+ a weight) with its own style
(`render.WriterStyle`), writing words drawn like running English text (`wordfreq` frequencies,
IAM-like punctuation, capitals and numbers). `load_font_dataset` returns the same `WordSet`s as
the IAM readers, so every model and notebook can use either.

Split (fixed): families are sorted by name and every 5th one (index % 5 == 4) is a TEST family,
never trained on, so test writers are unseen hands. Every other family is TRAIN; inside TRAIN
writers, the samples whose word has `zlib.crc32(text.lower()) % 10 == 0` form VAL (seen writers,
unseen words). The index is taken over the families *asked for* (before any is skipped), or
over the sorted file names of a `--fonts-dir`.

Layout of a built folder:

    shards/<writer>.npz   images [32, sum W] uint8 (words side by side), widths, offsets, texts
    writers.json          per writer: id, family, font_file, weight, style, split
    manifest.csv          writer, text, path ("shards/caveat-0.npz#17"), split
    build.json            arguments, seed, counts, families used/skipped, seconds
    fonts/<family>/       the font files used, with their LICENSE (the folder is self-contained)

Each writer's randomness comes from (seed, writer id) alone, so the pixels do not depend on the
order, the number of worker processes or an interrupted-and-resumed build.
"""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
import os
import shutil
import signal
import time
import zlib
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .charset import RARE_LETTERS, Charset
from .errors import UserError
from .fonts import FontFamily, coverage, families_from_dir, fetch_families, resolve_families
from .render import WriterStyle, render_word
from .words import WordSample, WordSet

__all__ = ["build_dataset", "load_font_dataset", "load_writers", "render_word", "writer_grid_figure"]

SHARD_VERSION = 1
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# IAM-like token mix: ~13% punctuation, ~1% numbers, sentence-initial capitals
PUNCT = {
    ".": 30,
    ",": 33,
    '"': 7,
    "-": 5,
    "'s": 5,
    "'": 2,
    "?": 2,
    "!": 2,
    ";": 2,
    ":": 2,
    "(": 1,
    ")": 1,
    "n't": 3,
    "&": 0.5,
}
P_PUNCT, P_NUMBER, P_CAPITAL, P_UPPER = 0.13, 0.01, 0.12, 0.005


# ---------------------------------------------------------------- words


# Web-frequency word lists carry profanity; samples end up in figures and demos, so drop the
# common English ones. Stems in ANYWHERE match inside words ("bullshit"); the others only at the
# start, so "grape" or "scrape" stay. Not exhaustive; extend as needed.
OFFENSIVE_ANYWHERE = ("fuck", "shit", "cunt", "nigg", "whore", "asshole", "wank", "bitch")
OFFENSIVE_PREFIX = (
    "slut",
    "fag",
    "dick",
    "cock",
    "puss",
    "bastard",
    "retard",
    "twat",
    "porn",
    "rape",
    "nazi",
)


def offensive(word: str) -> bool:
    w = word.lower()
    return any(stem in w for stem in OFFENSIVE_ANYWHERE) or w.startswith(OFFENSIVE_PREFIX)


def default_vocabulary(n: int = 30000) -> tuple[list[str], np.ndarray]:
    """The `n` most frequent English words that fit the charset (minus profanity), and their
    frequencies."""
    import wordfreq

    cs = Charset()
    freq = wordfreq.get_frequency_dict("en")
    words = [
        w
        for w in wordfreq.top_n_list("en", n)
        if w.isascii()
        and w.isalpha()
        and len(w) <= 14
        and (len(w) > 1 or w in "ai")
        and not cs.unknown(w)
        and not offensive(w)
    ]
    return words, np.array([freq[w] for w in words])


def rare_letter_vocabulary(
    letters: str = RARE_LETTERS, vocab: tuple[list[str], np.ndarray] | None = None, flatten: float = 0.5
) -> tuple[list[str], np.ndarray]:
    """Words holding at least one of `letters`, weighted so that every letter is asked for
    equally often: pick a letter uniformly, then a word containing it with probability
    proportional to frequency ** `flatten` (0.5: common words first, but not only "have" and
    "like"). Returns (words, weights) for `draw_words`, as `default_vocabulary` does."""
    letters = "".join(dict.fromkeys(letters.lower()))
    if not letters or not all("a" <= c <= "z" for c in letters):
        raise UserError(f"--rare-letters takes lower-case letters a-z, got {letters!r}")
    words, freq = vocab if vocab is not None else default_vocabulary()
    lower = [w.lower() for w in words]
    weight = np.zeros(len(words))
    for c in letters:
        has = np.array([c in w for w in lower])
        if not has.any():
            raise UserError(f"no word of the vocabulary has the letter {c!r}")
        p = np.where(has, np.asarray(freq, dtype=float) ** flatten, 0.0)
        weight += p / p.sum()
    keep = np.flatnonzero(weight > 0)
    return [words[i] for i in keep], weight[keep] / weight[keep].sum()


def _wordfreq_version() -> str:
    from importlib.metadata import version

    return version("wordfreq")


def draw_words(
    rng: np.random.Generator,
    n: int,
    vocab: tuple[list[str], np.ndarray | None],
    allowed: frozenset,
    *,
    iam_like: bool = True,
) -> list[str]:
    """`n` tokens like IAM running text; tokens with characters outside `allowed` are redrawn."""
    words, freq = vocab
    cdf = np.cumsum(freq if freq is not None else np.ones(len(words)))
    punct, pw = list(PUNCT), np.cumsum(list(PUNCT.values()))
    out = []
    for _ in range(100 * n):
        r = rng.random() if iam_like else 1.0
        if r < P_PUNCT:
            tok = punct[np.searchsorted(pw, rng.random() * pw[-1], side="right")]
        elif r < P_PUNCT + P_NUMBER:
            tok = str(rng.choice([rng.integers(1900, 2000), rng.integers(1, 100), rng.integers(100, 10000)]))
        else:
            tok = words[np.searchsorted(cdf, rng.random() * cdf[-1], side="right")]
            if iam_like:
                c = rng.random()
                tok = tok.upper() if c < P_UPPER else tok.capitalize() if c < P_CAPITAL or tok == "i" else tok
        if set(tok) <= allowed:
            out.append(tok)
            if len(out) == n:
                return out
    raise UserError(f"could not draw {n} words that the font can write (does it cover the charset?)")


# ---------------------------------------------------------------- writers and split


def split_of_family(sorted_index: int) -> str:
    return "test" if sorted_index % 5 == 4 else "train"


def split_of_sample(writer_split: str, text: str) -> str:
    if writer_split == "test":
        return "test"
    return "val" if zlib.crc32(text.lower().encode()) % 10 == 0 else "train"


def writer_rng(seed: int, writer_id: str, stream: int) -> np.random.Generator:
    """Stream 0 draws the writer (weight, style), stream 1 its words and samples."""
    return np.random.default_rng([seed, zlib.crc32(writer_id.encode()), stream])


def plan_writers(
    families: list[FontFamily], names: list[str], per_family: int, seed: int, glyph_variation: float = 0.0
) -> list[dict]:
    """Writer metadata (as in writers.json); `names` = all families asked for, for the split.

    `glyph_variation` > 0: every writer of a family but the first (who writes the font's own
    letters) gets letter shapes of its own at that strength (`WriterStyle.glyph`)."""
    order = {n: i for i, n in enumerate(sorted(names))}
    writers = []
    for fam in families:
        weights = sorted(fam.files, key=lambda w: -1 if w is None else w)
        everyday = [w for w in weights if w is None or 300 <= w <= 700] or weights
        first = int(writer_rng(seed, fam.name, 0).integers(len(everyday)))
        for k in range(per_family):
            wid = f"{fam.name}-{k}"
            weight = everyday[(first + k) % len(everyday)]  # writers of a family cycle through weights
            style = WriterStyle.sample(writer_rng(seed, wid, 0))
            if glyph_variation > 0 and k > 0:  # a draw of its own: the other fields stay as without
                style.glyphs = float(glyph_variation)
                style.glyph_seed = int(writer_rng(seed, wid, 2).integers(2**31))
            style = style.to_dict()
            writers.append(
                dict(
                    id=wid,
                    family=fam.name,
                    font_file=str(fam.files[weight]),
                    weight=weight,
                    style=style,
                    split=split_of_family(order[fam.name]),
                )
            )
    return writers


# ---------------------------------------------------------------- shards


def _shard_key(meta: dict, seed: int, n_words: int, vocab_id: str) -> str:
    """What a shard was rendered from; a shard with another key is rendered again."""
    return json.dumps([SHARD_VERSION, seed, n_words, vocab_id, meta["style"], Path(meta["font_file"]).name])


def _shard_ok(path: Path, key: str) -> bool:
    try:
        with np.load(path) as z:
            widths, texts, images = z["widths"], z["texts"], z["images"]
            return str(z["key"]) == key and len(widths) == len(texts) and images.shape[1] == widths.sum()
    except Exception:  # missing, truncated, corrupt: render again
        return False


_VOCAB = None


def _init_worker(vocab, pool: bool = False):
    global _VOCAB
    _VOCAB = vocab
    if pool:  # Ctrl-C is the parent's business: it stops the pool, finished shards stay
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def render_writer(meta: dict, root: str, seed: int, n_words: int, vocab_id: str = "") -> str:
    """Render one writer's words into shards/<id>.npz (atomically); returns the id."""
    rng = writer_rng(seed, meta["id"], 1)
    vocab = _VOCAB if _VOCAB is not None else default_vocabulary()
    font_file = str(Path(root) / meta["font_file"])
    texts = draw_words(rng, n_words, vocab, coverage(font_file), iam_like=vocab[1] is not None)
    images = [render_word({**meta, "font_file": font_file}, t, rng) for t in texts]  # each [32, W_i]
    widths = np.array([im.shape[1] for im in images], dtype=np.int32)
    path = Path(root) / "shards" / f"{meta['id']}.npz"
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            images=np.concatenate(images, axis=1),
            widths=widths,
            offsets=np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64),
            texts=np.array(texts),
            key=np.array(_shard_key(meta, seed, n_words, vocab_id)),
        )
    os.replace(tmp, path)
    return meta["id"]


def _render_star(job):
    return render_writer(*job)


# ---------------------------------------------------------------- build


def build_dataset(
    out: str | os.PathLike = "data/fonts",
    families: str | list[str] = "core",
    fonts_dir: str | os.PathLike | None = None,
    writers_per_family: int = 1,
    words_per_writer: int = 300,
    seed: int = 0,
    workers: int = 2,
    vocab: list[str] | None = None,
    rare_letters: str | None = None,
    splits: tuple[str, ...] | None = None,
    glyph_variation: float = 0.0,
) -> Path:
    """Fetch fonts, plan writers, render every missing shard, write the index files -> `out`.

    `families`: 'core', 'all', 'a,b,c' or a file of names (see `fonts.resolve_families`); ignored
    with `fonts_dir`, where every font file of the folder is one family. `vocab`: words to draw
    from uniformly (as written) instead of the wordfreq default. `rare_letters` (e.g. "jkqvxz"):
    draw only words with those letters, each letter equally often (`rare_letter_vocabulary`), with
    the same capitals and punctuation as running text. `splits` (e.g. ("train",)): render only the
    writers of those family splits — the writers keep the ids, styles and splits they have in a
    build of all families with the same seed, so such a folder adds words to those writers
    (`scriptvit train --data data/fonts-all data/fonts-rare`; `data.load_data` checks the writers
    agree). `glyph_variation` (e.g. 1.0, with `writers_per_family` > 1): the second and later
    writers of a family change the font's letters their own way (`plan_writers`), so a family
    gives hands that differ in letter shapes, not only in slant, size, weight and ink. Rerunning
    resumes: shards that exist, load and match the arguments are kept.
    """
    t0 = time.time()
    if words_per_writer < 1 or writers_per_family < 1 or workers < 1:
        raise UserError("--words, --writers-per-family and --workers must be at least 1")
    if not 0 <= glyph_variation <= 3:
        raise UserError(f"--glyph-variation must be in 0..3 (1 = as designed), got {glyph_variation:g}")
    if glyph_variation > 0 and writers_per_family < 2:
        raise UserError(
            "--glyph-variation needs --writers-per-family 2 or more (a family's first keeps its letters)"
        )
    if vocab is not None:
        vocab = [w.strip() for w in vocab if w.strip()]
        if not vocab:
            raise UserError("the word list is empty: there is nothing to write")
        bad = sorted({c for w in vocab for c in Charset().unknown(w)})
        if bad:
            raise UserError(f"the word list has characters outside the charset: {''.join(bad)!r}")
    if vocab is not None and rare_letters:
        raise UserError("give a word list (--vocab) or --rare-letters, not both")
    if splits is not None and not set(splits) <= {"train", "test"}:
        raise UserError(f"splits are 'train' and/or 'test', got {list(splits)}")

    if fonts_dir is not None:
        fams = families_from_dir(fonts_dir)
        names, skipped = [f.name for f in fams], []
    else:
        names = resolve_families(families)
        fams, skipped = fetch_families(names)
    if not fams:
        raise UserError("no usable font family: nothing to render")
    print(f"fonts: {len(fams)} families used, {len(skipped)} skipped", flush=True)
    if vocab is not None:
        words, vocab_id = (vocab, None), f"list-{zlib.crc32(' '.join(vocab).encode())}"
    elif rare_letters:
        words = rare_letter_vocabulary(rare_letters)
        vocab_id = f"rare-{rare_letters}-wordfreq-{_wordfreq_version()}"
    else:
        words, vocab_id = default_vocabulary(), f"wordfreq-{_wordfreq_version()}"

    root = Path(out)
    (root / "shards").mkdir(parents=True, exist_ok=True)
    for stale in (root / "shards").glob("*.tmp*"):
        stale.unlink()
    writers = plan_writers(fams, names, writers_per_family, seed, glyph_variation)
    if splits is not None:
        writers = [w for w in writers if w["split"] in splits]
        if not writers:
            raise UserError(f"no writer of the families asked for is in split(s) {list(splits)}")
    for w in writers:  # copy the fonts in (with their license): the folder is self-contained
        src = Path(w["font_file"])
        dst = Path("fonts") / w["family"] / src.name
        if not (root / dst).exists():
            (root / dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, root / dst)
            if (src.parent / "LICENSE").exists():
                shutil.copyfile(src.parent / "LICENSE", root / dst.parent / "LICENSE")
        w["font_file"] = dst.as_posix()
    _write_json(root / "writers.json", writers)

    todo = [
        w
        for w in writers
        if not _shard_ok(root / "shards" / f"{w['id']}.npz", _shard_key(w, seed, words_per_writer, vocab_id))
    ]
    jobs = [(w, str(root), seed, words_per_writer, vocab_id) for w in todo]
    bar = tqdm(total=len(writers), initial=len(writers) - len(todo), desc="writers", unit="writer")
    with bar:
        if workers == 1 or len(jobs) <= 1:
            _init_worker(words)
            try:
                for job in jobs:
                    render_writer(*job)
                    bar.update()
            finally:
                _init_worker(None)
        else:
            ctx = mp.get_context("spawn")  # safe next to torch/Jupyter threads
            saved = {k: os.environ.get(k) for k in _THREAD_VARS}
            os.environ.update({k: "1" for k in _THREAD_VARS})  # one thread per worker process
            try:
                pool = ctx.Pool(min(workers, len(jobs)), _init_worker, (words, True))
            finally:
                for k, v in saved.items():
                    if v is None:
                        del os.environ[k]
                    else:
                        os.environ[k] = v
            with pool:
                for _ in pool.imap_unordered(_render_star, jobs):
                    bar.update()

    counts = _write_manifest(root, writers)
    args = dict(
        out=str(out),
        families=families if isinstance(families, str) else list(families),
        fonts_dir=None if fonts_dir is None else str(fonts_dir),
        writers_per_family=writers_per_family,
        words_per_writer=words_per_writer,
        workers=workers,
        vocab=None if vocab is None else len(vocab),
        rare_letters=rare_letters or None,
        splits=None if splits is None else list(splits),
        glyph_variation=glyph_variation,
    )
    _write_json(
        root / "build.json",
        dict(
            args=args,
            seed=seed,
            counts=dict(writers=len(writers), families=len(fams), samples=counts),
            families_used=[f.name for f in fams],
            families_skipped=skipped,
            rendered=len(todo),
            seconds=round(time.time() - t0, 1),
        ),
    )
    print(f"wrote {root}: {len(writers)} writers, samples {counts}, {time.time() - t0:.0f} s", flush=True)
    return root


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _write_manifest(root: Path, writers: list[dict]) -> dict:
    counts = {"train": 0, "val": 0, "test": 0}
    tmp = root / "manifest.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["writer", "text", "path", "split"])
        for w in writers:
            with np.load(root / "shards" / f"{w['id']}.npz") as z:
                texts = [str(t) for t in z["texts"]]
            for i, text in enumerate(texts):
                split = split_of_sample(w["split"], text)
                counts[split] += 1
                out.writerow([w["id"], text, f"shards/{w['id']}.npz#{i}", split])
    os.replace(tmp, root / "manifest.csv")
    return counts


# ---------------------------------------------------------------- load and look


def _check_built(root: Path) -> None:
    if not ((root / "manifest.csv").is_file() and (root / "writers.json").is_file()):
        raise UserError(
            f"{root} is not a built font data set (no manifest.csv / writers.json): "
            f"run `scriptvit data build --out {root}`"
        )


def load_writers(root: str | os.PathLike) -> list[dict]:
    """writers.json entries, with font_file made a full path (ready for `render_word`)."""
    root = Path(root)
    _check_built(root)
    writers = json.loads((root / "writers.json").read_text())
    return [{**w, "font_file": str(root / w["font_file"])} for w in writers]


def load_font_dataset(root: str | os.PathLike = "data/fonts") -> dict[str, WordSet]:
    """A built folder -> {"train", "val", "test"} WordSets (images uint8 [32, W])."""
    root = Path(root)
    _check_built(root)
    sets, shards = {"train": [], "val": [], "test": []}, {}
    with open(root / "manifest.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            file, idx = row["path"].rsplit("#", 1)
            if file not in shards:
                try:
                    with np.load(root / file) as z:
                        shards[file] = (z["images"], z["offsets"], z["widths"])
                except (OSError, ValueError, KeyError) as e:
                    msg = f"cannot read {root / file} ({e}): rerun `scriptvit data build`"
                    raise UserError(msg) from None
            images, offsets, widths = shards[file]
            o, w = offsets[int(idx)], widths[int(idx)]
            sets[row["split"]].append(WordSample(row["writer"], row["text"], images[:, o : o + w].copy()))
    return {k: WordSet(v) for k, v in sets.items()}


def writer_grid_figure(
    root_or_sets, text: str = "handwriting", n_writers: int = 24, path=None, *, cols: int = 3, seed: int = 0
):
    """A grid of writers writing `text` (fresh renders from a built folder's writers.json; from
    WordSets, each writer's sample of `text` if it has one, else its first). Saved if `path`."""
    from matplotlib.figure import Figure

    cells = []
    if isinstance(root_or_sets, (str, os.PathLike)):
        for w in load_writers(root_or_sets):
            if set(text) <= coverage(w["font_file"]):
                cells.append((w["id"], render_word(w, text, writer_rng(seed, w["id"], 2))))
            if len(cells) == n_writers:
                break
    else:
        ws = root_or_sets if isinstance(root_or_sets, WordSet) else sum(root_or_sets.values(), WordSet([]))
        for wid in ws.writers[:n_writers]:
            own = ws.of_writer(wid)
            cells.append((wid, next((s for s in own if s.text == text), own[0]).image))
    if not cells:
        raise UserError(f"no writer can write {text!r}")
    rows, widest = -(-len(cells) // cols), max(img.shape[1] for _, img in cells)
    fig = Figure(figsize=(cols * widest / 48, rows * 0.9))
    for i, (wid, img) in enumerate(cells):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_xlim(-0.5, widest - 0.5)  # same pixel scale in every cell
        ax.set_title(wid, fontsize=7, pad=2, loc="left")
        ax.axis("off")
    fig.tight_layout(pad=0.3)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150)
    return fig
