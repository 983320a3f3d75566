"""Test-time adaptation: a few gradient steps on the writer's own style words (library option).

Not in ScriptViT (arXiv 2511.18307), which writes an unseen hand in one forward pass. Issue 8
measured what that pass gives on writers the generator never saw: a generic hand, far below the
real-vs-real floors. Yet the k style words carry more than the encoder reads from them: their
*texts* are known (a dataset's labels, or what the user typed), so each is a paired example of
this writer's hand. Adaptation fits the generator to reproduce them before it writes anything:

    memory = E(style words)                                   (as usual, once)
    for step in 1..steps:                                     (k targets per step)
        L = mean_i |G(memory, text_i)[:, :w_i] - style_word_i|     (L1, each at its real width w_i)
          + w_ctc * CTC(R(G(memory, anchors)), anchors)          (optional legibility anchor)
        update the `what` parameters with Adam
    write any text with the adapted memory / generator

`what` picks the free parameters:
- "memory": an offset added to the style-memory tokens (the network is untouched);
- "decoder": a copy of the fusion decoder and synthesis network (the content embeddings,
  style encoder and width head stay fixed) - the writer's own small generator;
- "synthesis": a copy of the synthesis network only;
- "norms": only the scales and shifts of the synthesis network's instance norms (~1 % of its
  weights: the AdaIN view of style - per-channel statistics - with little room to forget letters).

L1 alone fits the k words and forgets the rest: measured on 8 unseen writers (k = 5), 20-30 steps
took an independent recognizer's CER on *other* words from 0.08 to 0.47 and blurred them. The
anchor is the training recipe's own recognizer R (never the judges') reading `anchor_words` random
vocabulary words written by the adapted generator each step - every letter must stay readable.

In a feature space instead of pixels (session 16): the model folder ships the training writer
classifier W (`critics.safetensors`, trained on the training writers' real words only), and two
more terms compare there (`load_critic`):

    w_feat * feature_match(W.trunk(G(memory, text_i)), W.trunk(style_word_i))   (paired, as the trainer's)
    w_hand * |mean W.embed(G(memory, anchors)) - mean W.embed(style words)|^2 / |mean W.embed(style)|^2

With `what="memory"`, w_l1=0, w_feat=1, 40 steps at lr 0.03 (`Writer.adapt`, `scriptvit write
--style-texts`) the independent judges moved towards the real words on 31 unseen writers (k = 5,
8 draws per writer: attribution 0.715 -> 0.752, FID 28.4 -> 25.0, HWD 7.25 -> 6.95; a second seed
with one draw: FID 31.5 -> 29.3, attribution +0.007); the hand
loss, which needs no texts, moved them away (FID 54.5): W's pooled centroid is a target the
generator can meet without writing like the writer (README, "Style fidelity").

The same information as the one-pass model (the k style words) plus their texts; nothing of the
words to be written. It costs `steps` decoder passes per writer (seconds on a CPU for k = 5).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .attention import _ids
from .charset import Charset
from .config import ScriptViTConfig
from .discriminator import Discriminator
from .errors import UserError
from .generator import ScriptViT
from .losses import feature_match_loss
from .recognizer import Recognizer
from .sampler import place_on_canvas, to_tensor_image
from .style_encoder import StyleMemory
from .synthesis import MaskedInstanceNorm
from .writer_classifier import WriterClassifier

WHAT = ("memory", "decoder", "synthesis", "norms")
RECOGNIZER_NAME = "recognizer.safetensors"
"""The training recipe's recognizer R, shipped beside the generator (`bench/ship_model.py`)."""


