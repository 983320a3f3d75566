"""The judges: a handwriting feature network and an evaluation recognizer, for metrics only.

FID/KID need an image embedding, HWD needs per-column tokens, writer-id and style retrieval
need a writer-aware space, CER needs a reader. HWT/VATr borrow ImageNet's Inception-v3 for the
first and HWD (Pippi et al., BMVC 2023) a VGG16 trained on synthetic fonts; neither can be
downloaded here, so the lab trains its own *judges* on REAL words of the TRAINING writers
(never on generated words, never used as a training loss of the generator):

`FeatureNet` (the feature extractor; channels 16, 32, 64, 128, 256 for ch = 16):

    word uint8 [32, w] -> paper-padded to >= 32 px wide (centred, as HWD pads to a square)
    image [B, 1, 32, W] in [-1, 1], W a multiple of 32 (right padding = paper)
      --5 x (conv3x3 + BatchNorm + ReLU + maxpool 2x2)-->  [B, 256, 1, W/32]
    tokens [B, W/32, 256]: one token per 32-px column         (`tokens`; HWD's tokens)
      --mean over the n = max(1, floor(w/32)) tokens inside the word, padding masked out-->
    embedding [B, 256]                                         (`embed`; FID/KID, retrieval)
      --linear--> logits [B, num training writers]             (`forward`; writer-id)

It is trained with writer cross-entropy; with probability `crop_prob` a training word is cut to
its left 32 or 64 px, so the embedding also means something on the protocol crops of FID.
At evaluation (`Judges`), words are batched only with words of the same width: padding then
never reaches a word's features (conv receptive fields cross the word's end), so a word's
features do not depend on its batch.

The evaluation recognizer is the library's CRNN (`recognizer.Recognizer`, linear head),
trained with CTC on the same real words. It reads one column per 4 px, and font words are as
narrow as 5 px per character, so every image (real or generated) is first stretched x2 in width
(`rec_stretch`), then padded to >= 16 px. It learns on words randomly resized in width and
thickened or thinned (`augment_for_reading`), so the 16-px-per-character generated words are
not out of its training range.

`train_judges` saves both as safetensors + `judges.json` (no pickle); `judges_for` caches them
under a key made of the training words' pixels and the judge config, so evaluation trains once.

On the default font data (31 training writers, 8.5k words), the default `JudgeConfig` trains in
~1.5 min (feature net) + ~7 min (recognizer) on one CPU thread; on held-out real words the
judges then reach writer-id 96% (seen writers), retrieval@1 96% (seen) / 92% (7 unseen
writers), CER 9% (seen) / 35% (unseen fonts).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from scipy import ndimage
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .charset import Charset
from .losses import ctc_loss
from .recognizer import Recognizer
from .words import WordSet

TOKEN_PX = 32  # image px per token column (5 poolings)
FORMAT = 1  # bump when the saved layout or the training recipe changes (invalidates caches)
JUDGES_JSON = "judges.json"


@dataclass
class JudgeConfig:
    feat_ch: int = 16
    """Base channels of the feature net (x1, x2, x4, x8, then `feat_dim`)."""
    feat_dim: int = 256
    """Size of the tokens and of the embedding."""
    rec_ch: int = 16
    """Base channels of the evaluation CRNN."""
    rec_stretch: int = 2
    """Width factor applied to every image before the recognizer."""
    rec_scale: tuple[float, float] = (0.8, 2.0)
    """Recognizer training only: each word is resized in width by a log-uniform factor in this
    range (generated words are 16 px per character, real font words ~7-14), and its strokes
    are thickened (p = 0.25) or thinned (p = 0.15) by a 2x2 min / max filter."""
    feat_steps: int = 1500
    rec_steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    crop_prob: float = 0.3
    """Share of feature-net training words cut to their left 32 or 64 px."""
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> JudgeConfig:
        known = {f.name for f in fields(cls)}
        d = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
        return cls(**d)


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)]


class FeatureNet(nn.Module):
    def __init__(self, *, num_writers: int, ch: int = 16, dim: int = 256):
        super().__init__()
        c = [1, ch, 2 * ch, 4 * ch, 8 * ch, dim]
        self.trunk = nn.Sequential(*(m for i in range(5) for m in _block(c[i], c[i + 1])))
        self.head = nn.Linear(dim, num_writers)
        self.dim = dim

    def tokens(self, images: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B, 1, 32, W], widths [B] px -> tokens [B, W/32, D], valid mask [B, W/32]."""
        assert images.dim() == 4 and images.shape[1:3] == (1, 32), (
            f"expected [B, 1, 32, W] word images, got {tuple(images.shape)}"
        )
        assert images.shape[-1] % TOKEN_PX == 0, f"pad widths to a multiple of {TOKEN_PX}"
        t = self.trunk(images).squeeze(2).transpose(1, 2)  # [B, 1, ...] -> [B, T, D]
        n = (widths.to(t.device) // TOKEN_PX).clamp_min(1)  # [B] tokens inside each word
        mask = torch.arange(t.shape[1], device=t.device)[None, :] < n[:, None]  # [B, T]
        return t, mask

    def embed(self, images: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
        """[B, 1, 32, W] -> [B, D]: the masked mean of the word's tokens."""
        return masked_mean(*self.tokens(images, widths))

    def forward(self, images: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
        """[B, 1, 32, W] -> writer logits [B, num_writers]."""
        return self.head(self.embed(images, widths))


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """tokens [B, T, D], mask [B, T] -> [B, D]: mean over each word's valid tokens."""
    m = mask.to(tokens.dtype)[..., None]
    return (tokens * m).sum(1) / m.sum(1)


def word_batch(
    images: Sequence[np.ndarray], *, min_width: int, multiple: int, stretch: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [32, w_i] words -> ([B, 1, 32, W] in [-1, 1], widths [B]) padded with paper.

    Each word is stretched x`stretch` in width (nearest), padded centred to `min_width` if
    narrower, then the batch is right-padded to a common width that is a multiple of `multiple`.
    """
    words = [np.repeat(im, stretch, axis=1) if stretch > 1 else im for im in images]
    words = [_pad_centred(im, min_width) for im in words]
    widths = torch.tensor([im.shape[1] for im in words])
    w_pad = -(-int(widths.max()) // multiple) * multiple
    x = torch.ones(len(words), 1, 32, w_pad)
    for b, im in enumerate(words):
        assert im.shape[0] == 32, f"judges read 32-px-high words, got height {im.shape[0]}"
        x[b, 0, :, : im.shape[1]] = torch.from_numpy(im.astype(np.float32) / 127.5 - 1.0)
    return x, widths


def _pad_centred(im: np.ndarray, width: int) -> np.ndarray:
    w = im.shape[1]
    if w >= width:
        return im
    left = (width - w) // 2
    return np.pad(im, ((0, 0), (left, width - w - left)), constant_values=255)


def by_width(images: Sequence[np.ndarray], batch_size: int) -> Iterator[list[int]]:
    """Indices of `images` in batches whose words all have the same width."""
    groups = defaultdict(list)
    for i, im in enumerate(images):
        groups[im.shape[1]].append(i)
    for w in sorted(groups):
        idx = groups[w]
        for s in range(0, len(idx), batch_size):
            yield idx[s : s + batch_size]


@dataclass
class Judges:
    """The trained judges; every method takes uint8 [32, w] words (255 = paper)."""

    feature_net: FeatureNet
    recognizer: Recognizer
    writers: list[str]  # class index -> training writer id
    config: JudgeConfig
    info: dict
    charset: Charset = Charset()

    def __post_init__(self):
        self.feature_net.eval()
        self.recognizer.eval()

    @torch.no_grad()
    def describe(self, images: Sequence[np.ndarray], batch_size: int = 64) -> dict:
        """-> {"tokens": list of [n_i, D], "embedding": [N, D], "logits": [N, writers]}."""
        tokens = [None] * len(images)
        emb = torch.zeros(len(images), self.config.feat_dim)
        logits = torch.zeros(len(images), len(self.writers))
        for idx in by_width(images, batch_size):
            x, w = word_batch([images[i] for i in idx], min_width=TOKEN_PX, multiple=TOKEN_PX)
            t, mask = self.feature_net.tokens(x, w)
            e = masked_mean(t, mask)
            emb[idx], logits[idx] = e, self.feature_net.head(e)
            for j, i in enumerate(idx):
                tokens[i] = t[j, mask[j]]
        return {"tokens": tokens, "embedding": emb, "logits": logits}

    def embed(self, images: Sequence[np.ndarray], batch_size: int = 64) -> torch.Tensor:
        """[N, D] embeddings (masked mean over the word's tokens)."""
        return self.describe(images, batch_size)["embedding"]

    @torch.no_grad()
    def read(self, images: Sequence[np.ndarray], batch_size: int = 64) -> list[str]:
        """Greedy CTC transcription of each word by the evaluation recognizer."""
        out = [""] * len(images)
        r, s = self.recognizer, self.config.rec_stretch
        for idx in by_width(images, batch_size):
            x, w = word_batch([images[i] for i in idx], min_width=16, multiple=r.stride, stretch=s)
            texts = r.greedy_decode(r(x, w), r.output_lengths(w), self.charset)
            for i, t in zip(idx, texts):
                out[i] = t
        return out


# --- training -------------------------------------------------------------------------------
def _sorted_batches(widths: np.ndarray, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless random batches; words of a batch have similar widths (less padding to compute)."""
    while True:
        pool = rng.permutation(len(widths))
        for s in range(0, len(pool) - batch_size + 1, 8 * batch_size):
            chunk = pool[s : s + 8 * batch_size]
            chunk = chunk[np.argsort(widths[chunk], kind="stable")]
            for b in rng.permutation(len(chunk) // batch_size):
                yield chunk[b * batch_size : (b + 1) * batch_size]


def _fit(
    net: nn.Module,
    step_loss: Callable,
    words: WordSet,
    *,
    steps: int,
    minutes: float | None,
    cfg: JudgeConfig,
    desc: str,
    progress: bool,
) -> dict:
    """Adam on `step_loss(net, samples, rng) -> (loss, accuracy-or-None)` for `steps` batches."""
    rng = np.random.default_rng(cfg.seed)
    widths = np.array([s.image.shape[1] for s in words])
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 2))
    net.train()
    t0, ema, done = time.time(), {}, 0
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for _, idx in zip(bar, _sorted_batches(widths, min(cfg.batch_size, len(words)), rng)):
        loss, acc = step_loss(net, [words[int(i)] for i in idx], rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        done += 1
        for k, v in (("loss", float(loss.detach())), ("acc", acc)):
            if v is not None:
                ema[k] = v if k not in ema else 0.95 * ema[k] + 0.05 * v
        bar.set_postfix({k: f"{v:.3f}" for k, v in ema.items()})
        if minutes is not None and time.time() - t0 > 60 * minutes:
            break
    net.eval()
    return {
        "steps": done,
        "seconds": round(time.time() - t0, 1),
        **{f"final_{k}": round(v, 4) for k, v in ema.items()},
    }


def _feature_loss(writer_index: dict[str, int], crop_prob: float):
    def step(net: FeatureNet, samples, rng):
        images = []
        for s in samples:
            im = s.image
            if rng.random() < crop_prob:  # the protocol crops of FID: left 32 or 64 px
                im = im[:, : int(rng.choice([32, 64]))]
            images.append(im)
        x, w = word_batch(images, min_width=TOKEN_PX, multiple=TOKEN_PX)
        y = torch.tensor([writer_index[s.writer] for s in samples])
        logits = net(x, w)
        return F.cross_entropy(logits, y), float((logits.argmax(1) == y).float().mean())

    return step


def augment_for_reading(
    image: np.ndarray, rng: np.random.Generator, scale: tuple[float, float]
) -> np.ndarray:
    """A random width scale and stroke thickness (see `JudgeConfig.rec_scale`)."""
    h, w = image.shape
    f = float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]))))
    image = np.asarray(Image.fromarray(image).resize((max(4, round(w * f)), h), Image.BILINEAR))
    u = rng.random()
    if u < 0.25:
        image = ndimage.minimum_filter(image, size=2)  # ink is dark: the min grows strokes
    elif u < 0.40:
        image = ndimage.maximum_filter(image, size=2)
    return image


def _ctc_step(charset: Charset, stretch: int, scale: tuple[float, float]):
    def step(net: Recognizer, samples, rng):
        images = [augment_for_reading(s.image, rng, scale) for s in samples]
        x, w = word_batch(images, min_width=16, multiple=net.stride, stretch=stretch)
        ids = [charset.encode(s.text) for s in samples]
        lengths = torch.tensor([len(t) for t in ids])
        targets = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
        for b, t in enumerate(ids):
            targets[b, : len(t)] = torch.tensor(t)
        return ctc_loss(net(x, w), targets, net.output_lengths(w), lengths), None

    return step


def train_judges(
    train_words: WordSet,
    out_dir: str | Path,
    *,
    config: JudgeConfig | None = None,
    steps: int | None = None,
    minutes: float | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> Judges:
    """Train the feature net and the recognizer on real training words; save them in `out_dir`.

    `steps` overrides both judges' step counts; `minutes` caps the wall time (half each).
    """
    cfg = JudgeConfig(**asdict(config or JudgeConfig()))
    if steps is not None:
        cfg.feat_steps = cfg.rec_steps = steps
    if seed is not None:
        cfg.seed = seed
    writers = sorted(train_words.writers)
    if len(writers) < 2:
        raise ValueError(f"the judges need >= 2 training writers, got {len(writers)}")
    torch.manual_seed(cfg.seed)
    feat = FeatureNet(num_writers=len(writers), ch=cfg.feat_ch, dim=cfg.feat_dim)
    rec = Recognizer(num_classes=Charset().num_classes, ch=cfg.rec_ch, head="linear", norm="batch")
    half = None if minutes is None else minutes / 2
    f_loss = _feature_loss({w: i for i, w in enumerate(writers)}, cfg.crop_prob)
    r_loss = _ctc_step(Charset(), cfg.rec_stretch, cfg.rec_scale)
    run = dict(minutes=half, cfg=cfg, progress=progress)
    f_stats = _fit(feat, f_loss, train_words, steps=cfg.feat_steps, desc="judges: feature net", **run)
    r_stats = _fit(rec, r_loss, train_words, steps=cfg.rec_steps, desc="judges: recognizer", **run)
    info = {
        "fingerprint": words_fingerprint(train_words),
        "train_words": len(train_words),
        "feature_net": f_stats,
        "recognizer": r_stats,
    }
    judges = Judges(feat, rec, writers, cfg, info)
    save_judges(judges, out_dir)
    return judges


# --- saving, loading, caching ---------------------------------------------------------------
def save_judges(judges: Judges, out_dir: str | Path) -> Path:
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    for name, net in (("feature_net", judges.feature_net), ("recognizer", judges.recognizer)):
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()},
            str(d / f"{name}.safetensors"),
        )
    meta = {"format": FORMAT, "config": asdict(judges.config), "writers": judges.writers, "info": judges.info}
    (d / JUDGES_JSON).write_text(json.dumps(meta, indent=2) + "\n")
    return d


def load_judges(directory: str | Path) -> Judges:
    d = Path(directory)
    if not (d / JUDGES_JSON).is_file():
        raise FileNotFoundError(f"no judges in {d}: {JUDGES_JSON} is missing (train them with train_judges)")
    meta = json.loads((d / JUDGES_JSON).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"judges in {d} have format {meta.get('format')}, this library reads {FORMAT}: retrain"
        )
    cfg = JudgeConfig.from_dict(meta["config"])
    feat = FeatureNet(num_writers=len(meta["writers"]), ch=cfg.feat_ch, dim=cfg.feat_dim)
    rec = Recognizer(num_classes=Charset().num_classes, ch=cfg.rec_ch, head="linear", norm="batch")
    for name, net in (("feature_net", feat), ("recognizer", rec)):
        path = d / f"{name}.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"judges in {d} are incomplete: {path.name} is missing")
        net.load_state_dict(load_file(str(path)), strict=True)
    return Judges(feat, rec, meta["writers"], cfg, meta["info"])


def words_fingerprint(words: WordSet) -> str:
    """sha256 of every (writer, text, pixels) in order: the dataset's identity for the cache."""
    h = hashlib.sha256()
    for s in words:
        h.update(f"{s.writer}\0{s.text}\0{s.image.shape}\0".encode())
        h.update(np.ascontiguousarray(s.image).tobytes())
    return h.hexdigest()


def default_cache_root() -> Path:
    """`$SCRIPTVIT_JUDGES`, else `results/judges` (relative to the working directory)."""
    return Path(os.environ.get("SCRIPTVIT_JUDGES", "results/judges"))


def judges_at(path: str | Path | None, train_words: WordSet, *, progress: bool = True) -> Judges:
    """The judges a `--judges PATH` option names: a judges folder itself, or a cache root in
    which `judges_for` finds (or trains) the judges of `train_words` (None: the default root)."""
    p = Path(path) if path else None
    if p is not None and (p / JUDGES_JSON).is_file():
        return load_judges(p)
    return judges_for(train_words, p, progress=progress)


def judges_for(
    train_words: WordSet,
    cache_root: str | Path | None = None,
    *,
    config: JudgeConfig | None = None,
    progress: bool = True,
) -> Judges:
    """Load the judges of these training words (and config) from the cache, training on a miss."""
    cfg = config or JudgeConfig()
    key_src = f"{FORMAT}:{words_fingerprint(train_words)}:{json.dumps(asdict(cfg), sort_keys=True)}"
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    d = Path(cache_root if cache_root is not None else default_cache_root()) / key
    if (d / JUDGES_JSON).is_file():
        return load_judges(d)
    return train_judges(train_words, d, config=cfg, progress=progress)
