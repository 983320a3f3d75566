"""Training ScriptViT: the paper's staggered GAN schedule, on a laptop CPU or many GPUs.

Per iteration t (ScriptViT §3.4, following HWT):

    D  (discriminator)      every iteration: hinge loss, real words vs detached fakes
    R  (text recognizer)    every iteration: CTC on REAL words only
    W  (writer classifier)  every iteration: cross-entropy on REAL words only
    G  (generator)          every `g_every`-th iteration (paper: 2nd):
        L_G = L_adv(D(fake)) + a_ctc * L_ctc(R(fake)) + a_w * L_writer(W(fake)) [+ w_recon * L1]

HWT balances the recognizer and writer terms against the adversarial one by the ratio of
their gradient standard deviations on the fake image (`balance` = 0.7):
a_ctc = 0.7 * std(dL_adv/dfake) / std(dL_ctc/dfake). We compute that std over the whole
(all-rank) batch, so a multi-GPU run takes the same step as one process on the merged batch.

Multi-GPU: the same script under `torchrun`; each rank draws its own batch, and gradients
are averaged across ranks before every optimizer step (plain all-reduce: four networks on a
staggered schedule don't fit DDP's one-forward-one-backward assumption).

Resumable: every batch is drawn from an RNG seeded by (seed, step, rank), and checkpoints
hold all four networks, their optimizers, the EMA copy, the step and torch's RNG state, so a
killed run resumed from its last checkpoint ends at the same weights as an unkilled one.

Lineage: every checkpoint also carries the history of the weights it holds - one segment per
process that trained them (run folder, how it started: fresh, resumed or branched with
`init_from`, first and last iteration, wall minutes, hardware) - so a model resumed across
sessions, branched, or continued on another machine still knows its whole training
(`lineage_summary`; `bench/ship_model.py` writes it into the model card).
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import threading
import time
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .charset import Charset
from .config import ScriptViTConfig
from .discriminator import Discriminator, StyleMatchDiscriminator
from .errors import UserError
from .generator import ScriptViT
from .losses import (
    ctc_loss,
    d_hinge_loss,
    feature_match_loss,
    g_hinge_loss,
    match_d_hinge_loss,
    other_writer,
    style_contrastive_loss,
    writer_ce_loss,
)
from .monitor import SampleMonitor, append_csv
from .recognizer import Recognizer
from .sampler import MAX_K, StyleBatch, StyleWordDataset, collate_style_batch
from .synthesis import widen_synthesis_state
from .words import WordSet
from .writer_classifier import WriterClassifier


class TrainingDiverged(RuntimeError):
    """A loss became NaN/inf; the last good checkpoint is kept."""


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated or not ours."""


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data. Defaults = the paper/HWT recipe."""

    preset: str = "tiny"
    """Model preset (`ScriptViTConfig.preset`)."""
    out: str = "runs/tiny"
    """Run folder: checkpoints/, samples/, log.csv, model/."""
    steps: int = 0
    """Stop after this many iterations (0 = no step limit)."""
    minutes: float = 0.0
    """Stop after this many wall-clock minutes (0 = no time limit)."""
    batch_size: int = 8  # paper silent: HWT/VATr batch 8
    k: int = 5  # paper: 5 style images
    k_max: int = 0
    """Library option (0 = off): every batch draws its number of style images uniformly from
    1..k_max (VATr-style), so the encoder learns to use few and many references."""
    lr: float = 5e-5  # paper silent: HWT/VATr Adam lr 5e-5 for all four networks
    lr_decay_start: int = 0
    lr_decay_end: int = 0
    """Library option (off while `lr_decay_end` <= `lr_decay_start`): the learning rate of all four
    networks falls linearly from `lr` at iteration `lr_decay_start` to `lr * lr_end_factor` at
    `lr_decay_end` and stays there. Iterations count over the whole lineage, so a resumed run
    (whose loaded optimizers carry their old rate) follows the same schedule."""
    lr_end_factor: float = 0.1
    beta1: float = 0.0  # paper silent: HWT/VATr betas (0, 0.999)
    beta2: float = 0.999
    g_every: int = 2  # paper: generator updated every 2nd iteration
    w_adv: float = 1.0
    w_ctc: float = 1.0
    w_writer: float = 1.0
    balance: float = 0.7
    """HWT's gradient-std balancing factor for the CTC and writer terms (0 = off: plain weights)."""
    w_recon: float = 0.0
    """CPU-budget addition (0 in the paper): L1 between the fake and the real target word of
    the same writer and text, resized to the fake's width."""
    pretrain_steps: int = 0
    """CPU-budget addition: iterations of R and W on real words before the GAN starts."""
    pretrain_critics: bool = False
    """Library option: pre-training (`pretrain_steps`) also trains D - real words against the
    frozen generator's fakes - and the style-id head on the frozen encoder's style memory, so a
    trained generator fine-tuned from a model folder (`init_from`; its D, W and style-id head
    start fresh, e.g. on another dataset's writers) first meets critics that know something."""
    ema: float = 0.0
    """CPU-budget addition: decay of an EMA copy of G used for samples and export (0 = off)."""
    w_style_id: float = 0.0
    """Library option (0 = off): cross-entropy of a linear training-writer classifier on the
    pooled style memory, a loss of the generator's style encoder - it must tell the writers of
    its k style words apart (VATr pre-trains its encoder on writer id; here it is joint)."""
    w_style_nce: float = 0.0
    """Library option (0 = off): style-contrastive loss (`losses.style_contrastive_loss`) - in
    the writer classifier's feature space each fake must be nearer its own k style words than
    the other samples' style words. Names no training writer, so it also speaks for unseen ones."""
    nce_tau: float = 0.1
    """Temperature of the style-contrastive loss."""
    w_feat: float = 0.0
    """Library option (0 = off): feature-matching loss (`losses.feature_match_loss`) between the
    fake and its real target word (same writer, same text) in the writer classifier's trunk."""
    w_match: float = 0.0
    """Library option (0 = off): weight of the style-matching discriminator's generator loss
    (`discriminator.StyleMatchDiscriminator`): a second, conditional discriminator learns whether
    a word was written by the writer of the given k style words (real words of another writer
    are its extra negatives), and G is rewarded when its fake passes as written by its own style
    words' writer. Conditioned on the style words, not on a writer id, so it speaks for unseen
    writers too. Trained every iteration with D, in its own Adam."""
    w_width: float = 1.0
    """Weight of the width head's regression loss (models with `width_mode="predicted"` only):
    squared error of log px per character against the real target word's."""
    init_from: str = ""
    """Library option: a new run starts from this checkpoint's weights and step counters, with
    fresh optimizer states - a branch of a run with a changed model config. The config may add
    modules the checkpoint lacks only where they start as the identity (`style_modulation=
    'film'`); every other weight must match. Ignored when the run folder has checkpoints."""
    fresh_critics: tuple[str, ...] = ()
    """Library option, with `init_from`: these critics (any of "D", "W", "M") start fresh instead
    of from the checkpoint - a branch that tries another discriminator (e.g. `--set d_ch=32`).
    Pair it with `pretrain_steps` beyond the checkpoint's and `pretrain_critics` so the new
    critic learns on the frozen generator's fakes before it teaches."""
    critics_from: str = ""
    """Library option: a training checkpoint whose critics (D, W, the style-id head S and M, each
    where both have it and it is not in `fresh_critics`) replace the new run's - so a generator
    from a model folder (`init_from`), whose critics are not shipped, is fine-tuned against critics
    that already know the data instead of fresh ones (W sees real words only, so it does not care
    which generator it was trained beside). The checkpoint must come from a run on the same
    training writers (its run folder's writers.json is compared). Ignored on `resume`."""
    data: tuple[str, ...] = ()
    """Record only (`train` reads the words from its `data` argument): the data folders this run
    trains on, as `scriptvit train --data` names them - kept in train_config.json and in the
    checkpoint lineage, where a resume on other folders starts a row of its own."""
    amp: str = "none"
    """'none' | 'bf16' | 'fp16' (mixed precision, CUDA only)."""
    grad_clip: float = 0.0
    """Clip each network's gradient norm to this (0 = off)."""
    ckpt_every_minutes: float = 5.0
    ckpt_every_steps: int = 0
    keep_last: int = 3
    """Keep this many of the newest checkpoints (0 = keep every one, e.g. to score a run at
    matched iterations later)."""
    sample_every: int = 200
    """Save a sample grid and measure CER of fakes every N iterations (and at the end)."""
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    tensorboard: bool = False
    """Also log scalars to `<out>/tensorboard` (needs `pip install tensorboard`)."""
    train_writers: int = 0
    """Train on only this many of the training writers (0 = all): the first N by a stable hash
    of the writer id, so 16 of them are a subset of 50 (how fidelity grows with the writers)."""
    model_overrides: dict = field(default_factory=dict)
    """Fields of `ScriptViTConfig` to change from the preset."""