@dataclass
class AdaptConfig:
    steps: int = 60
    """Adam steps over the k style words (0 = no adaptation)."""
    lr: float = 3e-4
    """Adam learning rate (the generator's own training used 2e-4)."""
    what: str = "decoder"
    """'memory' | 'decoder' | 'synthesis' | 'norms': which parameters move (module docstring)."""
    w_ctc: float = 0.0
    """Weight of the legibility anchor (needs `recognizer`; 0 = L1 only)."""
    anchor_words: int = 16
    """Random vocabulary words per step the anchor reads."""
    recognizer: torch.nn.Module | None = field(default=None, repr=False, compare=False)
    """The anchor's recognizer (`load_recognizer`), unless `adapt(recognizer=...)` gives one."""
    w_l1: float = 1.0
    """Weight of the paired pixel L1 on the k style words (the original objective)."""
    w_feat: float = 0.0
    """Weight of the paired feature loss: |phi(G(text_i)) - phi(style word i)| in the training
    writer classifier W's trunk (`losses.feature_match_loss`); needs `critic`."""
    w_hand: float = 0.0
    """Weight of the hand loss: the centroid of W's embeddings of the `anchor_words` random words
    the adapted generator writes, against the centroid of the k style words' (squared distance
    relative to the style centroid's norm) - the writer's hand as a whole, on texts other than the
    style words'; needs `critic`."""
    critic: torch.nn.Module | None = field(default=None, repr=False, compare=False)
    """W for `w_feat` / `w_hand` (`load_critic`), unless `adapt(critic=...)` gives one."""
    w_feat_d: float = 0.0
    """Weight of the same paired feature loss in the discriminator D's trunk (features of realism
    rather than identity); needs `discriminator`."""
    discriminator: torch.nn.Module | None = field(default=None, repr=False, compare=False)
    """D for `w_feat_d` (`load_critic(..., "D")`), unless `adapt(discriminator=...)` gives one."""

    def __post_init__(self):
        if self.what not in WHAT:
            raise UserError(f"adaptation `what` must be one of {WHAT}, got {self.what!r}")
        if self.steps < 0 or self.lr <= 0:
            raise UserError(f"adaptation needs steps >= 0 and lr > 0, got {self.steps}, {self.lr}")
        if min(self.w_l1, self.w_feat, self.w_hand, self.w_ctc, self.w_feat_d) < 0:
            raise UserError("adaptation loss weights must be >= 0")

    @property
    def needs_critic(self) -> bool:
        return self.w_feat > 0 or self.w_hand > 0


def check_style_texts(texts: Sequence[str], charset: Charset) -> None:
    """Refuse style-word texts the model cannot write (empty, or characters outside `charset`)."""
    bad = sorted({c for t in texts for c in charset.unknown(t)})
    if bad or not all(texts):
        raise UserError(f"every style word needs a non-empty text the model can write; unknown: {bad}")


def _targets(words: Sequence[np.ndarray], texts: Sequence[str], charset: Charset):
    """Style words + their texts -> target [K, 1, 32, Wmax] (paper-padded), widths [K],
    ids [K, L], lengths [K]."""
    if len(words) != len(texts):
        raise UserError(f"{len(words)} style words but {len(texts)} texts: give one text per word")
    check_style_texts(texts, charset)
    widths = torch.tensor([w.shape[1] for w in words])
    target = torch.ones(len(words), 1, words[0].shape[0], int(widths.max()))
    for i, w in enumerate(words):
        target[i, :, :, : w.shape[1]] = to_tensor_image(w)
    ids, lengths = _ids(texts, charset)
    return target, widths, ids, lengths


def reconstruction_l1(
    model: ScriptViT, memory: StyleMemory, target: torch.Tensor, widths: torch.Tensor, ids, lengths
) -> torch.Tensor:
    """Mean over words of mean |fake - real| inside each word's real width (the trainer's L1)."""
    return _paired(model, memory, target, widths, ids, lengths)[0]


def _paired(model: ScriptViT, memory: StyleMemory, target: torch.Tensor, widths: torch.Tensor, ids, lengths):
    """G's words for the k style texts, paired with the style words -> (L1, fake, target, widths),
    fake and target cropped to one width, `widths` the columns inside each word."""
    # a memory of batch 1 is read by every word (`ScriptViT.decode`): no copies needed
    if model.width_head is not None:  # predicted widths: resample to the real words' widths
        fake, _ = model.write(memory, ids, lengths, widths=widths)
    else:  # fixed char_width: the real words are resampled to the fake's width instead
        fake = model.decode(memory, ids, lengths)
        target = torch.nn.functional.interpolate(
            target, size=(target.shape[-2], fake.shape[-1]), mode="bilinear"
        )
        widths = model.output_widths(lengths)
    w = min(fake.shape[-1], target.shape[-1])
    fake, target = fake[..., :w], target[..., :w]
    inside = (torch.arange(w, device=fake.device)[None, :] < widths[:, None]).to(fake.dtype)[
        :, None, None, :
    ]  # [K,1,1,W]
    diff = ((fake - target).abs() * inside).flatten(1).sum(1)
    return (diff / (fake.shape[-2] * widths.clamp_min(1))).mean(), fake, target, widths


def save_recognizer(recognizer: torch.nn.Module, directory: str | Path) -> Path:
    """R's weights -> `<directory>/recognizer.safetensors` (its architecture is the model config's)."""
    path = Path(directory) / RECOGNIZER_NAME
    save_file({k: v.detach().contiguous().cpu() for k, v in recognizer.state_dict().items()}, str(path))
    return path


