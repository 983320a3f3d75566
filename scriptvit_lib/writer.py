"""`Writer`: a few pictures of your handwriting -> any text, written in that hand.

ScriptViT (arXiv 2511.18307) writes one *word* from k style word images of a writer. A
`Writer` wraps a trained generator around a person's pictures:

    pictures --preprocess.py--> style words (uint8 [32, w]) --pick k--> style memory (encoded once)
    text --split on spaces--> words --one batched decode--> word images, cropped to their ink
         --layout--> a line (or wrapped lines and paragraphs): word spaces ~0.9 x-height with a
                     little log-normal jitter, baselines aligned (the model puts them on row
                     ~22; a word that drifted is moved back by at most 2 px) +- 1 px of wander

The generator is deterministic given its style memory, so variety comes from the style
words themselves: each render of `variations` (and the n-th repeat of a word inside one
text) reads a memory encoded from another seeded draw of the style words - another subset
of k when there are more than k, another order otherwise (each image position has its own
learned embedding, so order changes the memory) - plus the layout jitter of its own seed.
With a single style word only the layout varies. Same arguments, same pixels.

    w = Writer.from_images(["note.jpg"], model="models/scriptvit-cpu")
    w.write("Hello there").save("hello.png")
    w.write_lines(long_text, width=600)
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .charset import Charset
from .errors import UserError
from .generator import ScriptViT
from .monitor import to_uint8
from .preprocess import BASELINE, HEIGHT, X_HEIGHT, ImageLike, core_band, prepare_style_images
from .sampler import place_on_canvas
from .style_encoder import StyleMemory

DEFAULT_MODEL = os.environ.get("SCRIPTVIT_MODEL", "models/scriptvit-cpu")
DEFAULT_K = 5  # style words per memory, as the paper trains (k = 5)
WIDE_WORD = 3 * X_HEIGHT  # style words narrower than this (~2 letters) are picked last
SPACE, SPACE_JITTER = 0.9 * X_HEIGHT, 0.15  # word space (px) and its log-normal jitter
SLACK = 3  # rows above and below a line's 32 for baseline shifts
LINE_PITCH = HEIGHT + 2 * SLACK + 2  # px from one line to the next
PARAGRAPH_GAP = 16  # extra px between paragraphs
PAD = 8  # paper around the page
MAX_BATCH = 64  # words per decode call (memory: ~1 MB per word for the cpu preset)
MAX_DRAWS = 4  # repeated words cycle through this many style draws


def load_model(model: ScriptViT | str | Path) -> ScriptViT:
    """A model, or the folder of one saved with `save_pretrained`, as a ScriptViT."""
    if isinstance(model, ScriptViT):
        return model
    path = Path(model)
    try:
        return ScriptViT.from_pretrained(path)
    except FileNotFoundError:
        raise UserError(
            f"no trained model at {path}: train one (`scriptvit train --data data/fonts --out runs/cpu`, "
            f"then `python bench/ship_model.py runs/cpu --dest {path}`) or point --model / model= at one"
        ) from None
    except ValueError as e:
        raise UserError(f"cannot load the model at {path}: {e}") from None


@contextmanager
def _inference(model: ScriptViT):
    """Eval mode (no dropout) and no autograd, restoring the model's mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def crop_to_ink(img: np.ndarray) -> np.ndarray:
    """uint8 [32, W] generated word -> its ink columns (pixels < 200, as the training crops).
    The model pads every character to 16 px; without ink the word is kept whole."""
    cols = np.nonzero((img < 200).any(axis=0))[0]
    return img if len(cols) == 0 else img[:, cols[0] : cols[-1] + 1]


def baseline_shift(img: np.ndarray, max_shift: int = 2) -> int:
    """Rows to move a generated word so its baseline sits on `BASELINE` (at most `max_shift`)."""
    ink = (255.0 - img) / 255.0
    if ink.sum() < 1:
        return 0
    return int(np.clip(round(BASELINE - core_band(ink)[1]), -max_shift, max_shift))