LOG_FIELDS = [
    "step",
    "minutes",
    "D_hinge",
    "R_ctc_real",
    "W_ce_real",
    "G_adv",
    "G_ctc",
    "G_writer",
    "G_recon",
    "G_width",
    "G_style_id",
    "G_style_nce",
    "G_feat",
    "D_match",
    "G_match",
    "G_total",
]

RECIPES: dict[str, dict] = {
    # The paper's recipe as HWT/VATr run it.
    "paper": {},
    # What makes words legible within minutes on 2 CPU cores (measured; see README).
    "cpu": dict(
        lr=2e-4,
        batch_size=16,
        w_recon=1.0,
        pretrain_steps=300,
        ema=0.999,
        sample_every=250,
        balance=0.0,
        w_adv=0.1,
        w_ctc=0.3,
        w_writer=0.1,
    ),  # fmt: skip
}


# ---------------------------------------------------------------------------- distributed
def _dist_info() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) otherwise."""
    if "RANK" not in os.environ:
        return 0, 1, 0
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))


def _average_grads(module: torch.nn.Module, world: int) -> None:
    if world == 1:
        return
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world


def _global_std(g: torch.Tensor, world: int) -> torch.Tensor:
    """Standard deviation of `g` over the batch of all ranks together."""
    if world == 1:
        return g.float().std()
    stats = torch.stack(
        [torch.tensor(float(g.numel()), device=g.device), g.float().sum(), (g.float() ** 2).sum()]
    )
    dist.all_reduce(stats, op=dist.ReduceOp.SUM)
    n, s, ss = stats
    return ((ss - s * s / n) / (n - 1)).clamp_min(0).sqrt()


# ----------------------------------------------------------------------------- the trainer
class Trainer:
    """Holds G, D, R, W, their optimizers and the step; `train_step` is one iteration."""

    def __init__(self, cfg: TrainConfig, model_cfg: ScriptViTConfig, *, device: torch.device | None = None):
        self.cfg, self.model_cfg = cfg, model_cfg
        self.rank, self.world, local = _dist_info()
        if device is None:
            want = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
            device = torch.device(f"cuda:{local}" if want == "cuda" and self.world > 1 else want)
        self.device = device
        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        mc = model_cfg
        self.G = ScriptViT(mc).to(device)
        self.D = Discriminator.from_config(mc).to(device)
        self.R = Recognizer.from_config(mc).to(device)
        self.W = WriterClassifier.from_config(mc).to(device)
        self.M = StyleMatchDiscriminator.from_config(mc).to(device) if cfg.w_match > 0 else None
        if self.world > 1 and device.type == "cuda":  # BatchNorm statistics over all ranks' batches
            self.G, self.R = (nn.SyncBatchNorm.convert_sync_batchnorm(m) for m in (self.G, self.R))
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if cfg.ema > 0 else None
        # the style-id head (w_style_id > 0) trains with G, in G's optimizer; not part of the model
        self.S = nn.Linear(mc.d_model, mc.num_writers).to(device) if cfg.w_style_id > 0 else None
        betas = (cfg.beta1, cfg.beta2)
        self.opt = {
            name: torch.optim.Adam(getattr(self, name).parameters(), lr=cfg.lr, betas=betas)
            for name in self.nets
        }
        if self.S is not None:
            self.opt["G"].add_param_group({"params": list(self.S.parameters())})
        self.step = 0
        self.pretrain_done = 0
        self.last_g_logs: dict[str, float] = {}
        self.ema_updates = 0
        self.lineage: list[dict] = []  # see the module docstring; the open segment is the last
        self.charset = Charset()
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
        if self.amp_dtype is not None and device.type != "cuda":
            self.amp_dtype = None  # mixed precision is a GPU feature; CPU runs in fp32
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

    @property
    def nets(self) -> str:
        """The trained networks with an optimizer of their own: G, D, R, W (+ M when on)."""
        return "GDRW" + ("M" if self.M is not None else "")

    # --- pieces -------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast("cuda", dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _step(self, name: str, loss: torch.Tensor) -> None:
        """Backward `loss` into network `name` only, average over ranks, clip, update."""
        net, opt = getattr(self, name), self.opt[name]
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        _average_grads(net, self.world)
        if name == "G" and self.S is not None:
            _average_grads(self.S, self.world)
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), self.cfg.grad_clip)
        self.scaler.step(opt)
        self.scaler.update()

    def _check(self, losses: dict[str, torch.Tensor]) -> None:
        for name, value in losses.items():
            if not torch.isfinite(value).all():
                raise TrainingDiverged(
                    f"loss '{name}' became {value.item()} at step {self.step}; training stopped. "
                    f"The last good checkpoint in {self.cfg.out}/checkpoints is kept: lower the learning "
                    "rate, enable --grad-clip, or resume from it."
                )

    def _real_losses(self, b: StyleBatch) -> dict[str, torch.Tensor]:
        """Recognizer and writer classifier on REAL words only."""
        lp = self.R(b.target, b.target_widths)
        l_rec = ctc_loss(lp, b.text_ids, self.R.output_lengths(b.target_widths), b.text_lengths)
        l_wcls = writer_ce_loss(self.W(b.target, b.target_widths), b.writer_ids)
        return {"R_ctc_real": l_rec, "W_ce_real": l_wcls}

    def _resized_targets(self, b: StyleBatch, width: int) -> torch.Tensor:
        """Real target words stretched to the generator's width (char_width x length)."""
        out = torch.ones(len(b), 1, 32, width, device=b.target.device)
        fw = self.G.output_widths(b.text_lengths)
        for i in range(len(b)):
            real = b.target[i : i + 1, :, :, : int(b.target_widths[i])]
            out[i, :, :, : int(fw[i])] = F.interpolate(
                real, size=(32, int(fw[i])), mode="bilinear", align_corners=False
            )
        return out

    def _style_embedding(self, b: StyleBatch) -> torch.Tensor:
        """[B, D]: the writer classifier's embedding of each sample's k style words (their mean).
        Style canvases hold the 32-px word centred vertically; that band is what W reads."""
        bsz, k, _, hs, ws = b.style.shape
        top = (hs - 32) // 2
        words = b.style[:, :, :, top : top + 32].reshape(bsz * k, 1, 32, ws)
        with torch.no_grad():
            emb = self.W.embed(words, b.style_widths.reshape(-1))
        return emb.view(bsz, k, -1).mean(dim=1)

    def _fakes(self, b: StyleBatch):
        """(style memory, fakes, their widths) for batch `b`; with width_mode 'predicted' the
        fakes take their real targets' widths (teacher widths)."""
        memory = self.G.encode_style(b.style, b.style_widths)
        teacher = b.target_widths if self.G.width_head is not None else None
        fake, fake_w = self.G.write(memory, b.text_ids, b.text_lengths, widths=teacher)
        return memory, fake, fake_w

    def _d_loss(self, b: StyleBatch, fake: torch.Tensor, fake_w: torch.Tensor) -> torch.Tensor:
        """D's hinge loss: real words vs `fake` (already detached), masked beyond each word."""
        d_real, d_fake = self.D(b.target), self.D(fake)
        return d_hinge_loss(
            d_real,
            d_fake,
            self.D.width_mask(b.target_widths, d_real.shape[1]),
            self.D.width_mask(fake_w, d_fake.shape[1]),
        )

    def pretrain_step(self, b: StyleBatch) -> dict[str, float]:
        """R and W on real words, before the GAN (a CPU-budget option); with `pretrain_critics`
        also D against the frozen generator's fakes and the style-id head on its frozen memory."""
        with self._autocast():
            losses = self._real_losses(b)
            if self.cfg.pretrain_critics:
                with torch.no_grad():
                    memory, fake, fake_w = self._fakes(b)
                losses["D_hinge"] = self._d_loss(b, fake, fake_w)
                if self.S is not None:
                    losses["G_style_id"] = writer_ce_loss(self.S(memory.pooled()), b.writer_ids)
        self._check(losses)
        self._step("R", losses["R_ctc_real"])
        self._step("W", losses["W_ce_real"])
        if "D_hinge" in losses:
            self._step("D", losses["D_hinge"])
        if "G_style_id" in losses:  # only S has a gradient: G's weights are left as they are
            self._step("G", losses["G_style_id"])
        self.pretrain_done += 1
        return {k: v.item() for k, v in losses.items()}

    def lr_factor(self, step: int) -> float:
        """The learning rate at iteration `step`, as a fraction of `lr` (see `lr_decay_start`)."""
        cfg = self.cfg
        lo, hi = cfg.lr_decay_start, cfg.lr_decay_end
        if hi <= lo or step <= lo:
            return 1.0
        return 1.0 - (1.0 - cfg.lr_end_factor) * min(1.0, (step - lo) / (hi - lo))

    def train_step(self, b: StyleBatch) -> dict[str, float]:
        """One iteration of the paper's schedule on batch `b` (already on the device)."""
        cfg = self.cfg
        if cfg.lr_decay_end > cfg.lr_decay_start:
            lr = cfg.lr * self.lr_factor(self.step)
            for opt in self.opt.values():
                for group in opt.param_groups:
                    group["lr"] = lr
        g_turn = self.step % cfg.g_every == 0
        with self._autocast():
            memory, fake, fake_w = self._fakes(b)
            losses = {"D_hinge": self._d_loss(b, fake.detach(), fake_w), **self._real_losses(b)}
        self._check(losses)
        self._step("D", losses["D_hinge"])
        self._step("R", losses["R_ctc_real"])
        self._step("W", losses["W_ce_real"])
        style_vec = None  # W's embedding of the style words, once per iteration (W has just stepped)
        if self.M is not None:
            style_vec = self._style_embedding(b)
            losses["D_match"] = self._match_step(b, fake.detach(), fake_w, style_vec)

        logs = {k: v.item() for k, v in losses.items()}
        if g_turn:
            g_logs = self._generator_step(b, fake, fake_w, memory, style_vec)
            self.last_g_logs = {k: v.item() for k, v in g_logs.items()}
            logs.update(self.last_g_logs)
        self.step += 1
        return logs

    def _match_step(
        self, b: StyleBatch, fake: torch.Tensor, fake_w: torch.Tensor, style_vec: torch.Tensor
    ) -> torch.Tensor:
        """One update of the style-matching discriminator M (`w_match`), a head over W's features
        (constants here): real words with their own style words (+), fakes with the style words
        they were written from (-), real words with another writer's style words (-)."""
        with self._autocast():
            with torch.no_grad():
                real_cols = self.W.columns(self.W.trunk(b.target))
                fake_cols = self.W.columns(self.W.trunk(fake))
            partner = other_writer(b.writer_ids)
            keep = partner >= 0
            real_mask = self.M.width_mask(b.target_widths, real_cols.shape[-1])
            loss = match_d_hinge_loss(
                self.M(real_cols, style_vec),
                self.M(fake_cols, style_vec),
                self.M(real_cols[keep], style_vec[partner[keep]]),
                real_mask,
                self.M.width_mask(fake_w, fake_cols.shape[-1]),
                real_mask[keep],
            )
        self._check({"D_match": loss})
        self._step("M", loss)
        return loss

    def _generator_step(
        self, b: StyleBatch, fake: torch.Tensor, fake_w: torch.Tensor, memory=None, style_vec=None
    ) -> dict[str, torch.Tensor]:
        """G's update. `style_vec`: `_style_embedding(b)` when the caller has it (W unchanged since)."""
        cfg = self.cfg
        if style_vec is None and (cfg.w_style_nce > 0 or self.M is not None):
            style_vec = self._style_embedding(b)
        with self._autocast():
            d_fake = self.D(fake)
            l_adv = g_hinge_loss(d_fake, self.D.width_mask(fake_w, d_fake.shape[1]))
            lp = self.R(fake, fake_w)
            l_ctc = ctc_loss(lp, b.text_ids, self.R.output_lengths(fake_w), b.text_lengths)
            # W's trunk runs once on the fakes: writer logits, embedding and feature maps from it
            fake_maps = self.W.feature_maps(fake)
            fake_emb = self.W.pool(fake_maps[-1], fake_w)
            l_wr = writer_ce_loss(self.W.head(fake_emb), b.writer_ids)
            target = None  # the paired real word at the fake's width, for the L1 and feature losses
            if cfg.w_recon > 0 or cfg.w_feat > 0:
                if self.G.width_head is not None:  # fakes already have their targets' widths
                    target = b.target[..., : fake.shape[-1]]
                else:
                    target = self._resized_targets(b, fake.shape[-1])
            l_rec = fake.new_zeros(())
            if cfg.w_recon > 0:  # per-word mean |fake - real| over the word's true width
                diff = (fake - target).abs().flatten(1).sum(1)
                l_rec = (diff / (fake.shape[-2] * fake_w)).mean()
            l_width = fake.new_zeros(())
            if self.G.width_head is not None and memory is not None:
                real = (b.target_widths.float() / self.G.width_units(b.text_ids, b.text_lengths)).log()
                l_width = (self.G.log_char_width(memory).float() - real).pow(2).mean()
            l_sid = fake.new_zeros(())
            if self.S is not None and memory is not None:
                l_sid = writer_ce_loss(self.S(memory.pooled()), b.writer_ids)
            l_nce = fake.new_zeros(())
            if cfg.w_style_nce > 0:
                l_nce = style_contrastive_loss(fake_emb, style_vec, b.writer_ids, cfg.nce_tau)
            l_feat = fake.new_zeros(())
            if cfg.w_feat > 0:
                with torch.no_grad():
                    real_maps = self.W.feature_maps(target)
                l_feat = feature_match_loss(fake_maps, real_maps, fake_w, fake.shape[-1])
            l_match = fake.new_zeros(())
            if self.M is not None:  # through W's trunk (already run on the fakes) into the fake
                m_fake = self.M(self.W.columns(fake_maps[-1]), style_vec)
                l_match = g_hinge_loss(m_fake, self.M.width_mask(fake_w, m_fake.shape[1]))
        out = {"G_adv": l_adv, "G_ctc": l_ctc, "G_writer": l_wr, "G_recon": l_rec, "G_width": l_width}
        if self.M is not None:
            out["G_match"] = l_match
        if self.S is not None:
            out["G_style_id"] = l_sid
        if cfg.w_style_nce > 0:
            out["G_style_nce"] = l_nce
        if cfg.w_feat > 0:
            out["G_feat"] = l_feat
        self._check(out)
        a_ctc, a_wr = cfg.w_ctc, cfg.w_writer
        if cfg.balance > 0:
            # HWT's balancing: scale each auxiliary loss so its gradient on the fake image has
            # `balance` times the spread of the adversarial gradient (factors are constants).
            g_adv = torch.autograd.grad(cfg.w_adv * l_adv, fake, retain_graph=True)[0]
            s_adv = _global_std(g_adv, self.world)
            for name, loss in (("ctc", l_ctc), ("wr", l_wr)):
                if loss.requires_grad:
                    g = torch.autograd.grad(loss, fake, retain_graph=True)[0]
                    # (clamp, not HWT's +1e-8: these stds scale with 1/batch, an additive eps would not)
                    a = (cfg.balance * s_adv / _global_std(g, self.world).clamp_min(1e-12)).detach()
                    a_ctc, a_wr = (a * cfg.w_ctc, a_wr) if name == "ctc" else (a_ctc, a * cfg.w_writer)
        total = cfg.w_adv * l_adv + a_ctc * l_ctc + a_wr * l_wr + cfg.w_recon * l_rec + cfg.w_width * l_width
        total = total + cfg.w_style_id * l_sid + cfg.w_style_nce * l_nce + cfg.w_feat * l_feat
        total = total + cfg.w_match * l_match
        self._step("G", total)
        if self.G_ema is not None:
            # warm-up: the average starts short and lengthens to `ema`, so early samples are
            # not dominated by the random initial weights
            self.ema_updates += 1
            decay = min(cfg.ema, (1 + self.ema_updates) / (10 + self.ema_updates))
            with torch.no_grad():
                for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
                    pe.lerp_(p, 1.0 - decay)
                for be, bb in zip(self.G_ema.buffers(), self.G.buffers()):
                    be.copy_(bb)
        out["G_total"] = total.detach()
        return out

    @property
    def sampler_G(self) -> ScriptViT:
        """The generator to sample from: the EMA copy when there is one."""
        return self.G_ema if self.G_ema is not None else self.G

    # --- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        s = {name: getattr(self, name).state_dict() for name in self.nets}
        s.update({f"opt_{n}": o.state_dict() for n, o in self.opt.items()})
        if self.G_ema is not None:
            s["G_ema"] = self.G_ema.state_dict()
        if self.S is not None:
            s["S"] = self.S.state_dict()
        s["scaler"] = self.scaler.state_dict()
        s["step"], s["pretrain_done"], s["ema_updates"] = self.step, self.pretrain_done, self.ema_updates
        s["torch_rng"] = torch.get_rng_state()
        if torch.cuda.is_available():
            s["cuda_rng"] = torch.cuda.get_rng_state_all()
        s["lineage"] = json.dumps(self.lineage)
        s["train_config"] = json.dumps(asdict(self.cfg))
        s["model_config"] = json.dumps(self.model_cfg.to_dict())
        return s

    def load_state_dict(self, s: dict) -> None:
        for name in "GDRW":
            getattr(self, name).load_state_dict(s[name])
            opt_state = s[f"opt_{name}"]
            if name == "G" and self.S is not None and len(opt_state["param_groups"]) == 1:
                # a run without the style-id head, continued with it: the head starts fresh
                head_group = self.opt["G"].state_dict()["param_groups"][1]
                opt_state = {**opt_state, "param_groups": opt_state["param_groups"] + [head_group]}
            self.opt[name].load_state_dict(opt_state)
        if self.M is not None and "M" in s:  # else: M starts fresh (a run continued with M on)
            self.M.load_state_dict(s["M"])
            self.opt["M"].load_state_dict(s["opt_M"])
        if self.G_ema is not None and "G_ema" in s:
            self.G_ema.load_state_dict(s["G_ema"])
        if self.S is not None and "S" in s:
            self.S.load_state_dict(s["S"])
        self.scaler.load_state_dict(s["scaler"])
        self.step, self.pretrain_done = int(s["step"]), int(s["pretrain_done"])
        self.ema_updates = int(s.get("ema_updates", 0))
        self.lineage = read_lineage(s)
        torch.set_rng_state(s["torch_rng"])
        if "cuda_rng" in s and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(s["cuda_rng"])

    def save_checkpoint(self, folder: Path) -> Path:
        """Atomically write checkpoints/step_XXXXXXX.pt (temp file + rename), keep the last N."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"step_{self.step:07d}_{self.pretrain_done:05d}.pt"
        tmp = path.with_suffix(".pt.tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)
        if self.cfg.keep_last > 0:
            for old in list_checkpoints(folder)[: -self.cfg.keep_last]:
                old.unlink(missing_ok=True)
        return path


def sampling_generator(path: str | Path, ck: dict | None = None) -> ScriptViT:
    """The generator that writes: a model folder's, or a training checkpoint's sampling generator
    (the EMA copy when there is one), e.g. to score a run at an earlier step than its end. `ck`:
    the checkpoint at `path` when the caller has already read it (a checkpoint is ~100 MB)."""
    if Path(path).is_dir():
        return ScriptViT.from_pretrained(path)
    ck = load_checkpoint(Path(path)) if ck is None else ck
    model = ScriptViT(ScriptViTConfig.from_dict(json.loads(ck["model_config"])))
    model.load_state_dict(ck["G_ema"] if "G_ema" in ck else ck["G"])
    return model


def export_checkpoint(path: str | Path, out_dir: str | Path, ck: dict | None = None) -> Path:
    """A checkpoint's sampling generator (`sampling_generator`) -> `save_pretrained` folder."""
    ck = load_checkpoint(Path(path)) if ck is None else ck
    model = sampling_generator(path, ck=ck)
    meta = {"step": ck["step"], "checkpoint": Path(path).name}
    if ck.get("lineage"):  # the history travels with the weights: a run from the folder goes on with it
        meta["lineage"] = ck["lineage"]
    return model.save_pretrained(out_dir, metadata=meta)