def load_recognizer(path: str | Path, config: ScriptViTConfig) -> Recognizer:
    """R from a model folder holding `recognizer.safetensors`, or from a training checkpoint
    (`step_*.pt`); eval mode, frozen."""
    p = Path(path)
    if p.is_dir():
        p = p / RECOGNIZER_NAME
        if not p.is_file():
            raise UserError(f"{p.parent} has no {RECOGNIZER_NAME}: pass a training checkpoint instead")
        state = load_file(str(p))
    elif p.suffix == ".pt" and p.is_file():
        from .trainer import load_checkpoint

        state = load_checkpoint(p)["R"]
    else:
        raise UserError(f"no recognizer at {p}: give a model folder or a training checkpoint (.pt)")
    r = Recognizer.from_config(config)
    try:
        r.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"the recognizer in {path} does not match the model's config: {e}") from e
    return r.eval().requires_grad_(False)


def load_critic(path: str | Path, net: str = "W") -> WriterClassifier | Discriminator:
    """A training critic from a model folder's `critics.safetensors` (`trainer.save_critics`) or
    from a training checkpoint (`step_*.pt`); eval mode, frozen. `net` "W": the writer classifier,
    trained on the training writers' real words only (it never saw the writer being adapted to);
    "D": the discriminator, trained to tell those real words from the generator's."""
    if net not in ("W", "D"):
        raise UserError(f"critic must be 'W' or 'D', got {net!r}")
    p = Path(path)
    if p.is_dir():
        from .trainer import CRITICS_NAME

        f = p / CRITICS_NAME
        if not f.is_file():
            raise UserError(f"{p} has no {CRITICS_NAME}: pass a training checkpoint instead")
        state = {k[2:]: v for k, v in load_file(str(f)).items() if k.startswith(f"{net}.")}
    elif p.suffix == ".pt" and p.is_file():
        from .trainer import load_checkpoint

        state = load_checkpoint(p).get(net) or {}
    else:
        raise UserError(f"no critics at {p}: give a model folder or a training checkpoint (.pt)")
    if net == "W":
        if "head.weight" not in state:
            raise UserError(f"{path} holds no writer classifier W")
        writers, dim = state["head.weight"].shape
        critic = WriterClassifier(num_writers=writers, ch=dim // 8)
    else:
        first = [v for k, v in state.items() if k.startswith("trunk.0.conv1.") and v.dim() == 4]
        if not first:
            raise UserError(f"{path} holds no discriminator D")
        critic = Discriminator(ch=first[0].shape[0])
    try:
        critic.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"the {net} critic in {path} does not load: {e}") from e
    return critic.eval().requires_grad_(False)


class _Anchor:
    """Random vocabulary words written by the generator being adapted: their CTC under
    `recognizer` (legibility) and the words themselves (for the hand loss)."""

    _vocab: list[str] | None = None

    def __init__(self, recognizer, charset: Charset, n: int, seed: int, device):
        if _Anchor._vocab is None:
            from .dataset import default_vocabulary

            _Anchor._vocab = default_vocabulary(5000)[0]
        self.r, self.cs, self.n, self.device = recognizer, charset, n, device
        self.rng = np.random.default_rng(seed)

    def write(self, g: ScriptViT, memory: StyleMemory):
        """-> (fake [n, 1, 32, W] at least 16 px wide, widths [n], ids, lengths)."""
        texts = [self._vocab[int(i)] for i in self.rng.integers(0, len(self._vocab), self.n)]
        ids, lengths = (t.to(self.device) for t in _ids(texts, self.cs))
        fake, fake_w = g.write(memory, ids, lengths)  # one memory (batch 1) for all n words
        fake = fake[..., : max(16, int(fake_w.max()))]
        if fake.shape[-1] < 16:
            fake = torch.nn.functional.pad(fake, (0, 16 - fake.shape[-1]), value=1.0)
        return fake, fake_w, ids, lengths

    def ctc(self, fake, fake_w, ids, lengths) -> torch.Tensor:
        from .losses import ctc_loss

        lp = self.r(fake, fake_w)
        return ctc_loss(lp, ids, self.r.output_lengths(fake_w), lengths)