def parse_text(text: str, charset: Charset, replace_unknown: str | None = None) -> list[list[list[str]]]:
    """Text -> paragraphs (split at blank lines) -> lines (at newlines) -> words (at spaces).

    Characters outside `charset` are an error listing them, unless `replace_unknown` is given
    ('' drops them). Raises UserError for an empty text.
    """
    if not isinstance(text, str) or not text.strip():
        raise UserError("nothing to write: the text is empty")
    bad = [c for c in charset.unknown(text) if not c.isspace()]
    if bad and replace_unknown is None:
        shown = " ".join(repr(c) for c in bad)
        raise UserError(
            f"the text has characters this model cannot write: {shown}; remove them or pass "
            "replace_unknown='?' (CLI: --replace-unknown '?'; '' drops them)"
        )
    if bad and charset.unknown(replace_unknown):
        raise UserError(f"replace_unknown={replace_unknown!r} is itself not writable")
    paragraphs = []
    for para in re.split(r"\n\s*\n", text.strip()):
        lines = [
            " ".join(charset.clean(w, replace_unknown or "") for w in line.split()).split()
            for line in para.split("\n")
        ]
        if any(lines):
            paragraphs.append([line for line in lines if line])
    if not paragraphs:
        raise UserError("nothing to write: no writable characters are left in the text")
    return paragraphs