NEW_MODULES_OK = ("synthesis.film.",)  # may start fresh in a warm start: they begin as the identity
PER_WRITER = {"W": ("head.weight", "head.bias"), "S": ("weight", "bias")}  # one row per training writer


def family_of(writer_id: str) -> str:
    """A font writer's family (`dataset.plan_writers` names them `<family>-<k>`); other ids are their own."""
    m = re.fullmatch(r"(.+)-\d+", writer_id)
    return m.group(1) if m else writer_id


def writer_rows(new_index: dict[str, int], old_index: dict[str, int]) -> list[int | None]:
    """For each writer of a new run (by index), the row of the old run's per-writer heads to start
    from: the same writer, else the old run's first writer of the same family (another variant of
    that font), else None (a fresh row)."""
    by_family: dict[str, int] = {}
    for w, i in sorted(old_index.items(), key=lambda kv: kv[1]):
        by_family.setdefault(family_of(w), i)
    rows: list[int | None] = [None] * len(new_index)
    for w, i in new_index.items():
        rows[i] = old_index[w] if w in old_index else by_family.get(family_of(w))
    return rows


def _remap_writers(net: nn.Module, state: dict, keys: tuple[str, ...], rows: list[int | None]) -> dict:
    """`state` with its per-writer rows (`keys`) re-ordered to this run's writers (`rows`, from
    `writer_rows`); rows with no source keep `net`'s initial weights."""
    state, own = dict(state), net.state_dict()
    for key in keys:
        if key not in state or key not in own:
            continue
        out = own[key].clone()
        for i, j in enumerate(rows):
            if j is not None:
                out[i] = state[key][j]
        state[key] = out
    return state


