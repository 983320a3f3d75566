"""Style-fidelity levers: style-contrastive and feature-matching losses (`w_style_nce`, `w_feat`),
variable k in training (`k_max`)."""

from __future__ import annotations

import pytest
import torch
from fixtures_iam import synthetic_sets
from torch.nn import functional as F

from scriptvit_lib.errors import UserError
from scriptvit_lib.losses import feature_match_loss, style_contrastive_loss
from scriptvit_lib.sampler import StyleBatch
from scriptvit_lib.trainer import TrainConfig, _batch, build_trainer

torch.set_num_threads(1)


def test_contrastive_loss_is_infonce_without_same_writer_negatives():
    g = torch.Generator().manual_seed(0)
    fake, ref = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g)
    writers = torch.tensor([4, 4, 9])  # samples 0 and 1 share a writer: not each other's negatives
    s = F.normalize(fake, dim=1) @ F.normalize(ref, dim=1).t() / 0.1
    by_hand = torch.stack(
        [
            -torch.log_softmax(s[0, [0, 2]], 0)[0],
            -torch.log_softmax(s[1, [1, 2]], 0)[0],
            -torch.log_softmax(s[2], 0)[2],
        ]
    ).mean()
    assert torch.allclose(style_contrastive_loss(fake, ref, writers, tau=0.1), by_hand, atol=1e-5)


def test_contrastive_loss_rewards_matching_ones_own_references():
    g = torch.Generator().manual_seed(1)
    ref = torch.randn(6, 16, generator=g)
    writers = torch.arange(6)
    matched = style_contrastive_loss(ref + 0.1 * torch.randn(6, 16, generator=g), ref, writers)
    swapped = style_contrastive_loss(ref.roll(1, dims=0), ref, writers)
    assert matched < 0.1 < 2.0 < swapped
    only_one_writer = style_contrastive_loss(ref, ref.flip(0), torch.zeros(6, dtype=torch.long))
    assert only_one_writer.item() == 0.0  # no negatives: nothing to contrast


def test_feature_match_counts_only_columns_inside_the_word_and_pulls_only_the_fake():
    g = torch.Generator().manual_seed(2)
    real = [torch.randn(2, 4, 16, 32, generator=g), torch.randn(2, 8, 4, 8, generator=g)]  # 64-px images
    fake = [r.clone().requires_grad_(True) for r in real]
    widths = torch.tensor([32, 64])
    assert feature_match_loss(fake, real, widths, 64).item() == 0.0
    beyond = [f.detach().clone() for f in fake]
    beyond[0][0, ..., 16:] += 5.0  # right of word 0's 32 px (stride 2 -> columns >= 16)
    beyond[1][0, ..., 4:] += 5.0  # (stride 8 -> columns >= 4)
    assert feature_match_loss(beyond, real, widths, 64).item() == 0.0
    inside = [f.detach().clone() for f in fake]
    inside[1][0, ..., :4] += 1.0
    assert abs(feature_match_loss(inside, real, widths, 64).item() - 0.5 * 1.0 / 2) < 1e-5
    real_leaf = [r.clone().requires_grad_(True) for r in real]
    feature_match_loss([f + 0.3 for f in fake], real_leaf, widths, 64).backward()
    assert fake[0].grad.abs().sum() > 0 and all(r.grad is None for r in real_leaf)


def test_style_embedding_reads_the_word_band_of_a_tall_canvas():
    sets = synthetic_sets(writers=("w1", "w2"), words=("the", "house", "of"))
    trainer, ds, _ = build_trainer(TrainConfig(out="unused", preset="tiny"), sets["train"])
    b = _batch(ds, trainer.cfg, 0, rank=0)
    pad = torch.ones(*b.style.shape[:3], 8, b.style.shape[-1])
    tall = StyleBatch(**{**vars(b), "style": torch.cat([pad, b.style, pad], dim=3)})  # 48 px high
    trainer.W.eval()
    assert torch.allclose(trainer._style_embedding(tall), trainer._style_embedding(b), atol=1e-6)
    words = b.style[0, :, :, :32]  # [K, 1, 32, Ws]
    own = trainer.W.embed(words, b.style_widths[0]).mean(0)
    assert torch.allclose(trainer._style_embedding(b)[0], own, atol=1e-5)


def test_generator_lowers_both_losses_on_a_batch():
    torch.manual_seed(0)
    sets = synthetic_sets(writers=("w1", "w2", "w3", "w4", "w5"), words=("the", "house", "of", "Move"))
    base = dict(preset="tiny", lr=2e-3, w_adv=0, w_ctc=0, w_writer=0, w_recon=0, g_every=1, batch_size=8)
    trainer, ds, _ = build_trainer(
        TrainConfig(out="unused", w_style_nce=1.0, w_feat=1.0, **base), sets["train"]
    )
    b = _batch(ds, trainer.cfg, 0, rank=0)
    for _ in range(30):
        trainer.pretrain_step(b)  # W learns to tell the writers apart on real words ...
    for group in trainer.opt["W"].param_groups:
        group["lr"] = 0.0  # ... then holds its feature space still: only the generator moves
    trainer.train_step(b)
    first = dict(trainer.last_g_logs)
    for _ in range(30):
        trainer.train_step(b)
    last = trainer.last_g_logs
    assert {"G_style_nce", "G_feat"} <= set(first)
    assert last["G_feat"] < 0.8 * first["G_feat"] and last["G_style_nce"] < 0.9 * first["G_style_nce"]


def test_k_max_draws_one_k_per_batch_reproducibly_and_trains():
    sets = synthetic_sets(writers=("w1", "w2", "w3"), words=("the", "house", "of", "Move"))
    trainer, ds, _ = build_trainer(TrainConfig(out="unused", preset="tiny", k_max=15), sets["train"])
    ks = [_batch(ds, trainer.cfg, step, rank=0).style.shape[1] for step in range(40)]
    assert set(ks) <= set(range(1, 16)) and len(set(ks)) >= 8  # uniform over 1..15
    assert ks == [_batch(ds, trainer.cfg, step, rank=0).style.shape[1] for step in range(40)]
    for k in (1, 15):  # the encoder takes a batch of one and of fifteen references
        logs = trainer.train_step(_batch(ds, trainer.cfg, ks.index(k), rank=0))
        assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    fixed, ds5, _ = build_trainer(TrainConfig(out="unused", preset="tiny"), sets["train"])
    assert {_batch(ds5, fixed.cfg, step, rank=0).style.shape[1] for step in range(5)} == {5}
    with pytest.raises(UserError, match="k_max"):
        build_trainer(TrainConfig(out="unused", preset="tiny", k_max=16), sets["train"])