def adapt(
    model: ScriptViT,
    words: Sequence[np.ndarray],
    texts: Sequence[str],
    config: AdaptConfig | None = None,
    *,
    memory: StyleMemory | None = None,
    charset: Charset | None = None,
    recognizer: torch.nn.Module | None = None,
    critic: torch.nn.Module | None = None,
    discriminator: torch.nn.Module | None = None,
    seed: int = 0,
    progress: bool = False,
) -> tuple[ScriptViT, StyleMemory, list[float]]:
    """Fit `model` to one writer's style words (uint8 [32, w], 255 = paper) and their texts.

    Returns (the generator to write with - `model` itself for 'memory', else an adapted copy;
    the style memory to write with; the L1 loss before each step and after the last). `memory`
    defaults to the encoding of all `words` (at most the model's k). `model` is never changed.
    `recognizer`: the training recipe's text recognizer, for the anchor (`config.w_ctc` > 0);
    `critic`: the training writer classifier W, for `config.w_feat` / `config.w_hand` > 0;
    `discriminator`: the training discriminator D, for `config.w_feat_d` > 0.
    """
    cfg = config or AdaptConfig()
    recognizer = recognizer if recognizer is not None else cfg.recognizer
    critic = critic if critic is not None else cfg.critic
    disc = discriminator if discriminator is not None else cfg.discriminator
    if cfg.w_ctc > 0 and recognizer is None:
        raise UserError("adaptation with w_ctc > 0 needs the recognizer (`recognizer=`)")
    if cfg.needs_critic and critic is None:
        raise UserError("adaptation with w_feat or w_hand > 0 needs the writer classifier (`critic=`)")
    if cfg.w_feat_d > 0 and disc is None:
        raise UserError("adaptation with w_feat_d > 0 needs the discriminator (`discriminator=`)")
    charset = charset or Charset()
    if not words:
        raise UserError("adaptation needs at least one style word")
    device = next(model.parameters()).device
    target, widths, ids, lengths = (t.to(device) for t in _targets(words, texts, charset))
    was_training = model.training
    model.eval()
    if memory is None:
        if len(words) > model.config.max_style_images:
            raise UserError(f"at most {model.config.max_style_images} style words, got {len(words)}")
        canvases, cw = zip(*(place_on_canvas(w, model.config.style_size) for w in words))
        with torch.no_grad():
            memory = model.encode_style(
                torch.stack(canvases)[None].to(device), torch.tensor([cw], device=device)
            )
    memory = memory.detach()
    if cfg.what == "memory":
        g = model
        offset = torch.zeros_like(memory.tokens, requires_grad=True)
        params = [offset]
    else:
        g = copy.deepcopy(model)
        g.requires_grad_(False)
        if cfg.what == "norms":
            params = [
                p for m in g.synthesis.modules() if isinstance(m, MaskedInstanceNorm) for p in m.parameters()
            ]
        else:
            parts = [g.synthesis] if cfg.what == "synthesis" else [g.fusion, g.synthesis]
            params = [p for m in parts for p in m.parameters()]
        for p in params:
            p.requires_grad_(True)
        offset = None
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.5, 0.999))

    def current() -> StyleMemory:
        if offset is None:
            return memory
        return StyleMemory(memory.tokens + offset, memory.pad_mask, memory.positions)

    anchor = None
    if (cfg.w_ctc > 0 or cfg.w_hand > 0) and cfg.steps > 0:
        if recognizer is not None:
            recognizer.eval().requires_grad_(False)
        anchor = _Anchor(recognizer, charset, cfg.anchor_words, seed, device)
    hand = None
    if cfg.needs_critic and cfg.steps > 0:
        critic = critic.to(device).eval().requires_grad_(False)
        with torch.no_grad():  # the style words' centroid in W's space
            hand = critic.embed(target, widths).mean(0)
    # paired feature losses: (weight, feature net, the style words' maps once computed)
    feats = [
        [w, net.to(device).eval().requires_grad_(False), None]
        for w, net in ((cfg.w_feat, critic), (cfg.w_feat_d, disc))
        if w > 0 and cfg.steps > 0
    ]

    losses = []
    for _ in tqdm(range(cfg.steps), desc="adapting", disable=not progress, leave=False):
        mem = current()
        l1, fake, tgt, fw = _paired(g, mem, target, widths, ids, lengths)
        losses.append(l1.item())
        loss = cfg.w_l1 * l1
        for f in feats:
            weight, net, real = f
            if real is None:  # the style words (cropped as every step crops them): once
                with torch.no_grad():
                    real = f[2] = net.feature_maps(tgt)
            loss = loss + weight * feature_match_loss(net.feature_maps(fake), real, fw, fake.shape[-1])
        if anchor is not None:
            words, ww, aids, alen = anchor.write(g, mem)
            if cfg.w_ctc > 0:
                loss = loss + cfg.w_ctc * anchor.ctc(words, ww, aids, alen)
            if cfg.w_hand > 0:
                centroid = critic.embed(words, ww).mean(0)
                loss = loss + cfg.w_hand * (centroid - hand).pow(2).sum() / hand.pow(2).sum().clamp_min(1e-8)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        losses.append(float(reconstruction_l1(g, current(), target, widths, ids, lengths)))
        final = current().detach()
    g.requires_grad_(False)
    g.eval()
    model.train(was_training)
    return g, final, losses