def _load_net(net: nn.Module, state: dict, what: str, strict: bool = True):
    """`net.load_state_dict(state)`, a shape (or, when strict, a key) that differs -> CheckpointError."""
    try:
        return net.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        raise CheckpointError(f"{what}'s weights do not fit this model config: {e}") from None


FRESH_OK = ("D", "W", "M")  # critics a branch may start fresh (`TrainConfig.fresh_critics`)


def warm_start(
    trainer: Trainer,
    ck: dict,
    source: str = "checkpoint",
    skip: tuple[str, ...] = (),
    rows: list[int | None] | None = None,
    quiet: bool = False,
) -> list[str]:
    """Load a checkpoint's weights and step counters into a new trainer (`TrainConfig.init_from`);
    optimizer states stay fresh. The critics named in `skip` keep their new initial weights.
    `rows` (`writer_rows`, when the checkpoint's run trained on other writers): which of its
    writer-classifier and style-id rows each of this run's writers starts from.
    `quiet`: nothing printed (ranks other than 0). Returns the weights that started fresh (only
    `NEW_MODULES_OK`, and all of `skip`'s)."""
    bad_skip = [n for n in skip if n not in FRESH_OK]
    if bad_skip:
        raise CheckpointError(f"only the critics {FRESH_OK} may start fresh, not {bad_skip}")
    fresh, widened = [], []
    for name in ("G", "G_ema", "D", "R", "W", "S", "M"):
        net = getattr(trainer, name, None)
        if net is None or name not in ck or name in skip:
            continue
        state = ck[name]
        if rows is not None and name in PER_WRITER:
            state = _remap_writers(net, state, PER_WRITER[name], rows)
        if name in ("G", "G_ema"):  # a wider synthesis (`syn_min_channels`) grows the old weights
            state, grown = widen_synthesis_state(state, net.synthesis, prefix="synthesis.")
            widened += [f"{name}.{k}" for k in grown]
        res = _load_net(net, state, f"{source}: {name}", strict=False)
        if res.unexpected_keys:
            raise CheckpointError(f"{source}: {name} has weights this model lacks: {res.unexpected_keys[:5]}")
        fresh += [f"{name}.{k}" for k in res.missing_keys]
    bad = [k for k in fresh if not any(m in k for m in NEW_MODULES_OK)]
    if bad:
        raise CheckpointError(
            f"{source} lacks {len(bad)} weights of this model (e.g. {bad[:3]}); "
            f"only {NEW_MODULES_OK} may start fresh"
        )
    if trainer.G_ema is not None and "G_ema" not in ck:
        trainer.G_ema.load_state_dict(trainer.G.state_dict())
    trainer.step, trainer.pretrain_done = int(ck["step"]), int(ck["pretrain_done"])
    trainer.ema_updates = int(ck.get("ema_updates", 0))
    trainer.lineage = read_lineage(ck)
    skipped = [getattr(trainer, name, None) for name in skip]
    if widened and not quiet:
        print(f"{source}: synthesis widened (syn_min_channels), {len(widened)} tensors grown; same output")
    return fresh + [f"{n}.{k}" for n, net in zip(skip, skipped) if net is not None for k in net.state_dict()]


