"""IAM words, for users who have the IAM Handwriting Database (it cannot be redistributed).

IAM (Marti & Bunke, 2002) ships word images as `words/a01/a01-000u/a01-000u-00-00.png`, their
transcriptions in `words.txt` and the writer of each form in `forms.txt`. The style-transfer
papers ScriptViT compares with (GANwriting, HWT, VATr) train on 339 writers / 44,421 words and
test on 161 *other* writers / 18,436 words: a writer-disjoint split, so that test styles are
never seen in training. That split ships as two files (GANwriting's `gan.iam.tr_va.gt.filter27`
and `gan.iam.test.gt.filter27`, lines `writer,word-id transcription`); `load_iam_words` reads
them, or simpler lists of writer, form or word ids.

HWT and VATr also distribute the words already cut to 32 px as `IAM-32.pickle`:
`{'train': {writer: [{'img': PIL.Image, 'label': str}, ...]}, 'test': {...}}`, dark ink on white
paper like ours (their loaders pad with 255 and `.convert('L')`). A pickle can run any code when
loaded, so `read_iam_pickle` uses an unpickler that rebuilds PIL images (and numpy's 0-d object
array, which HWT's later loader expects around the dict) and refuses every other global.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from .charset import Charset
from .errors import UserError
from .words import WordSample, WordSet

WORD_ID = re.compile(r"^[a-z]\d\d-\d{3}[a-z]?-\d\d-\d\d$")  # a01-000u-00-00
FORM_ID = re.compile(r"^[a-z]\d\d-\d{3}[a-z]?$")  # a01-000u
WRITER_ID = re.compile(r"^\d{1,3}$")  # 000
DEFAULT_CHARSET = Charset()  # HWT/VATr's 80 characters


class IAMWord(NamedTuple):
    id: str
    ok: bool  # IAM's segmentation check: 'ok' or 'err'
    text: str

    @property
    def form(self) -> str:
        return self.id.rsplit("-", 2)[0]


# --- IAM's own layout ---------------------------------------------------------------------------


def _find(root: Path, name: str) -> Path:
    """IAM's text files sit in `ascii/` as downloaded; accept them at the root too."""
    for p in (root / name, root / "ascii" / name):
        if p.is_file():
            return p
    raise UserError(f"{name} not found in {root} or {root / 'ascii'} (it is in IAM's ascii.tgz)")