class Writer:
    """A writer's style (encoded once) + a generator: `write`, `write_lines`, `write_batch`."""

    def __init__(
        self,
        model: ScriptViT | str | Path,
        style_words: Sequence[np.ndarray],
        *,
        k: int | None = None,
        seed: int = 0,
        notes: Sequence[str] = (),
        charset: Charset | None = None,
    ):
        self.model = load_model(model)
        self.model_dir = None if isinstance(model, ScriptViT) else Path(model)
        self._adapt = None  # (AdaptConfig with its critics, texts) once `adapt` was called
        self.charset = charset or Charset()
        self.seed = seed
        self.notes = list(notes)
        cfg = self.model.config
        if cfg.num_classes < self.charset.num_classes:
            raise UserError(
                f"the model knows {cfg.num_classes - 1} characters, the charset has {len(self.charset)}"
            )
        self.words = [np.asarray(w) for w in style_words]
        if not self.words:
            raise UserError("no style words: pass one or more pictures of your handwriting")
        for w in self.words:
            if w.ndim != 2 or w.dtype != np.uint8 or w.shape[0] != HEIGHT:
                raise UserError(f"style words must be uint8 [{HEIGHT}, w] images, got {w.dtype} {w.shape}")
        k_max = cfg.max_style_images
        self.k = DEFAULT_K if k is None else int(k)
        if not 1 <= self.k <= k_max:
            raise UserError(
                f"k must be between 1 and {k_max} (the most style images this model takes), got {k}"
            )
        n = len(self.words)
        if n < self.k:
            self.notes.append(
                f"found {n} style word{'s' * (n != 1)}, fewer than k = {self.k}: using all {n} "
                "(more words - a longer line, more photos - usually give a closer likeness)"
            )
            self.k = n
        elif n > self.k:
            self.notes.append(
                f"found {n} style words: using {self.k} of them, drawn with seed {seed} "
                f"(k={min(n, k_max)} uses {'all' if n <= k_max else k_max}; at most {k_max})"
            )
        self._memories: dict[int, StyleMemory] = {}
        self.chosen = self._draw(0)
        canvas_w = cfg.style_size[1]
        wide = sum(self.words[i].shape[1] > canvas_w for i in self.chosen)
        if wide:
            self.notes.append(
                f"{wide} of the chosen style words are wider than the model's {canvas_w}-px canvas: "
                f"it sees their first {canvas_w} px"
            )

    @classmethod
    def from_images(
        cls,
        images: ImageLike | Sequence[ImageLike],
        model: ScriptViT | str | Path = DEFAULT_MODEL,
        *,
        k: int | None = None,
        seed: int = 0,
        split: bool = True,
        deskew: bool = True,
        preprocess: bool = True,
    ) -> Writer:
        """Pictures of handwriting (paths, PIL images or arrays; words, lines or pages) -> Writer.

        `preprocess=False` takes model-ready words (uint8 [32, w], 255 = paper) as they are.
        """
        source, model = model, load_model(model)  # a missing model is reported before any image work
        if preprocess:
            words, notes = prepare_style_images(images, split=split, deskew_lines=deskew)
        else:
            words = [images] if isinstance(images, np.ndarray) else list(images)
            notes = []
        writer = cls(model, words, k=k, seed=seed, notes=notes)
        writer.model_dir = None if isinstance(source, ScriptViT) else Path(source)
        return writer

    def __repr__(self) -> str:
        lines = [f"Writer({len(self.words)} style words, k={self.k}, using {self.chosen})"]
        return "\n  ".join(lines + self.notes)

    # --- style memory ----------------------------------------------------------------------
    def _draw(self, draw: int) -> list[int]:
        """Indices of the style words of draw `draw` (0 = the writer's main style)."""
        n, k = len(self.words), self.k
        rng = np.random.default_rng((self.seed, draw))
        if n > k:  # a seeded subset: words of at least ~2 letters first, then the rest
            wide = [i for i in range(n) if self.words[i].shape[1] >= WIDE_WORD]
            rest = [i for i in range(n) if self.words[i].shape[1] < WIDE_WORD]
            pick = list(rng.permutation(wide))[:k]
            pick += list(rng.permutation(rest))[: k - len(pick)]
            pick = sorted(int(i) for i in pick)
            return pick if draw == 0 else [pick[i] for i in rng.permutation(k)]
        return list(range(n)) if draw == 0 else [int(i) for i in rng.permutation(n)]

    def memory(self, draw: int = 0) -> StyleMemory:
        """The style memory of draw `draw`, encoded on first use and cached (and adapted to its
        style words first, after `adapt`)."""
        if draw not in self._memories:
            idx = self.chosen if draw == 0 else self._draw(draw)
            size = self.model.config.style_size
            canvases, widths = zip(*(place_on_canvas(self.words[i], size) for i in idx))
            device = next(self.model.parameters()).device
            style = torch.stack(canvases)[None].to(device)  # [1, K, 1, Hs, Ws]
            with _inference(self.model):
                memory = self.model.encode_style(style, torch.tensor([widths], device=device))
            if self._adapt is not None:
                from .adaptation import adapt

                cfg, texts = self._adapt
                words, said = [self.words[i] for i in idx], [texts[i] for i in idx]
                _, memory, _ = adapt(self.model, words, said, cfg, memory=memory, charset=self.charset)
            self._memories[draw] = memory
        return self._memories[draw]

    def adapt(
        self,
        texts: Sequence[str],
        *,
        steps: int = 40,
        lr: float = 0.03,
        critic: torch.nn.Module | str | Path | None = None,
        feat_d: float = 0.0,
        discriminator: torch.nn.Module | str | Path | None = None,
    ) -> Writer:
        """Test-time adaptation (`adaptation.py`, not in the paper): `texts[i]` is what style word
        `i` says. Every style memory this writer uses is then fitted, before it writes, so that
        the model's own rendering of those texts matches the style words in the training writer
        classifier's feature space (paired feature loss, the memory is the only free parameter).
        On 31 unseen writers (k = 5) it took FID 28.4 -> 25.0 and attribution 0.715 -> 0.752 (8 draws
        per writer; one draw, two seeds: FID -5.0 and -2.2) - a small gain (README, "Style
        fidelity"). `critic`: W, or the folder or checkpoint holding it (default: the model folder's
        `critics.safetensors`). `feat_d` > 0 adds the same loss in the discriminator D's features
        with that weight (`AdaptConfig.w_feat_d`; 7 took HWD 6.85 -> 6.73 over W alone, 8 draws -
        about the benchmark's noise); `discriminator`: D, or where it is (default: the folder or
        checkpoint W came from, else the model folder). Costs `steps` decoder passes per style
        draw. Returns self."""
        from .adaptation import AdaptConfig, check_style_texts, load_critic

        texts = [str(t) for t in texts]
        if len(texts) != len(self.words):
            raise UserError(
                f"{len(self.words)} style words but {len(texts)} texts: "
                "give the text of every style word, in order"
            )

        def find(net, arg: str, letter: str, which: str) -> torch.nn.Module:
            if net is None:
                if self.model_dir is None:
                    raise UserError(f"adapt needs {which}: pass {arg}= (a model folder or checkpoint)")
                net = self.model_dir
            return net if isinstance(net, torch.nn.Module) else load_critic(net, letter)

        if discriminator is None and critic is not None and not isinstance(critic, torch.nn.Module):
            discriminator = critic  # D from where W came from
        cfg = AdaptConfig(steps, lr, "memory", w_l1=0.0, w_feat=1.0, w_feat_d=feat_d)
        check_style_texts(texts, self.charset)
        cfg.critic = find(critic, "critic", "W", "the writer classifier")
        if cfg.w_feat_d > 0:
            cfg.discriminator = find(discriminator, "discriminator", "D", "the discriminator")
        self._adapt = (cfg, texts)
        self._memories = {}
        return self

    def style_image(self) -> Image.Image:
        """The chosen style words side by side, as the model sees them (before canvas padding)."""
        parts = []
        for i in self.chosen:
            parts += [self.words[i], np.full((HEIGHT, 8), 255, np.uint8)]
        return Image.fromarray(np.concatenate(parts[:-1], axis=1))

    # --- text -> words -> images -----------------------------------------------------------
    def _render(self, jobs: Sequence[tuple[str, int]]) -> dict[tuple[str, int], np.ndarray]:
        """(word, draw) pairs -> cropped word images; one decode call per draw and per
        `MAX_BATCH` words of similar length, each distinct pair decoded once."""
        out: dict[tuple[str, int], np.ndarray] = {}
        todo: dict[int, list[str]] = {}
        for word, draw in dict.fromkeys(jobs):
            todo.setdefault(draw, []).append(word)
        device = next(self.model.parameters()).device
        for draw, words in todo.items():
            memory = self.memory(draw)
            words.sort(key=len)  # similar lengths share a batch: less padding to decode
            for s in range(0, len(words), MAX_BATCH):
                chunk = words[s : s + MAX_BATCH]
                lengths = torch.tensor([len(w) for w in chunk])
                ids = torch.zeros(len(chunk), int(lengths.max()), dtype=torch.long)  # [B, L], 0 = padding
                for b, w in enumerate(chunk):
                    ids[b, : len(w)] = torch.tensor(self.charset.encode(w))
                with _inference(self.model):
                    images, widths = self.model.write(memory, ids.to(device), lengths.to(device))
                for w, img in zip(chunk, to_uint8(images, widths)):
                    out[(w, draw)] = crop_to_ink(img)
        return out

    @staticmethod
    def _jobs(paragraphs: list[list[list[str]]], draw: int) -> list[tuple[str, int]]:
        """Every word with the draw it is written with: the n-th repeat of a word in the text
        uses the (draw + n)-th memory, so a repeated word is not a carbon copy."""
        seen: dict[str, int] = {}
        jobs = []
        for para in paragraphs:
            for line in para:
                for w in line:
                    n = seen[w] = seen.get(w, -1) + 1
                    jobs.append((w, draw + n % MAX_DRAWS))
        return jobs

    # --- layout ------------------------------------------------------------------------------
    def _layout(
        self,
        paragraphs: list[list[list[str]]],
        images: list[np.ndarray],
        width: int | None,
        seed: int,
    ) -> np.ndarray:
        """Word images (in text order) -> a page uint8 [H, W]; wraps at `width` px when given."""
        rng = np.random.default_rng(seed)
        it = iter(images)
        avail = None if width is None else width - 2 * PAD
        rows: list[tuple[list[tuple[int, int, np.ndarray]], bool]] = []  # (placed words, paragraph start)
        for para in paragraphs:
            first = True
            for line in para:
                placed, x = [], 0
                for _ in line:
                    img = next(it)
                    gap = round(SPACE * np.exp(rng.normal(0, SPACE_JITTER))) if placed else 0
                    dy = baseline_shift(img) + int(np.clip(round(rng.normal(0, 0.4)), -1, 1))
                    w = img.shape[1]
                    if avail is not None and placed and x + gap + w > avail:  # wrap
                        rows.append((placed, first))
                        first, placed, x, gap = False, [], 0, 0
                    placed.append((x + gap, dy, img))
                    x += gap + w
                    if avail is not None and w > avail:
                        warnings.warn(
                            f"a word is {w} px wide, more than the {avail} px a line holds", stacklevel=3
                        )
                rows.append((placed, first))
                first = False
        content_w = max(x + img.shape[1] for placed, _ in rows for x, _, img in placed)
        page_w = max(width or 0, content_w + 2 * PAD)
        page_h = 2 * PAD + len(rows) * LINE_PITCH - 2 + PARAGRAPH_GAP * (sum(f for _, f in rows) - 1)
        page = np.full((page_h, page_w), 255, np.uint8)
        y = PAD - LINE_PITCH
        for n, (placed, para_start) in enumerate(rows):
            y += LINE_PITCH + (PARAGRAPH_GAP if para_start and n else 0)
            for x, dy, img in placed:
                top, left = y + SLACK + dy, PAD + x
                region = page[top : top + HEIGHT, left : left + img.shape[1]]
                np.minimum(region, img, out=region)  # darker wins where words touch
        return page

    def _page(self, text: str, width: int | None, seed: int, replace_unknown: str | None, draw: int = 0):
        paragraphs = parse_text(text, self.charset, replace_unknown)
        jobs = self._jobs(paragraphs, draw)
        rendered = self._render(jobs)
        return self._layout(paragraphs, [rendered[j] for j in jobs], width, seed)

    # --- public API ----------------------------------------------------------------------------
    def write_array(self, text: str, *, seed: int = 0, replace_unknown: str | None = None) -> np.ndarray:
        """`text` on one line (newlines count as spaces) -> uint8 [H, W], 255 = paper."""
        return self._page(
            " ".join(text.split()) if isinstance(text, str) else text, None, seed, replace_unknown
        )

    def write(self, text: str, *, seed: int = 0, replace_unknown: str | None = None) -> Image.Image:
        """`text` on one line -> a greyscale PIL image (see `write_array`)."""
        return Image.fromarray(self.write_array(text, seed=seed, replace_unknown=replace_unknown))

    def write_lines(
        self, text: str, width: int | None = None, *, seed: int = 0, replace_unknown: str | None = None
    ) -> Image.Image:
        """Wrapped text: lines no wider than `width` px (a single longer word gets its own line
        and widens the page, with a warning); "\\n" breaks a line, a blank line a paragraph."""
        if width is not None and width < 2 * PAD + 1:
            raise UserError(f"width {width} px is too small (at least {2 * PAD + 1})")
        return Image.fromarray(self._page(text, width, seed, replace_unknown))

    def write_batch(
        self,
        texts: Sequence[str],
        *,
        width: int | None = None,
        seed: int = 0,
        replace_unknown: str | None = None,
    ) -> list[Image.Image]:
        """Many texts at once: every word of every text in one batched decode, then each text
        laid out exactly as `write` (width None) or `write_lines` (width given) would."""
        if isinstance(texts, str) or len(texts) == 0:
            raise UserError("write_batch takes a non-empty list of texts")
        if width is None:
            texts = [" ".join(t.split()) if isinstance(t, str) else t for t in texts]
        parsed = [parse_text(t, self.charset, replace_unknown) for t in texts]
        jobs = [self._jobs(p, 0) for p in parsed]
        rendered = self._render([j for js in jobs for j in js])
        return [
            Image.fromarray(self._layout(p, [rendered[j] for j in js], width, seed))
            for p, js in zip(parsed, jobs)
        ]

    def variations(
        self,
        text: str,
        n: int = 4,
        *,
        width: int | None = None,
        seed: int = 0,
        replace_unknown: str | None = None,
    ) -> list[Image.Image]:
        """`n` renders of `text`: render 0 is `write_lines(text, width, seed=seed)`; render v
        reads other style memories (draws 4v, 4v+1, ...: other subsets or orders of the style
        words) and lays out with seed `seed + v`."""
        if n < 1:
            raise UserError(f"variations must be >= 1, got {n}")
        return [
            Image.fromarray(self._page(text, width, seed + v, replace_unknown, draw=v * MAX_DRAWS))
            for v in range(n)
        ]