CRITICS = ("D", "W", "S", "M")  # networks `TrainConfig.critics_from` may bring in


def transplant_critics(
    trainer: Trainer, path: str | Path, writer_index: dict[str, int], skip: tuple[str, ...] = ()
) -> list[str]:
    """Load the critics of the training checkpoint at `path` into `trainer` (`TrainConfig.critics_from`):
    each of `CRITICS` that both have, unless named in `skip`; weights must fit exactly. Refused when
    the checkpoint's run trained on other writers (its writers.json differs from `writer_index`).
    Returns the names loaded."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"--critics-from needs a training checkpoint (checkpoints/step_*.pt); {path} is a folder "
            "(a model folder's critics, when it has them, come with --init-from)"
        )
    ck = load_checkpoint(path)
    writers_file = path.parent.parent / "writers.json"
    if writers_file.is_file() and read_writer_index(writers_file) != writer_index:
        raise CheckpointError(
            f"{path} comes from a run on other training writers ({writers_file}): its writer "
            "classifier and style-id head would name the wrong writers"
        )
    loaded = []
    for name in CRITICS:
        net = getattr(trainer, name, None)
        if net is None or ck.get(name) is None or name in skip:
            continue
        _load_net(net, ck[name], f"{path}: {name}")
        loaded.append(name)
    if not loaded:
        raise CheckpointError(f"{path} holds none of the critics {CRITICS} this run has")
    return loaded


def checkpoint_from_model(folder: str | Path) -> dict:
    """A model folder (`save_pretrained`, e.g. `models/scriptvit-cpu`) -> a partial checkpoint for
    `warm_start`: its generator as G and G_ema, its recognizer as R when the folder has one, the
    step from its metadata, and its critics (`save_critics`: D, W, S, M) when the folder has them.
    Without them they start fresh, and as `pretrain_done` is 0, `pretrain_steps` trains R and W
    (with `pretrain_critics` also D and S) on real words before the GAN."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from .adaptation import RECOGNIZER_NAME
    from .generator import CONFIG_NAME, WEIGHTS_NAME

    d = Path(folder)
    if not (d / WEIGHTS_NAME).is_file() or not (d / CONFIG_NAME).is_file():
        raise CheckpointError(f"{d} is not a model folder ({WEIGHTS_NAME} + {CONFIG_NAME})")
    with safe_open(str(d / WEIGHTS_NAME), "pt") as f:  # weights and metadata in one read
        meta = f.metadata() or {}
        weights = {k: f.get_tensor(k) for k in f.keys()}
    step = int(meta.get("step", 0))
    ck = {
        "G": weights,
        "G_ema": weights,
        "step": step,
        "pretrain_done": 0,
        "ema_updates": step,  # the average is already long: no EMA warm-up again
        "model_config": (d / CONFIG_NAME).read_text(),
        # exported since session 27 with the checkpoint's lineage in the metadata; older folders: one row
        "lineage": meta.get("lineage")
        or json.dumps(
            [
                {
                    "run": str(d),
                    "how": "model folder (its own lineage is in its model card)",
                    "from_step": 0,
                    "to_step": step,
                    "minutes": None,
                    "hardware": None,
                }
            ]
        ),
    }
    if (d / RECOGNIZER_NAME).is_file():
        ck["R"] = load_file(str(d / RECOGNIZER_NAME))
    if (d / CRITICS_NAME).is_file():
        for key, value in load_file(str(d / CRITICS_NAME)).items():
            net, _, name = key.partition(".")
            ck.setdefault(net, {})[name] = value
    return ck