def _data_lines(path: Path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if line.strip() and not line.startswith("#"):
                yield n, line


def read_words_txt(path: str | Path) -> list[IAMWord]:
    """Parse words.txt: `id ok|err graylevel x y w h tag transcription` ('#' starts a comment)."""
    words = []
    for n, line in _data_lines(Path(path)):
        fields = line.split(maxsplit=8)  # the transcription is everything after the tag
        if len(fields) < 9 or fields[1] not in ("ok", "err") or not WORD_ID.match(fields[0]):
            raise UserError(f"{path}:{n}: not a words.txt line (id ok|err gray x y w h tag text): {line!r}")
        words.append(IAMWord(fields[0], fields[1] == "ok", fields[8]))
    return words


def read_forms_txt(path: str | Path) -> dict[str, str]:
    """Parse forms.txt (`a01-000u 000 2 prt 7 5 52 36`): form id -> writer id."""
    writer_of = {}
    for n, line in _data_lines(Path(path)):
        fields = line.split()
        if len(fields) < 2:
            raise UserError(f"{path}:{n}: not a forms.txt line (form writer ...): {line!r}")
        writer_of[fields[0]] = fields[1]
    return writer_of


def read_split_file(path: str | Path) -> tuple[str, set[str]]:
    """Read a split file: one writer id, form id or word id a line -> (kind, ids).

    GANwriting's ground-truth lines `writer,word-id transcription` count as word ids. The kind is
    detected from the ids, and all lines must be of one kind.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"split file not found: {path}")
    kinds = {"word": WORD_ID, "form": FORM_ID, "writer": WRITER_ID}
    kind, ids = None, set()
    for n, line in _data_lines(path):
        token = line.split()[0]
        if "," in token and WRITER_ID.match(token.split(",")[0]):  # '000,a01-000u-00-00 A'
            token = token.split(",", 1)[1]
        this = next((k for k, rx in kinds.items() if rx.match(token)), None)
        if this is None:
            raise UserError(f"{path}:{n}: {token!r} is not an IAM writer, form or word id")
        if kind not in (None, this):
            raise UserError(f"{path}:{n}: a {this} id in a file of {kind} ids; use one kind a file")
        kind = this
        ids.add(token.zfill(3) if this == "writer" else token)  # writer ids are '000'..'671'
    if kind is None:
        raise UserError(f"split file {path} lists no ids")
    return kind, ids


def _to_height(img: Image.Image, height: int | None) -> np.ndarray:
    img = img.convert("L")
    if height is not None and img.height != height:
        width = max(1, round(img.width * height / img.height))  # keep the aspect ratio
        img = img.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8).copy()


def load_iam_words(
    root: str | Path,
    split_files: tuple[str | Path, str | Path] | None = None,
    height: int | None = 32,
    skip_err: bool = False,
    charset: Charset = DEFAULT_CHARSET,
    *,
    verbose: bool = True,
    stats: dict | None = None,
) -> dict[str, WordSet]:
    """Load IAM words from `root` (holding `words/` and `words.txt`/`forms.txt` or `ascii/`).

    Returns {'train': WordSet, 'test': WordSet}: grayscale images scaled to `height` px keeping
    their aspect (None keeps them as stored), writer = IAM writer id ('000'). `split_files`
    = (train_file, test_file), each listing writer ids, form ids or word ids one a line
    (see `read_split_file`); the field's split is GANwriting's two `.filter27` files. Without
    them every third writer in sorted order goes to test (~1/3 writers, disjoint, but NOT the
    field's split). Skipped: words with characters outside `charset`, 'err' words if
    `skip_err`, words outside the split files, and missing or unreadable images (warned).
    Pass a dict as `stats` to receive the counts.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"IAM folder not found: {root}")
    if not (root / "words").is_dir():
        raise UserError(f"{root} is not an IAM folder: it has no words/ image folder")
    writer_of = read_forms_txt(_find(root, "forms.txt"))
    words = read_words_txt(_find(root, "words.txt"))
    writers = sorted({writer_of[w.form] for w in words if w.form in writer_of})

    if split_files is None:
        test_writers = set(writers[2::3])
        choose = lambda w, wr: "test" if wr in test_writers else "train"  # noqa: E731
    else:
        (k_tr, tr), (k_te, te) = (read_split_file(p) for p in split_files)
        key = lambda kind, w, wr: {"word": w.id, "form": w.form, "writer": wr}[kind]  # noqa: E731

        def choose(w, wr):
            in_tr, in_te = key(k_tr, w, wr) in tr, key(k_te, w, wr) in te
            if in_tr and in_te:
                raise UserError(f"word {w.id} (writer {wr}) is in both split files")
            return "train" if in_tr else "test" if in_te else None

    count, unknown_chars, bad = Counter(), Counter(), []
    samples = {"train": [], "test": []}
    for w in words:
        wr = writer_of.get(w.form)
        if wr is None:
            count["no writer in forms.txt"] += 1
            continue
        split = choose(w, wr)
        if split is None:
            count["not in the split files"] += 1
        elif skip_err and not w.ok:
            count["err segmentation"] += 1
        elif not w.text or charset.unknown(w.text):
            count["characters outside the charset"] += 1
            unknown_chars.update(charset.unknown(w.text))
        else:
            path = root / "words" / w.form.split("-")[0] / w.form / f"{w.id}.png"
            try:
                with Image.open(path) as img:
                    image = _to_height(img, height)
            except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
                # missing, empty or truncated files: IAM itself has two (a01-117-05-02, r06-022-03-05)
                bad.append(w.id)
                continue
            samples[split].append(WordSample(wr, w.text, image))

    sets = {name: WordSet(s) for name, s in samples.items()}
    if split_files is not None and set(sets["train"].writers) & set(sets["test"].writers):
        shared = sorted(set(sets["train"].writers) & set(sets["test"].writers))
        warnings.warn(
            f"split is not writer-disjoint: {len(shared)} writer(s) in both, e.g. {shared[:5]}", stacklevel=2
        )
    if bad:
        count["missing or unreadable image"] = len(bad)
        warnings.warn(
            f"skipped {len(bad)} missing or unreadable IAM image(s): {', '.join(bad[:5])}", stacklevel=2
        )
    if stats is not None:
        stats.update(
            kept={k: len(v) for k, v in sets.items()},
            skipped=dict(count),
            unknown_chars=dict(unknown_chars),
            bad_images=bad,
        )
    if verbose:
        kept = ", ".join(f"{k} {len(v):,} words / {len(v.writers)} writers" for k, v in sets.items())
        skipped = "; ".join(f"{n:,} {why}" for why, n in count.items()) or "none"
        print(f"IAM words: {kept}. Skipped: {skipped}.")
        if split_files is None:
            print("  (default split: every 3rd writer to test; not the GANwriting/HWT/VATr split)")
    return sets


def make_iam_fixture(root: str | Path, sets: dict[str, WordSet]) -> dict[str, Path]:
    """Write word sets in IAM's layout under `root`, so `load_iam_words` can read them back.

    Each writer gets forms named like IAM's (`f00-000`, up to 1000 words a form: 10 words a
    line), written to words.txt, forms.txt and words/f00/f00-000/f00-000-00-00.png. Returns one
    split file per set (`splits/<name>.txt`, its word ids), to pass as `split_files`.
    """
    root = Path(root)
    lines, forms, split_ids = [], [], {name: [] for name in sets}
    next_word: dict[str, int] = {}  # writer -> words written so far
    form_of: dict[tuple[str, int], str] = {}  # (writer, nth form) -> form id
    for name, ws in sets.items():
        for s in ws:
            if not s.writer or any(c.isspace() for c in s.writer):
                raise ValueError(f"writer id {s.writer!r} must be non-empty without spaces for forms.txt")
            if not s.text or s.text != s.text.lstrip() or "\n" in s.text:
                raise ValueError(f"text {s.text!r} cannot be stored as a words.txt transcription")
            j = next_word.get(s.writer, 0)
            next_word[s.writer] = j + 1
            if (s.writer, j // 1000) not in form_of:
                c = len(form_of)
                form_of[s.writer, j // 1000] = form = f"f{c // 1000:02d}-{c % 1000:03d}"
                forms.append(f"{form} {s.writer} 1 prt 1 1 1 1")
            form = form_of[s.writer, j // 1000]
            word_id = f"{form}-{j % 1000 // 10:02d}-{j % 10:02d}"
            folder = root / "words" / form.split("-")[0] / form
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(s.image).save(folder / f"{word_id}.png")
            h, w = s.image.shape
            lines.append(f"{word_id} ok 128 0 0 {w} {h} XX {s.text}")
            split_ids[name].append(word_id)
    (root / "words.txt").write_text(
        "# written by scriptvit_lib.iam.make_iam_fixture\n" + "\n".join(lines) + "\n"
    )
    (root / "forms.txt").write_text("# form writer ...\n" + "\n".join(forms) + "\n")
    (root / "splits").mkdir(exist_ok=True)
    paths = {name: root / "splits" / f"{name}.txt" for name in sets}
    for name, ids in split_ids.items():
        paths[name].write_text("".join(i + "\n" for i in ids))
    return paths


# --- HWT/VATr's IAM-32.pickle -------------------------------------------------------------------


def _np_reconstruct(subtype, shape, dtype):
    """numpy's `_reconstruct`, for plain ndarrays only (its state is set by BUILD afterwards)."""
    if subtype is not np.ndarray:
        raise UserError(f"refused numpy array subclass {subtype!r} in pickle")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _latin1(text, encoding="latin1"):
    """`_codecs.encode` as protocol-2 pickles use it: bytes written as latin-1 text."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UserError(f"refused _codecs.encode({encoding!r}) in pickle")
    return text.encode("latin1")


def _object_only(cls, base, state=None):
    """copyreg._reconstructor (protocol 0/1 pickles) restricted to `object.__new__`."""
    if base is not object or state is not None:
        raise UserError("refused copyreg._reconstructor with a non-object base in pickle")
    return object.__new__(cls)


_NUMPY_RECONSTRUCT = ("numpy.core.multiarray", "numpy._core.multiarray")
SAFE_GLOBALS = {
    ("PIL.Image", "Image"): Image.Image,
    ("copyreg", "_reconstructor"): _object_only,  # protocols 0 and 1
    ("builtins", "object"): object,
    ("_codecs", "encode"): _latin1,  # bytes in protocol 2
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{(m, "_reconstruct"): _np_reconstruct for m in _NUMPY_RECONSTRUCT},
}
_PY2_NAMES = {"copy_reg": "copyreg", "__builtin__": "builtins"}


class RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds PIL images and 0-d numpy object arrays; refuses every other global.

    A pickled PIL image is `PIL.Image.Image` (or a plugin class such as
    `PIL.PngImagePlugin.PngImageFile` for an image read from a file) created with `__new__` and
    filled by its `__setstate__([info, mode, size, palette, bytes, ...])`. Plugin classes are
    rebuilt as plain `Image.Image`, so nothing can call them to open a file.
    """

    def find_class(self, module, name):
        key = (_PY2_NAMES.get(module, module), name)
        if key in SAFE_GLOBALS:
            return SAFE_GLOBALS[key]
        if re.fullmatch(r"PIL\.\w+ImagePlugin", module) and name.endswith("ImageFile"):
            return Image.Image
        raise UserError(
            f"refused to load {module}.{name} from the pickle: only PIL images are "
            "allowed (it may be malicious, or not an IAM-32.pickle)"
        )


# what a truncated or garbled pickle raises (a refused global raises UserError itself)
_BROKEN_PICKLE = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    KeyError,
    IndexError,
)


def _unpickle(path: Path):
    try:
        with open(path, "rb") as f:
            if f.read(6) == b"\x93NUMPY":  # np.save'd object array: header, then a pickle
                f.seek(0)
                version = np.lib.format.read_magic(f)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                read_header(f)
            else:
                f.seek(0)
            return RestrictedUnpickler(f).load()
    except FileNotFoundError:
        raise UserError(f"pickle not found: {path}") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e}") from None
    except _BROKEN_PICKLE as e:
        raise UserError(f"{path} is not a readable IAM pickle ({type(e).__name__}: {e})") from None


def read_iam_pickle(
    path: str | Path,
    *,
    charset: Charset | None = DEFAULT_CHARSET,
    height: int | None = None,
    verbose: bool = True,
) -> dict[str, WordSet]:
    """Read HWT/VATr's IAM-32.pickle (or one `write_iam_pickle` wrote) -> {split: WordSet}.

    Images become grayscale uint8 with 255 = paper; a file whose images are mostly dark is taken
    as white-on-black and inverted. Words with characters outside `charset` are skipped (None
    keeps all); `height` rescales (None keeps the stored 32 px). The loaded file may only hold
    PIL images and plain Python values (see `RestrictedUnpickler`).
    """
    path = Path(path)
    data = _unpickle(path)
    if isinstance(data, np.ndarray) and data.shape == () and data.dtype == object:
        data = data.item()  # HWT's later loader: np.load(...).item()
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise UserError(
            f"{path}: expected {{'train': {{writer: [{{'img', 'label'}}, ...]}}, 'test': ...}}, "
            f"got {type(data).__name__}"
        )
    sets, skipped = {}, 0
    for split, writers in data.items():
        samples = []
        for writer, items in writers.items():
            if str(writer) == "None":  # HWT's builder leaves an empty 'None' writer; their loaders drop it
                continue
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("img"), Image.Image):
                    raise UserError(f"{path}: writer {writer} has an entry without a PIL 'img'")
                label = item.get("label", "")
                label = label.decode() if isinstance(label, bytes) else str(label)
                if not label or (charset is not None and charset.unknown(label)):
                    skipped += 1
                    continue
                samples.append(WordSample(str(writer), label, _to_height(item["img"], height)))
        sets[str(split)] = WordSet(samples)
    every = [s.image for ws in sets.values() for s in ws.samples[:100]]
    inverted = bool(every) and np.median(np.concatenate([a.ravel() for a in every])) < 128
    if inverted:  # mostly dark: white ink on black paper
        for ws in sets.values():
            for s in ws:
                s.image = 255 - s.image
    if verbose:
        kept = ", ".join(f"{k} {len(v):,} words / {len(v.writers)} writers" for k, v in sets.items())
        note = "; inverted to dark on white" if inverted else ""
        print(f"{path.name}: {kept}; skipped {skipped:,} with characters outside the charset{note}")
    return sets


def write_iam_pickle(sets: dict[str, WordSet], path: str | Path) -> Path:
    """Write word sets in IAM-32.pickle's layout, so HWT/VATr-style tools can read them.

    {split: {writer: [{'img': PIL 'L' image, 'label': str, 'img_id': str}, ...]}}; 'img_id' is
    the word's index within its writer (VATr's FID code reads it). Written atomically.
    """
    path = Path(path)
    data = {
        split: {
            writer: [
                {"img": Image.fromarray(s.image), "label": s.text, "img_id": str(i)}
                for i, s in enumerate(ws.of_writer(writer))
            ]
            for writer in ws.writers
        }
        for split, ws in sets.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(data, f, protocol=4)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
