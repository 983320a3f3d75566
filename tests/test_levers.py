"""Style-fidelity levers: style-contrastive and feature-matching losses (`w_style_nce`, `w_feat`),
variable k in training (`k_max`)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from fixtures_iam import draw_word, synthetic_sets
from torch.nn import functional as F

from scriptvit_lib.errors import UserError
from scriptvit_lib.losses import feature_match_loss, style_contrastive_loss
from scriptvit_lib.sampler import StyleBatch
from scriptvit_lib.trainer import TrainConfig, _batch, build_trainer
from scriptvit_lib.words import WordSample, WordSet

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


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
    # writers W can tell apart (synthetic_sets' inks differ by 10/255 only): the contrastive loss
    # cannot fall below chance in a feature space that does not separate the writers
    words = ("the", "house", "of", "Move")
    sets = {
        "train": WordSet(
            [WordSample(f"w{i}", t, draw_word(t, height=32, ink=50 * i)) for i in range(4) for t in words]
        )
    }
    base = dict(preset="tiny", lr=2e-3, w_adv=0, w_ctc=0, w_writer=0, w_recon=0, g_every=1, batch_size=8)
    trainer, ds, _ = build_trainer(
        TrainConfig(out="unused", w_style_nce=1.0, w_feat=1.0, **base), sets["train"]
    )
    b = _batch(ds, trainer.cfg, 0, rank=0)
    for _ in range(100):  # (30 left W at chance on some machines: nothing for the loss to follow)
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


# --- style modulation (FiLM) and branching a run with it (`init_from`) -----------------------
def _style_and_text(seed: int, b: int = 2):
    g = torch.Generator().manual_seed(seed)
    style = torch.rand(b, 5, 1, 32, 64, generator=g) * 2 - 1
    return style, torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]][:b])


def test_film_starts_as_the_identity_and_then_carries_the_style():
    from scriptvit_lib.config import ScriptViTConfig
    from scriptvit_lib.generator import ScriptViT

    torch.manual_seed(0)
    plain = ScriptViT(ScriptViTConfig.preset("tiny")).eval()
    film = ScriptViT(ScriptViTConfig.preset("tiny", style_modulation="film")).eval()
    missing = film.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("synthesis.film.") for k in missing)
    style, ids = _style_and_text(0)
    with torch.no_grad():
        assert torch.equal(plain(style, ids), film(style, ids))  # zero-initialised: nothing changes
        for lin in film.synthesis.film:
            lin.weight.normal_(0, 0.5)
        other, _ = _style_and_text(1)
        a_plain, b_plain = plain(style, ids), plain(other, ids)
        a_film, b_film = film(style, ids), film(other, ids)
    assert not torch.allclose(a_plain, a_film, atol=1e-3)  # the pooled style now scales the strokes
    assert (a_film - b_film).abs().mean() > (a_plain - b_plain).abs().mean()
    mem = film.encode_style(style[:1])  # one writer's memory for two words broadcasts
    with torch.no_grad():
        assert film.decode(mem, ids).shape[0] == 2
    with pytest.raises(ValueError, match="pass the pooled style"):
        film.synthesis(torch.zeros(1, 3, film.config.d_model), torch.tensor([3]))


def test_init_from_branches_a_run_with_film(tmp_path):
    from scriptvit_lib.trainer import CheckpointError, list_checkpoints, load_checkpoint, train, warm_start

    sets = synthetic_sets(writers=("w1", "w2", "w3"), words=("the", "house", "of", "Move"))
    data = {"train": sets["train"], "val": sets["train"], "test": sets["test"]}
    base = TrainConfig(out=str(tmp_path / "a"), preset="tiny", steps=3, ema=0.9, sample_every=100)
    train(base, data, progress=False)
    ck_path = list_checkpoints(tmp_path / "a" / "checkpoints")[-1]
    ck = load_checkpoint(ck_path)
    film_cfg = TrainConfig(
        out=str(tmp_path / "b"), preset="tiny", steps=5, ema=0.9, sample_every=100,
        init_from=str(ck_path), model_overrides={"style_modulation": "film"},
    )  # fmt: skip
    trainer, _, _ = build_trainer(film_cfg, data["train"])
    fresh = warm_start(trainer, ck)
    assert fresh and all(".synthesis.film." in k for k in fresh)
    assert trainer.step == ck["step"] == 3
    g = trainer.G.state_dict()
    assert all(torch.equal(g[k], v) for k, v in ck["G"].items())
    tr = train(film_cfg, data, progress=False)  # continues the step count: 2 more iterations
    assert tr.step == 5 and tr.G.synthesis.film is not None
    # a config whose weights do not fit is refused with a message, not a traceback from torch
    bad = TrainConfig(out=str(tmp_path / "c"), preset="tiny", model_overrides={"d_model": 48, "dec_ff": 64})
    with pytest.raises(CheckpointError, match="do not fit"):
        warm_start(build_trainer(bad, data["train"])[0], ck, source=str(ck_path))


def test_fresh_critics_branch_with_a_wider_discriminator(tmp_path):
    from scriptvit_lib.trainer import CheckpointError, list_checkpoints, load_checkpoint, train, warm_start

    sets = synthetic_sets(writers=("w1", "w2", "w3"), words=("the", "house", "of", "Move"))
    data = {"train": sets["train"], "val": sets["train"], "test": sets["test"]}
    base = TrainConfig(out=str(tmp_path / "a"), preset="tiny", steps=3, sample_every=100)
    train(base, data, progress=False)
    ck_path = list_checkpoints(tmp_path / "a" / "checkpoints")[-1]
    ck = load_checkpoint(ck_path)
    d_ch = ck["D"]["head.parametrizations.weight.original"].shape[1] // 8
    wide = dict(preset="tiny", init_from=str(ck_path), model_overrides={"d_ch": 2 * d_ch})
    # without fresh_critics the wider D cannot take the checkpoint's weights: a clear refusal
    with pytest.raises(CheckpointError, match="D's weights do not fit"):
        warm_start(build_trainer(TrainConfig(out="unused", **wide), data["train"])[0], ck)
    tr, _, _ = build_trainer(TrainConfig(out="unused", fresh_critics=("D",), **wide), data["train"])
    d0 = {k: v.clone() for k, v in tr.D.state_dict().items()}
    fresh = warm_start(tr, ck, skip=("D",))
    assert fresh and all(k.startswith("D.") for k in fresh)
    assert all(torch.equal(tr.D.state_dict()[k], v) for k, v in d0.items())  # D kept its new init
    assert all(torch.equal(tr.G.state_dict()[k], v) for k, v in ck["G"].items())  # the rest loaded
    assert all(torch.equal(tr.W.state_dict()[k], v) for k, v in ck["W"].items())
    with pytest.raises(CheckpointError, match="may start fresh"):
        warm_start(tr, ck, skip=("G",))
    run = TrainConfig(
        out=str(tmp_path / "b"), steps=5, sample_every=100, fresh_critics=("D",), pretrain_steps=2,
        pretrain_critics=True, **wide,
    )  # fmt: skip
    tr = train(run, data, progress=False)
    assert tr.step == 5 and tr.pretrain_done == 2 and tr.D.head.weight.shape[1] == 16 * d_ch


def test_set_overrides_parse_strings_numbers_and_lists():
    from scriptvit_lib.cli import parse_overrides

    items = [
        "style_modulation=film",
        "width_mode=predicted",
        "d_model=64",
        "style_size=[32,128]",
        "dropout=0.1",
    ]
    got = parse_overrides(items + ["vit_depth=4"])
    assert got == {"style_modulation": "film", "width_mode": "predicted", "d_model": 64,
                   "style_size": [32, 128], "dropout": 0.1, "vit_depth": 4}  # fmt: skip
    with pytest.raises(SystemExit, match="FIELD=VALUE"):
        parse_overrides(["style_modulation"])


def test_other_writer_pairs_each_sample_with_another_writer():
    from scriptvit_lib.losses import other_writer

    assert other_writer(torch.tensor([0, 0, 1, 2])).tolist() == [2, 2, 3, 0]
    assert other_writer(torch.tensor([5, 5, 5])).tolist() == [-1, -1, -1]


def test_match_hinge_loss_weighs_both_negatives_as_the_positive():
    from scriptvit_lib.losses import match_d_hinge_loss

    real, fake, swapped = torch.full((2, 3), 0.5), torch.full((2, 3), 0.0), torch.full((1, 3), -2.0)
    # positive: 1 - 0.5; negatives: fake 1 + 0 = 1, swapped below -1 = 0 -> half of (1 + 0)
    assert match_d_hinge_loss(real, fake, swapped).item() == pytest.approx(0.5 + 0.5)
    assert match_d_hinge_loss(real, fake, swapped[:0]).item() == pytest.approx(0.5 + 1.0)


def test_style_match_discriminator_learns_who_wrote_a_word():
    """Trained on features of real words (own style words +, another writer's -), M must score a
    word higher with its own writer's style features than with another's, for writers it never
    saw: it learns to compare, not to memorise."""
    from scriptvit_lib.discriminator import StyleMatchDiscriminator
    from scriptvit_lib.losses import match_d_hinge_loss, other_writer

    g = torch.Generator().manual_seed(0)
    dim, cols = 16, 4

    def batch(centres, n=32):
        w = torch.randint(0, len(centres), (n,), generator=g)
        word = centres[w][:, :, None] + 0.3 * torch.randn(n, dim, cols, generator=g)
        style = centres[w] + 0.1 * torch.randn(n, dim, generator=g)
        return word.relu(), style.relu(), w

    seen, unseen = torch.randn(12, dim, generator=g), torch.randn(6, dim, generator=g)
    torch.manual_seed(0)
    m = StyleMatchDiscriminator(dim)
    opt = torch.optim.Adam(m.parameters(), lr=2e-3, betas=(0.0, 0.999))

    def margin(centres):
        word, style, w = batch(centres, 64)
        p = other_writer(w)
        with torch.no_grad():
            return (m(word, style).mean(1) - m(word, style[p]).mean(1)).mean().item()

    before = margin(unseen)
    for _ in range(300):
        word, style, w = batch(seen)
        p = other_writer(w)
        loss = match_d_hinge_loss(m(word, style), word[:0, 0], m(word, style[p]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert abs(before) < 0.2 and margin(unseen) > 1.0


def test_w_match_trains_m_and_moves_the_generator(tmp_path):
    from scriptvit_lib.trainer import list_checkpoints, load_checkpoint, train

    sets = synthetic_sets(writers=("w1", "w2", "w3"), words=("the", "house", "of", "Move"))
    data = {"train": sets["train"], "val": sets["train"], "test": sets["test"]}
    cfg = TrainConfig(out=str(tmp_path / "a"), preset="tiny", w_match=1.0, steps=2, sample_every=100)
    tr, ds, _ = build_trainer(cfg, data["train"])
    assert tr.nets == "GDRWM" and "M" in tr.opt
    m0 = {k: v.clone() for k, v in tr.M.state_dict().items()}
    b = _batch(ds, cfg, 0, 0)
    logs = tr.train_step(b)  # step 0: a generator turn
    assert {"D_match", "G_match"} <= logs.keys()
    assert any(not torch.equal(m0[k], v) for k, v in tr.M.state_dict().items())
    # G's loss reaches G through M: its gradient on the fake is not zero
    memory = tr.G.encode_style(b.style, b.style_widths)
    fake, fake_w = tr.G.write(memory, b.text_ids, b.text_lengths, widths=b.target_widths)
    cols = tr.W.columns(tr.W.feature_maps(fake)[-1])
    grad = torch.autograd.grad(tr.M(cols, tr._style_embedding(b)).sum(), fake)[0]
    assert grad.abs().sum() > 0
    # checkpoints carry M and its optimizer, and a run with M resumes from them
    train(cfg, data, progress=False)
    ck = load_checkpoint(list_checkpoints(tmp_path / "a" / "checkpoints")[-1])
    assert "M" in ck and "opt_M" in ck
    again = TrainConfig(out=str(tmp_path / "a"), preset="tiny", w_match=1.0, steps=3, sample_every=100)
    tr2 = train(replace(again, resume=True), data, progress=False)
    assert tr2.step == 3


def test_init_from_a_model_folder_starts_from_its_generator_and_recognizer(tmp_path):
    from scriptvit_lib.adaptation import save_recognizer
    from scriptvit_lib.trainer import (
        CheckpointError,
        checkpoint_from_model,
        export_checkpoint,
        list_checkpoints,
        train,
        warm_start,
    )

    sets = synthetic_sets(writers=("w1", "w2", "w3"), words=("the", "house", "of", "Move"))
    data = {"train": sets["train"], "val": sets["train"], "test": sets["test"]}
    base = dict(preset="tiny", ema=0.9, sample_every=100)
    tr = train(TrainConfig(out=str(tmp_path / "a"), steps=3, **base), data, progress=False)
    folder = tr.sampler_G.save_pretrained(tmp_path / "model", metadata={"step": tr.step})
    save_recognizer(tr.R, folder)
    cfg = TrainConfig(out=str(tmp_path / "b"), steps=4, pretrain_steps=2, init_from=str(folder), **base)
    tr2, _, _ = build_trainer(cfg, data["train"])
    d0 = {k: v.clone() for k, v in tr2.D.state_dict().items()}
    warm_start(tr2, checkpoint_from_model(folder), source=str(folder))
    assert tr2.step == 3 and tr2.pretrain_done == 0
    assert all(torch.equal(v, tr.G_ema.state_dict()[k]) for k, v in tr2.G.state_dict().items())
    assert all(torch.equal(v, tr.R.state_dict()[k]) for k, v in tr2.R.state_dict().items())
    assert all(torch.equal(v, d0[k]) for k, v in tr2.D.state_dict().items())  # D: fresh, not D's of run a
    tr3 = train(cfg, data, progress=False)  # pretrains W and R 2 steps, then one GAN iteration
    assert tr3.step == 4 and tr3.pretrain_done == 2
    assert [s["how"] for s in tr3.lineage][:2] == [
        "model folder (its own lineage is in its model card)",
        "branched",
    ]
    # a folder exported from run b keeps b's history: a run started from it goes on with all of it
    exported = export_checkpoint(list_checkpoints(tmp_path / "b" / "checkpoints")[-1], tmp_path / "model_b")
    assert json.loads(checkpoint_from_model(exported)["lineage"]) == tr3.lineage
    tr4 = train(replace(cfg, out=str(tmp_path / "c"), steps=5, init_from=str(exported)), data, progress=False)
    assert [s["how"] for s in tr4.lineage][:3] == [
        "model folder (its own lineage is in its model card)",
        "branched",
        "branched",
    ]
    with pytest.raises(CheckpointError, match="not a model folder"):
        checkpoint_from_model(tmp_path)


def test_pretrain_critics_trains_d_and_the_style_id_head_but_not_the_generator():
    sets = synthetic_sets(writers=("w1", "w2", "w3"), words=("the", "house", "of", "Move"))
    base = dict(preset="tiny", w_style_id=1.0, ema=0.9, sample_every=100)
    tr, ds, _ = build_trainer(TrainConfig(out="unused", pretrain_critics=True, **base), sets["train"])
    plain, _, _ = build_trainer(TrainConfig(out="unused", **base), sets["train"])
    g0 = {k: v.clone() for k, v in tr.G.state_dict().items()}
    d0 = {k: v.clone() for k, v in tr.D.state_dict().items()}
    s0 = {k: v.clone() for k, v in tr.S.state_dict().items()}
    plain_d0 = {k: v.clone() for k, v in plain.D.state_dict().items()}
    first = None
    for i in range(30):
        b = _batch(ds, tr.cfg, i, 0, stream=1)
        logs = tr.pretrain_step(b)
        first = first or logs
        plain.pretrain_step(b)
    assert {"D_hinge", "G_style_id", "R_ctc_real", "W_ce_real"} <= logs.keys()
    assert all(torch.equal(v, g0[k]) for k, v in tr.G.state_dict().items())  # G as it was
    assert any(not torch.equal(v, d0[k]) for k, v in tr.D.state_dict().items())
    assert any(not torch.equal(v, s0[k]) for k, v in tr.S.state_dict().items())
    assert logs["D_hinge"] < first["D_hinge"] and logs["G_style_id"] < first["G_style_id"]
    # without the option pre-training leaves D alone, as before
    assert all(torch.equal(v, plain_d0[k]) for k, v in plain.D.state_dict().items())


def test_critics_from_gives_a_model_folder_trained_critics(tmp_path):
    from scriptvit_lib.trainer import CheckpointError, list_checkpoints, load_checkpoint, train

    sets = synthetic_sets(writers=("w1", "w2", "w3"), words=("the", "house", "of", "Move"))
    data = {"train": sets["train"], "val": sets["train"], "test": sets["test"]}
    base = dict(preset="tiny", sample_every=100, w_style_id=1.0)
    train(TrainConfig(out=str(tmp_path / "a"), steps=4, **base), data, progress=False)
    critics_path = str(list_checkpoints(tmp_path / "a" / "checkpoints")[-1])
    critics = load_checkpoint(critics_path)
    folder = tmp_path / "a" / "model"
    (folder / "critics.safetensors").unlink()  # as a model folder shipped before critics travelled
    # steps == the folder's step: the branch trains nothing, so its checkpoint shows what it started with
    run = TrainConfig(out=str(tmp_path / "b"), steps=4, init_from=str(folder), critics_from="", **base)
    train(run, data, progress=False)
    plain = load_checkpoint(list_checkpoints(tmp_path / "b" / "checkpoints")[-1])
    run = replace(run, out=str(tmp_path / "c"), critics_from=critics_path)
    tr = train(run, data, progress=False)
    got = load_checkpoint(list_checkpoints(tmp_path / "c" / "checkpoints")[-1])
    assert tr.step == 4
    for name in ("D", "W", "S"):
        assert all(torch.equal(got[name][k], v) for k, v in critics[name].items()), name
        assert not all(torch.equal(plain[name][k], v) for k, v in critics[name].items()), name  # fresh there
    assert all(torch.equal(got["G"][k], v) for k, v in plain["G"].items())  # G from the folder either way
    assert json.loads(got["lineage"])[-1]["critics_from"] == run.critics_from
    # a model folder's critics come with --init-from; a run on other writers would name the wrong ones
    with pytest.raises(CheckpointError, match="come with --init-from"):
        train(replace(run, out=str(tmp_path / "d"), critics_from=str(folder)), data, progress=False)
    other = synthetic_sets(writers=("w1", "w4", "w3"), words=("the", "house", "of", "Move"))
    with pytest.raises(CheckpointError, match="other training writers"):
        train(replace(run, out=str(tmp_path / "e")), {**data, "train": other["train"]}, progress=False)


def test_a_model_folder_carries_its_critics_into_init_from(tmp_path):
    """A run's model folder (and a shipped one) holds D, W and the style-id head beside the
    generator: `init_from` the folder goes on with them, their writer rows mapped onto the new
    run's writers, instead of critics that start from nothing."""
    from scriptvit_lib.trainer import (
        checkpoint_from_model,
        list_checkpoints,
        load_checkpoint,
        train,
        warm_start,
    )

    words = ("the", "house", "of", "Move")
    sets = synthetic_sets(writers=("fa-0", "fb-0", "fc-0"), words=words)  # fc-0: test
    data = {"train": sets["train"], "val": sets["train"], "test": sets["test"]}
    base = dict(preset="tiny", sample_every=100, w_style_id=1.0)
    train(TrainConfig(out=str(tmp_path / "a"), steps=3, **base), data, progress=False)
    last = load_checkpoint(list_checkpoints(tmp_path / "a" / "checkpoints")[-1])
    folder = tmp_path / "a" / "model"
    assert json.loads((folder / "training_writers.json").read_text()) == ["fa-0", "fb-0"]
    ck = checkpoint_from_model(folder)
    for name in ("D", "W", "S"):
        assert ck[name].keys() == last[name].keys(), name
        assert all(torch.equal(ck[name][k], v) for k, v in last[name].items()), name
    same = TrainConfig(out=str(tmp_path / "b"), steps=3, init_from=str(folder), **base)
    tr, _, _ = build_trainer(same, data["train"])
    warm_start(tr, ck, source=str(folder))
    assert all(torch.equal(v, last["D"][k]) for k, v in tr.D.state_dict().items())
    # onto other writers: fb-0 keeps its row, fa-1 starts from its family's fa-0, fd-0 fresh
    more = synthetic_sets(writers=("fa-1", "fb-0", "fd-0", "fe-0"), words=words)  # fe-0: test
    data2 = {"train": more["train"], "val": more["train"], "test": more["test"]}
    tr2 = train(replace(same, out=str(tmp_path / "c")), data2, progress=False)  # step 3: trains nothing
    w_old, w_new = last["W"]["head.weight"], tr2.W.state_dict()["head.weight"]
    assert torch.equal(w_new[0], w_old[0]) and torch.equal(w_new[1], w_old[1])  # fa-1 <- fa-0, fb-0
    assert not torch.equal(w_new[2], w_old[0]) and not torch.equal(w_new[2], w_old[1])  # fd-0: fresh
    # a folder shipped without critics adopts those of a checkpoint of a run on its writers
    (folder / "critics.safetensors").unlink()
    assert "D" not in checkpoint_from_model(folder)
    adopt = [sys.executable, str(ROOT / "bench" / "adopt_critics.py")]
    first = list_checkpoints(tmp_path / "a" / "checkpoints")[0]
    subprocess.run([*adopt, str(first), "--dest", str(folder)], check=True, capture_output=True)
    ck, src = checkpoint_from_model(folder), load_checkpoint(first)
    assert all(torch.equal(ck["W"][k], v) for k, v in src["W"].items())
    other_ck = list_checkpoints(tmp_path / "c" / "checkpoints")[-1]  # run c: other writers
    res = subprocess.run([*adopt, str(other_ck), "--dest", str(folder)], capture_output=True, text=True)
    assert res.returncode != 0 and "other writers" in res.stderr


# --- branching onto other training writers (more writers per family) ---------------------------
def test_writer_rows_follow_the_writer_then_its_family():
    from scriptvit_lib.trainer import family_of, writer_rows

    assert family_of("dancing-script-2") == "dancing-script" and family_of("a01") == "a01"
    old = {"fa-0": 0, "fb-0": 1, "a01": 2}
    new = {"a01": 0, "fa-0": 1, "fa-1": 2, "fb-3": 3, "fc-0": 4}
    assert writer_rows(new, old) == [2, 0, 0, 1, None]


def test_init_from_a_run_on_other_writers_maps_the_per_writer_rows(tmp_path, capsys):
    from scriptvit_lib.trainer import list_checkpoints, load_checkpoint, train, warm_start, writer_rows

    words = ("the", "house", "of", "Move")
    sets = synthetic_sets(writers=("fa-0", "fb-0", "fc-0"), words=words)  # fc-0: test
    data = {"train": sets["train"], "val": sets["train"], "test": sets["test"]}
    base = dict(preset="tiny", sample_every=100, w_style_id=1.0, pretrain_steps=2)
    train(TrainConfig(out=str(tmp_path / "a"), steps=3, **base), data, progress=False)
    ck_path = list_checkpoints(tmp_path / "a" / "checkpoints")[-1]
    ck = load_checkpoint(ck_path)
    old = json.loads((tmp_path / "a" / "writers.json").read_text())
    more = synthetic_sets(writers=("fa-0", "fa-1", "fb-1", "fd-0", "fe-0"), words=words)  # fe-0: test
    data2 = {"train": more["train"], "val": more["train"], "test": more["test"]}
    cfg = TrainConfig(out=str(tmp_path / "b"), steps=5, init_from=str(ck_path), **base)
    tr, _, index = build_trainer(cfg, data2["train"])
    w0, s0 = tr.W.head.weight.detach().clone(), tr.S.weight.detach().clone()
    warm_start(tr, ck, rows=writer_rows(index, old))
    for name, w in {"fa-0": "fa-0", "fa-1": "fa-0", "fb-1": "fb-0"}.items():
        assert torch.equal(tr.W.head.weight[index[name]], ck["W"]["head.weight"][old[w]]), name
        assert torch.equal(tr.S.bias[index[name]], ck["S"]["bias"][old[w]]), name
    # a family the checkpoint never saw keeps its new row
    assert torch.equal(tr.W.head.weight[index["fd-0"]], w0[index["fd-0"]])
    assert torch.equal(tr.S.weight[index["fd-0"]], s0[index["fd-0"]])
    assert all(torch.equal(tr.G.state_dict()[k], v) for k, v in ck["G"].items())
    # the same through `train`: 4 writers instead of 3 load and train on (it refused a size mismatch before)
    out = train(cfg, data2, progress=False)
    assert out.step == 5 and out.W.head.weight.shape[0] == 4
    assert "1 taken as they were, 2 from a writer of the same family, 1 fresh" in capsys.readouterr().out


# --- a wider synthesis (`syn_min_channels`) grown from a trained one -------------------------
def test_widened_synthesis_writes_the_same_words_and_can_learn_with_its_new_channels():
    from scriptvit_lib.config import ScriptViTConfig
    from scriptvit_lib.generator import ScriptViT
    from scriptvit_lib.synthesis import widen_synthesis_state

    torch.manual_seed(0)
    narrow = ScriptViT(ScriptViTConfig.preset("tiny", style_modulation="film")).eval()
    for lin in narrow.synthesis.film:  # a trained FiLM is not the identity
        lin.weight.data.normal_(0, 0.3)
        lin.bias.data.normal_(0, 0.3)
    wide = ScriptViT(ScriptViTConfig.preset("tiny", style_modulation="film", syn_min_channels=16)).eval()
    assert [u.conv.out_channels for u in narrow.synthesis.ups] == [16, 8, 4]
    assert [u.conv.out_channels for u in wide.synthesis.ups] == [16, 16, 16]
    with pytest.raises(RuntimeError, match="size mismatch"):
        wide.load_state_dict(narrow.state_dict())
    state, grown = widen_synthesis_state(narrow.state_dict(), wide.synthesis, prefix="synthesis.")
    assert "synthesis.to_img.weight" in grown and "synthesis.film.4.weight" in grown
    wide.load_state_dict(state)
    style, ids = _style_and_text(0)
    with torch.no_grad():
        a, b = narrow(style, ids), wide(style, ids)
    assert torch.allclose(a, b, atol=1e-5)  # exactly the same words
    # the new channels are live: the loss reaches the weights that read them
    wide.train()
    wide(style, ids).mean().backward()
    g = wide.synthesis.to_img.weight.grad
    assert g[:, 4:].abs().sum() > 0  # new input channels of the last conv
    # a shape that cannot grow (narrower, or another layer) is left for load_state_dict to refuse
    state2, grown2 = widen_synthesis_state(wide.state_dict(), narrow.synthesis, prefix="synthesis.")
    assert grown2 == [] and state2["synthesis.to_img.weight"].shape[1] == 16


def test_init_from_widens_the_synthesis_of_a_trained_run(tmp_path):
    from scriptvit_lib.trainer import list_checkpoints, train

    sets = synthetic_sets(writers=("w1", "w2", "w3"), words=("the", "house", "of", "Move"))
    data = {"train": sets["train"], "val": sets["train"], "test": sets["test"]}
    base = dict(preset="tiny", sample_every=100, ema=0.9)
    train(TrainConfig(out=str(tmp_path / "a"), steps=3, **base), data, progress=False)
    ck_path = list_checkpoints(tmp_path / "a" / "checkpoints")[-1]
    cfg = TrainConfig(
        out=str(tmp_path / "b"),
        steps=5,
        init_from=str(ck_path),
        model_overrides={"syn_min_channels": 16},
        **base,
    )
    tr = train(cfg, data, progress=False)
    assert tr.step == 5 and tr.G.synthesis.to_img.in_channels == 16
    assert tr.G_ema.synthesis.to_img.in_channels == 16