CRITICS_NAME = "critics.safetensors"


def read_writer_index(path: str | Path) -> dict[str, int]:
    """{writer id: row} from a run's `writers.json` (that dict) or a model folder's
    `training_writers.json` (the sorted ids, whose positions are the rows)."""
    index = json.loads(Path(path).read_text())
    return {w: i for i, w in enumerate(index)} if isinstance(index, list) else index


def save_critics(ck: dict, folder: str | Path, source: str = "") -> Path | None:
    """A training checkpoint's critics (those of `CRITICS` it has: D, W, the style-id head S, M) ->
    `<folder>/critics.safetensors`, beside the model they trained against, so that training can go
    on from the model folder (`init_from`) without critics that start from nothing: a 9-minute
    continuation of the shipped model with fresh critics moved its unseen-writer FID from 27 to 38.
    Their writer rows follow the folder's `training_writers.json` (sorted ids = writer index)."""
    from safetensors.torch import save_file

    flat = {
        f"{net}.{k}": v.detach().contiguous().cpu() for net in CRITICS for k, v in (ck.get(net) or {}).items()
    }
    if not flat:
        return None
    path = Path(folder) / CRITICS_NAME
    save_file(flat, str(path), metadata={"step": str(ck.get("step", 0)), "source": source})
    return path


def read_lineage(ck: dict) -> list[dict]:
    """The segments of a checkpoint (or of `bench/gpu_leg`'s meta dict). One written before
    lineages were recorded gets a single segment of unknown minutes and hardware up to its step."""
    if ck.get("lineage"):
        return json.loads(ck["lineage"])
    step = int(ck.get("step", 0))
    if step == 0:
        return []
    return [
        {
            "run": None,
            "how": "not recorded",
            "from_step": 0,
            "to_step": step,
            "minutes": None,
            "hardware": None,
        }
    ]


def hardware_name(device: torch.device, world: int = 1) -> str:
    """A short description of what trains: GPU model(s), or CPU architecture and threads."""
    import platform

    if device.type == "cuda":
        return f"{world} x {torch.cuda.get_device_name(device)}"
    n = torch.get_num_threads()
    return f"{platform.machine()} CPU, {n} thread{'s' * (n != 1)} of {os.cpu_count()} cores" + (
        f", {world} processes" if world > 1 else ""
    )


def lineage_summary(lineage: list[dict]) -> dict:
    """Segments -> {"minutes": total wall minutes of the recorded segments, "unrecorded_steps":
    iterations without a record, "hardware": {name: iterations}, "rows": consecutive segments
    of one run folder on one hardware and the same data merged (a resume after a kill), with how
    many processes}."""
    rows: list[dict] = []
    for seg in lineage:
        last = rows[-1] if rows else None
        if (
            last
            and seg["how"] == "resumed"
            and (last["run"], last["hardware"], last.get("data"))
            == (seg["run"], seg["hardware"], seg.get("data"))
        ):
            last["to_step"] = seg["to_step"]
            last["minutes"] = (last["minutes"] or 0.0) + (seg["minutes"] or 0.0)
            last["processes"] += 1
        else:
            rows.append({**seg, "processes": 1})
    hardware: dict[str, int] = {}
    for r in rows:
        if r["hardware"]:
            hardware[r["hardware"]] = hardware.get(r["hardware"], 0) + r["to_step"] - r["from_step"]
    return {
        "minutes": sum(r["minutes"] or 0.0 for r in rows),
        "unrecorded_steps": sum(r["to_step"] - r["from_step"] for r in rows if r["minutes"] is None),
        "hardware": hardware,
        "rows": rows,
    }


def list_checkpoints(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob("step_*.pt"))


def load_checkpoint(path: Path) -> dict:
    """Read a trainer checkpoint (tensors and plain values only: weights_only=True)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # torch raises RuntimeError/EOFError/UnpicklingError for damaged zips
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(e).__name__}: {e}). "
            "Delete it to resume from the previous one."
        ) from e


# ------------------------------------------------------------------------------ the loop
def batch_items(ds: StyleWordDataset, cfg: TrainConfig, step: int, rank: int, stream: int = 0) -> list[dict]:
    """The samples of (step, rank): a pure function of the seed, so resuming redraws them exactly."""
    rng = np.random.default_rng((cfg.seed, stream, step, rank))
    k = None
    if cfg.k_max:  # the batch's k: one draw per step, the same on every rank (1 << 20: no rank's stream)
        k = int(np.random.default_rng((cfg.seed, stream, step, 1 << 20)).integers(1, cfg.k_max + 1))
    idx = rng.integers(0, len(ds), size=cfg.batch_size)
    return [ds.item(int(i), rng, k) for i in idx]


def _batch(ds: StyleWordDataset, cfg: TrainConfig, step: int, rank: int, stream: int = 0) -> StyleBatch:
    return collate_style_batch(batch_items(ds, cfg, step, rank, stream))


def subset_writers(words: WordSet, n: int) -> WordSet:
    """The words of the first `n` writers ordered by crc32 of their id (all when n <= 0)."""
    names = sorted(words.writers, key=lambda w: (zlib.crc32(w.encode()), w))
    if n <= 0 or n >= len(names):
        return words
    if n < 2:
        raise UserError("train_writers must be >= 2 (the writer classifier needs two classes)")
    return words.subset(writers=names[:n])


def inherited_char_widths(cfg: TrainConfig) -> list[float] | None:
    """`ScriptViTConfig.char_widths` of what a run goes on from, when its flags do not set them: the
    run folder it resumes (its model_config.json) or else the model folder or checkpoint it starts
    from (`init_from`; a checkpoint's run folder's model_config.json). The first of these that
    exists decides; None when it has none."""
    sources = [Path(cfg.out) / "model_config.json"] if cfg.resume else []
    if cfg.init_from:
        src = Path(cfg.init_from)
        sources.append(src / "config.json" if src.is_dir() else src.parent.parent / "model_config.json")
    for path in sources:
        if path.is_file():
            return json.loads(path.read_text()).get("char_widths")
    return None


def build_trainer(cfg: TrainConfig, train_words: WordSet) -> tuple[Trainer, StyleWordDataset, dict[str, int]]:
    if not 0 <= cfg.k_max <= MAX_K:
        raise UserError(f"k_max must be 0 (off) or in 1..{MAX_K}, got {cfg.k_max}")
    if cfg.keep_last < 0:
        raise UserError(f"keep_last must be >= 0 (0 keeps every checkpoint), got {cfg.keep_last}")
    train_words = subset_writers(train_words, cfg.train_writers)
    writers = sorted(train_words.writers)
    writer_index = {w: i for i, w in enumerate(writers)}
    overrides = dict(cfg.model_overrides)
    if "char_widths" not in overrides:  # the character widths travel with the weights they were fitted for
        inherited = inherited_char_widths(cfg)
        if inherited is not None:
            overrides["char_widths"] = inherited
    model_cfg = ScriptViTConfig.preset(cfg.preset, num_writers=len(writers), **overrides)
    ds = StyleWordDataset(train_words, k=cfg.k, style_size=model_cfg.style_size, writer_index=writer_index)
    return Trainer(cfg, model_cfg), ds, writer_index


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _stop_on_sigterm():
    """While training, SIGTERM (`kill PID`, `timeout`, a scheduler's stop) stops the run as Ctrl-C
    does: a checkpoint of the current step is written first. (A job started with `&` from a
    script ignores SIGINT, so `kill -INT` would not reach it.) Returns the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _interrupt)


def train(cfg: TrainConfig, data: dict[str, WordSet], *, progress: bool = True) -> Trainer:
    """Train on `data['train']`; samples and CER come from `data['val']`/`data['test']` if present.

    Writes into `cfg.out`: checkpoints/, samples/step_*.png, log.csv, eval.csv and, at the end,
    model/ (the generator as safetensors + config.json; the EMA copy when enabled).
    """
    out = Path(cfg.out)
    trainer, ds, writer_index = build_trainer(cfg, data["train"])
    rank, world = trainer.rank, trainer.world
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if trainer.device.type == "cuda" else "gloo")
    ckpt_dir = out / "checkpoints"
    existing = list_checkpoints(ckpt_dir)
    if cfg.resume and existing:
        trainer.load_state_dict(load_checkpoint(existing[-1]))
        if rank == 0:
            print(f"resumed from {existing[-1]} (step {trainer.step})")
    elif rank == 0 and existing:
        raise CheckpointError(f"{ckpt_dir} already holds checkpoints: pass --resume, or choose another --out")
    elif cfg.init_from:
        src = Path(cfg.init_from)
        ck = checkpoint_from_model(src) if src.is_dir() else load_checkpoint(src)
        old_writers = src / "training_writers.json" if src.is_dir() else src.parent.parent / "writers.json"
        rows = None
        if old_writers.is_file():
            old_index = read_writer_index(old_writers)
            if old_index != writer_index:
                rows = writer_rows(writer_index, old_index)
        fresh = warm_start(
            trainer, ck, source=cfg.init_from, skip=tuple(cfg.fresh_critics), rows=rows, quiet=rank != 0
        )
        if rank == 0:
            print(
                f"started from {cfg.init_from} (step {trainer.step}; fresh optimizers; "
                f"{len(fresh)} new tensors)"
            )
            if rows is not None:
                same = sum(1 for w in writer_index if w in old_index)
                kin = sum(r is not None for r in rows) - same
                print(
                    f"other training writers than {old_writers}; writer-classifier and style-id rows: "
                    f"{same} taken as they were, {kin} from a writer of the same family, "
                    f"{rows.count(None)} fresh"
                )
    how = "resumed" if cfg.resume and existing else "branched" if cfg.init_from else "fresh"
    critics_from = cfg.critics_from if how != "resumed" else ""  # a resumed run's are in its checkpoint
    if critics_from:
        taken = transplant_critics(trainer, critics_from, writer_index, skip=tuple(cfg.fresh_critics))
        if rank == 0:
            print(f"critics {', '.join(taken)} from {critics_from}")
    segment = {
        "run": str(out),
        "how": how,
        "source": cfg.init_from if how == "branched" else None,
        **({"critics_from": critics_from} if critics_from else {}),
        "from_step": trainer.step,
        "to_step": trainer.step,
        "minutes": 0.0,
        "hardware": hardware_name(trainer.device, world),
        **({"data": list(cfg.data)} if cfg.data else {}),
    }
    trainer.lineage.append(segment)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
        trainer.model_cfg.save(out / "model_config.json")
        (out / "writers.json").write_text(json.dumps(writer_index, indent=1))
    monitor = SampleMonitor(trainer, data, out) if rank == 0 else None
    tb = _tensorboard(out) if cfg.tensorboard and rank == 0 else None
    log_path = out / "log.csv"
    start, last_ckpt = time.time(), time.time()
    elapsed_before = _elapsed_minutes(out) if cfg.resume else 0.0

    def minutes() -> float:
        return elapsed_before + (time.time() - start) / 60

    def checkpoint() -> None:
        segment.update(to_step=trainer.step, minutes=round((time.time() - start) / 60, 5))
        trainer.save_checkpoint(ckpt_dir)
        _save_elapsed(out, minutes())

    def done() -> bool:
        return (cfg.steps and trainer.step >= cfg.steps) or (cfg.minutes and minutes() >= cfg.minutes)

    bar = tqdm(total=cfg.steps or None, initial=trainer.step, disable=not progress or rank != 0, desc="train")
    old_term = _stop_on_sigterm()
    try:
        while trainer.pretrain_done < cfg.pretrain_steps and not done():
            b = _batch(ds, cfg, trainer.pretrain_done, rank, stream=1).to(trainer.device)
            logs = trainer.pretrain_step(b)
            bar.set_postfix_str(
                f"pretrain {trainer.pretrain_done}/{cfg.pretrain_steps} ctc {logs['R_ctc_real']:.2f}"
                f" W ce {logs['W_ce_real']:.2f}" + (f" D {logs['D_hinge']:.2f}" if "D_hinge" in logs else "")
            )
        while not done():
            b = _batch(ds, cfg, trainer.step, rank).to(trainer.device)
            logs = trainer.train_step(b)
            bar.update(1)
            if rank == 0:
                if trainer.step % cfg.log_every == 0 or trainer.step == 1:
                    # G's losses are those of its latest update (it steps every g_every iterations)
                    row = {
                        "step": trainer.step,
                        "minutes": round(minutes(), 3),
                        **trainer.last_g_logs,
                        **logs,
                    }
                    append_csv(log_path, row, LOG_FIELDS)
                    if tb is not None:
                        for key, value in row.items():
                            if key != "step":
                                tb.add_scalar(f"train/{key}", value, trainer.step)
                    bar.set_postfix(
                        {k: round(v, 3) for k, v in logs.items() if k in ("D_hinge", "G_ctc", "G_adv")}
                    )
                if trainer.step % cfg.sample_every == 0 or trainer.step == 1:
                    row = monitor.record(trainer.step, minutes())
                    if tb is not None:
                        for key in ("cer_val", "cer_test"):
                            if key in row:
                                tb.add_scalar(f"eval/{key}", row[key], trainer.step)
                due = (cfg.ckpt_every_steps and trainer.step % cfg.ckpt_every_steps == 0) or (
                    time.time() - last_ckpt >= cfg.ckpt_every_minutes * 60
                )
                if due:
                    checkpoint()
                    last_ckpt = time.time()
    except KeyboardInterrupt:
        if rank == 0:
            print(f"interrupted at step {trainer.step}: saving a checkpoint (resume with --resume)")
            checkpoint()
        raise
    finally:
        bar.close()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    if rank == 0:
        checkpoint()
        if trainer.step % cfg.sample_every != 0:
            monitor.record(trainer.step, minutes())
        trainer.sampler_G.save_pretrained(
            out / "model",
            metadata={"step": trainer.step, "minutes": round(minutes(), 2), "preset": cfg.preset},
        )
        # the critics and the writers they name travel with the model: `init_from` it goes on with them
        nets = {n: getattr(trainer, n, None) for n in CRITICS}
        save_critics({n: net.state_dict() for n, net in nets.items() if net is not None}, out / "model")
        names = json.dumps(sorted(writer_index), indent=1)
        (out / "model" / "training_writers.json").write_text(names + "\n")
    return trainer


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise UserError("--tensorboard needs the tensorboard package: pip install tensorboard") from e
    return SummaryWriter(str(out / "tensorboard"))


def _save_elapsed(out: Path, minutes: float) -> None:
    """Atomically (temp file + rename): a run killed mid-write must still resume."""
    tmp = out / "elapsed.json.tmp"
    tmp.write_text(json.dumps({"minutes": minutes}))
    os.replace(tmp, out / "elapsed.json")


def _elapsed_minutes(out: Path) -> float:
    """Minutes a run has trained so far; from log.csv's last row if elapsed.json is unreadable
    (one written by a version that did not write it atomically, killed mid-write)."""
    p = out / "elapsed.json"
    if not p.exists():
        return 0.0
    try:
        return float(json.loads(p.read_text())["minutes"])
    except (ValueError, KeyError, TypeError):
        log = out / "log.csv"
        rows = log.read_text().splitlines()[1:] if log.exists() else []
        try:
            return float(rows[-1].split(",")[1]) if rows else 0.0
        except (IndexError, ValueError):
            return 0.0


def train_config_from_args(**kwargs) -> TrainConfig:
    """TrainConfig from a recipe name plus explicit values (None = keep the recipe's)."""
    recipe = kwargs.pop("recipe", "paper")
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose from {sorted(RECIPES)}")
    known = {f.name for f in fields(TrainConfig)}
    values = {**RECIPES[recipe], **{k: v for k, v in kwargs.items() if v is not None and k in known}}
    return TrainConfig(**values)


__all__ = [
    "RECIPES",
    "CheckpointError",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "build_trainer",
    "list_checkpoints",
    "load_checkpoint",
    "read_writer_index",
    "sampling_generator",
    "save_critics",
    "train",
    "train_config_from_args",
    "transplant_critics",
    "warm_start",
]
