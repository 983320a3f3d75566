"""`width_mode="predicted"`: words resampled to the writer's own width (a style-fidelity option)."""

from __future__ import annotations

import torch
from fixtures_iam import synthetic_sets

from scriptvit_lib.config import ScriptViTConfig
from scriptvit_lib.generator import ScriptViT
from scriptvit_lib.synthesis import area_weights, resample_widths
from scriptvit_lib.trainer import TrainConfig, _batch, build_trainer

torch.set_num_threads(1)


def _model(mode: str) -> ScriptViT:
    torch.manual_seed(0)
    return ScriptViT(ScriptViTConfig.preset("tiny", width_mode=mode)).eval()


def _inputs():
    g = torch.Generator().manual_seed(0)
    style = torch.where(torch.rand(2, 5, 1, 32, 64, generator=g) < 0.2, -1.0, 1.0)
    ids = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])
    return style, ids, torch.tensor([3, 5])


def test_resample_keeps_identity_shrinks_and_pads_with_paper():
    x = torch.linspace(-1, 1, 64).view(1, 1, 1, 64).expand(2, 1, 32, 64).clone()
    same = resample_widths(x, torch.tensor([64, 64]), torch.tensor([64, 64]))
    assert torch.allclose(same, x, atol=1e-6)
    out = resample_widths(x, torch.tensor([64, 32]), torch.tensor([32, 40]))
    assert out.shape == (2, 1, 32, 40)
    assert (out[0, ..., 32:] == 1).all()  # paper right of the 32-px word
    assert out[0, 0, 0, :32].diff().gt(0).all()  # the ramp survives the shrink, in order
    assert abs(out[0, 0, 0, :32].mean().item()) < 0.05  # and its mean (antialiased)


def test_area_resampling_is_the_renderers_box_average():
    """'area' = exact box: a word drawn at 4x the width and resampled to 1x equals the 4-column
    means the font renderer takes (render.py's supersampling); for any ratio, each output
    column is a convex mix of the input and the word's mean ink is kept. 'bilinear' is not a
    box: a step edge spreads over more columns."""
    g = torch.Generator().manual_seed(0)
    big = torch.rand(1, 1, 32, 64, generator=g) * 2 - 1
    box = big.view(1, 1, 32, 16, 4).mean(-1)
    area = resample_widths(big, torch.tensor([64]), torch.tensor([16]), mode="area")
    assert torch.allclose(area, box, atol=1e-6)
    odd = resample_widths(big, torch.tensor([64]), torch.tensor([23]), mode="area")
    assert torch.allclose(odd.mean(), big.mean(), atol=1e-5)
    assert odd.min() >= big.min() - 1e-6 and odd.max() <= big.max() + 1e-6
    step = torch.ones(1, 1, 1, 48)
    step[..., 21:] = -1  # ink from column 21 on: an output-column boundary at 2/3 scale
    grey = lambda y: int(((y > -0.99) & (y < 0.99)).sum())  # noqa: E731
    assert grey(resample_widths(step, torch.tensor([48]), torch.tensor([32]), mode="area")) == 0
    assert grey(resample_widths(step, torch.tensor([48]), torch.tensor([32]))) >= 2
    try:
        resample_widths(step, torch.tensor([48]), torch.tensor([32]), mode="nearest")
    except ValueError as e:
        assert "bilinear" in str(e)
    else:
        raise AssertionError("an unknown mode must be refused")


def test_area_resampling_of_a_batch_is_each_word_resampled_alone():
    """'area' resizes a batch of words of different widths in one product: word by word it is
    the word alone times its own [w_in, w_out] box matrix, with paper right of it (also when
    `out_width` cuts a word), and gradients flow only from a word's own columns."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(4, 1, 32, 96, generator=g) * 2 - 1).requires_grad_()
    w_in, w_out = torch.tensor([96, 40, 64, 17]), torch.tensor([30, 55, 64, 9])
    for out_width in (None, 50):
        out = resample_widths(x, w_in, w_out, out_width=out_width, mode="area")
        width = out_width or 64
        assert out.shape == (4, 1, 32, width)
        for i in range(4):
            wo = min(int(w_out[i]), width)
            alone = x[i, :, :, : w_in[i]] @ area_weights(int(w_in[i]), wo)
            torch.testing.assert_close(out[i, :, :, :wo], alone, rtol=1e-5, atol=1e-6)
            assert (out[i, :, :, wo:] == 1).all()
    (grad,) = torch.autograd.grad(out[3].sum(), x)
    assert grad[:3].abs().sum() == 0 and (grad[3, ..., 17:] == 0).all() and grad[3, ..., :17].ne(0).all()


def test_model_writes_with_its_configured_resampling():
    torch.manual_seed(0)
    bil = ScriptViT(ScriptViTConfig.preset("tiny", width_mode="predicted")).eval()
    area = ScriptViT(ScriptViTConfig.preset("tiny", width_mode="predicted", resample="area")).eval()
    area.load_state_dict(bil.state_dict())  # same weights: only the kernel differs
    style, ids, lengths = _inputs()
    widths = torch.tensor([20, 50])
    with torch.no_grad():
        mem = bil.encode_style(style)
        raw = bil.decode(mem, ids, lengths)
        a, _ = area.write(mem, ids, lengths, widths=widths)
        b, _ = bil.write(mem, ids, lengths, widths=widths)
    assert torch.allclose(a, resample_widths(raw, bil.output_widths(lengths), widths, mode="area"))
    assert not torch.allclose(a, b, atol=1e-3)


def test_a_wider_canvas_draws_twice_the_columns_and_writes_at_the_same_widths():
    """`char_width=32` (session 17: with the box kernel, the canvas that can reach every real word)."""
    torch.manual_seed(0)
    g = ScriptViT(ScriptViTConfig.preset("tiny", width_mode="predicted", resample="area", char_width=32))
    style, ids, lengths = _inputs()
    mem = g.encode_style(style)
    assert g.decode(mem, ids, lengths).shape[-1] == 32 * int(lengths.max())
    img, widths = g.write(mem, ids, lengths, widths=torch.tensor([20, 50]))
    assert widths.tolist() == [20, 50] and img.shape[-1] == 50
    img.mean().backward()  # the synthesis learns through the box resampling
    assert g.synthesis.to_img.weight.grad.abs().sum() > 0


def test_fixed_mode_write_is_decode():
    g = _model("fixed")
    style, ids, lengths = _inputs()
    with torch.no_grad():
        mem = g.encode_style(style)
        img, widths = g.write(mem, ids, lengths)
        assert torch.equal(img, g.decode(mem, ids, lengths))
    assert widths.tolist() == [48, 80] and g.width_head is None


def test_predicted_mode_writes_at_predicted_or_given_widths():
    g = _model("predicted")
    style, ids, lengths = _inputs()
    with torch.no_grad():
        mem = g.encode_style(style)
        per_char = g.log_char_width(mem).exp()
        img, widths = g.write(mem, ids, lengths)
        assert widths.tolist() == (per_char * lengths).round().long().tolist()
        assert img.shape[-1] == int(widths.max()) and (img[0, ..., int(widths[0]) :] == 1).all()
        img2, widths2 = g.write(mem, ids, lengths, widths=torch.tensor([20, 50]))
        assert widths2.tolist() == [20, 50] and img2.shape[-1] == 50 and (img2[0, ..., 20:] == 1).all()
        one, w1 = g.write(g.encode_style(style[:1]), ids, lengths)  # one writer's memory, many words
        assert w1[0] == round(float(per_char[0]) * 3) and one.shape[0] == 2


def test_width_head_learns_the_writers_width_and_fakes_take_teacher_widths(tmp_path):
    sets = synthetic_sets(writers=("w1", "w2", "w3"), words=("the", "house", "of", "Move"))
    cfg = TrainConfig(
        preset="tiny", out=str(tmp_path), lr=5e-3, w_adv=0, w_ctc=0, w_writer=0, w_recon=0, w_width=1.0,
        model_overrides={"width_mode": "predicted"},
    )  # fmt: skip
    trainer, ds, _ = build_trainer(cfg, sets["train"])
    b = _batch(ds, cfg, 0, rank=0)
    real = (b.target_widths.float() / b.text_lengths.float()).log()

    def error() -> float:
        with torch.no_grad():
            return float(
                (trainer.G.log_char_width(trainer.G.encode_style(b.style, b.style_widths)) - real)
                .abs()
                .mean()
            )

    before = error()
    for step in range(30):
        logs = trainer.train_step(_batch(ds, cfg, step, rank=0))
    assert "G_width" in logs or "G_width" in trainer.last_g_logs
    assert error() < 0.5 * before
    with torch.no_grad():
        fake, widths = trainer.G.write(
            trainer.G.encode_style(b.style), b.text_ids, b.text_lengths, widths=b.target_widths
        )
    assert torch.equal(widths, b.target_widths)


def test_style_id_head_learns_writers_from_the_memory_and_resumes(tmp_path):
    from scriptvit_lib.losses import writer_ce_loss
    from scriptvit_lib.trainer import list_checkpoints, load_checkpoint, train

    sets = synthetic_sets(writers=("w1", "w2", "w3"), words=("the", "house", "of", "Move"))
    base = dict(preset="tiny", lr=5e-3, w_adv=0, w_ctc=0, w_writer=0, w_recon=0, sample_every=100)
    trainer, ds, _ = build_trainer(
        TrainConfig(out=str(tmp_path / "x"), w_style_id=1.0, **base), sets["train"]
    )
    b = _batch(ds, trainer.cfg, 0, rank=0)

    def loss() -> float:
        with torch.no_grad():
            m = trainer.G.encode_style(b.style, b.style_widths)
            return float(writer_ce_loss(trainer.S(m.pooled()), b.writer_ids))

    before = loss()
    for _ in range(40):
        trainer.train_step(b)  # the same batch: can the head + encoder fit its writers?
    assert "G_style_id" in trainer.last_g_logs and loss() < 0.7 * before

    # a run without the head continues with it (fresh head, G's optimizer state kept)
    data = {"train": sets["train"], "val": sets["train"], "test": sets["test"]}
    plain = train(TrainConfig(out=str(tmp_path / "plain"), steps=2, **base), data, progress=False)
    assert plain.S is None and "S" not in load_checkpoint(
        list_checkpoints(tmp_path / "plain" / "checkpoints")[-1]
    )
    cont = TrainConfig(out=str(tmp_path / "plain"), steps=4, w_style_id=1.0, resume=True, **base)
    t2 = train(cont, data, progress=False)
    assert t2.step == 4 and t2.S is not None


def test_char_widths_make_wide_letters_wide_and_leave_the_weights_alone(tmp_path):
    from scriptvit_lib.charset import Charset

    cs = Charset()
    widths = [0.0] + [1.0] * (cs.num_classes - 1)
    for ch, w in (("i", 0.5), ("l", 0.5), ("m", 1.5), ("w", 1.5)):
        widths[cs.encode(ch)[0]] = w
    torch.manual_seed(0)
    plain = ScriptViT(ScriptViTConfig.preset("tiny", width_mode="predicted")).eval()
    sized = ScriptViT(ScriptViTConfig.preset("tiny", width_mode="predicted", char_widths=widths)).eval()
    sized.load_state_dict(plain.state_dict())  # same weights: char_widths live in the config only
    assert set(plain.state_dict()) == set(sized.state_dict())
    ids = torch.tensor([cs.encode("ill"), cs.encode("mow")])
    lengths = torch.tensor([3, 3])
    assert plain.width_units(ids, lengths).tolist() == [3.0, 3.0]
    assert sized.width_units(ids, lengths).tolist() == [1.5, 4.0]  # i+l+l, m+o+w
    padded = torch.tensor([cs.encode("ill") + [0, 0]])  # padding (id 0) and ids past the length count 0
    assert sized.width_units(padded).tolist() == [1.5]
    assert sized.width_units(torch.tensor([cs.encode("illm")]), torch.tensor([3])).tolist() == [1.5]
    style = torch.where(
        torch.rand(1, 5, 1, 32, 64, generator=torch.Generator().manual_seed(0)) < 0.2, -1.0, 1.0
    )
    with torch.no_grad():
        per_char = float(plain.log_char_width(plain.encode_style(style)).exp())
        _, w_plain = plain.write(plain.encode_style(style), ids, lengths)
        _, w_sized = sized.write(sized.encode_style(style), ids, lengths)
    assert w_plain[0] == w_plain[1] == round(per_char * 3)
    assert w_sized.tolist() == [round(per_char * 1.5), round(per_char * 4.0)]
    # saved and loaded with the folder (config.json), weights unchanged
    sized.save_pretrained(tmp_path / "m")
    again = ScriptViT.from_pretrained(tmp_path / "m")
    assert again.config.char_widths == tuple(widths) and again.width_units(ids, lengths).tolist() == [
        1.5,
        4.0,
    ]


def test_char_widths_must_fit_the_charset():
    import pytest

    with pytest.raises(ValueError, match="char_widths must hold 81"):
        ScriptViTConfig.preset("tiny", width_mode="predicted", char_widths=[1.0, 1.0])
    with pytest.raises(ValueError, match="all > 0"):
        ScriptViTConfig.preset("tiny", width_mode="predicted", char_widths=[0.0] * 81)


def test_fit_char_widths_recovers_the_widths_words_were_made_with():
    import numpy as np

    from scriptvit_lib.synthesis import fit_char_widths

    rng = np.random.default_rng(0)
    true = np.zeros(10)
    true[1:] = [0.5, 0.7, 1.0, 1.0, 1.2, 1.5, 2.0, 0.6, 0.9]
    scales = {"a": 8.0, "b": 12.0, "c": 15.0}
    texts, widths, writers = [], [], []
    for w, s in scales.items():
        for _ in range(200):
            t = rng.integers(1, 10, size=rng.integers(2, 9)).tolist()
            texts.append(t)
            widths.append(s * true[t].sum() * rng.uniform(0.97, 1.03))
            writers.append(w)
    r = np.array(fit_char_widths(texts, widths, writers, num_classes=12))
    assert r[0] == 0.0 and r[10] == r[11] == 1.0  # padding; characters no word holds
    ratio = r[1:10] / true[1:]
    assert ratio.std() / ratio.mean() < 0.03  # the widths, up to one common factor
    units = np.array([r[t].sum() for t in texts])
    lengths = np.array([len(t) for t in texts])
    assert abs(np.log(units / lengths).mean()) < 1e-9  # normalised: on average one unit a character


def test_the_width_loss_regresses_on_width_units_when_char_widths_are_set(tmp_path):
    from scriptvit_lib.charset import Charset

    cs = Charset()
    widths = [0.0] + [1.0] * (cs.num_classes - 1)
    widths[cs.encode("h")[0]] = 3.0
    sets = synthetic_sets(writers=("w1", "w2", "w3"), words=("the", "house", "of", "Move"))
    cfg = TrainConfig(
        preset="tiny", out=str(tmp_path), lr=5e-3, w_adv=0, w_ctc=0, w_writer=0, w_recon=0, w_width=1.0,
        model_overrides={"width_mode": "predicted", "char_widths": widths},
    )  # fmt: skip
    trainer, ds, _ = build_trainer(cfg, sets["train"])
    b = _batch(ds, cfg, 0, rank=0)
    units = trainer.G.width_units(b.text_ids, b.text_lengths)
    assert not torch.equal(units, b.text_lengths.float())  # words with an 'h' count 2 more
    real = (b.target_widths.float() / units).log()
    with torch.no_grad():
        pred = trainer.G.log_char_width(trainer.G.encode_style(b.style, b.style_widths))
    expected = float((pred - real).pow(2).mean())
    logs = trainer.train_step(b)
    got = logs.get("G_width", trainer.last_g_logs.get("G_width"))
    assert abs(float(got) - expected) < 1e-4


def test_a_run_goes_on_with_the_character_widths_of_what_it_starts_from(tmp_path):
    import json

    from scriptvit_lib.charset import Charset

    widths = [0.0] + [1.0] * (Charset().num_classes - 1)
    widths[5] = 2.0
    ScriptViT(ScriptViTConfig.preset("tiny", width_mode="predicted", char_widths=widths)).save_pretrained(
        tmp_path / "folder"
    )
    sets = synthetic_sets(writers=("w1", "w2", "w3"), words=("the", "house", "of", "Move"))
    base = dict(preset="tiny", model_overrides={"width_mode": "predicted"})
    t, _, _ = build_trainer(
        TrainConfig(out=str(tmp_path / "a"), init_from=str(tmp_path / "folder"), **base), sets["train"]
    )
    assert t.model_cfg.char_widths == tuple(widths)  # from the model folder
    t, _, _ = build_trainer(TrainConfig(out=str(tmp_path / "b"), **base), sets["train"])
    assert t.model_cfg.char_widths is None  # a fresh run has none unless its flags say so
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "model_config.json").write_text(json.dumps({"char_widths": widths}))
    t, _, _ = build_trainer(TrainConfig(out=str(tmp_path / "b"), resume=True, **base), sets["train"])
    assert t.model_cfg.char_widths == tuple(widths)  # a resumed run keeps its own
    (tmp_path / "b" / "model_config.json").write_text(json.dumps({"char_widths": None}))
    resumed = TrainConfig(out=str(tmp_path / "b"), resume=True, init_from=str(tmp_path / "folder"), **base)
    assert build_trainer(resumed, sets["train"])[0].model_cfg.char_widths is None  # the run folder decides
    with_flags = dict(base, model_overrides={"width_mode": "predicted", "char_widths": None})
    cfg = TrainConfig(out=str(tmp_path / "c"), init_from=str(tmp_path / "folder"), **with_flags)
    assert build_trainer(cfg, sets["train"])[0].model_cfg.char_widths is None  # flags win
    import pytest

    with pytest.raises(ValueError, match="need width_mode='predicted'"):
        ScriptViTConfig.preset("tiny", char_widths=widths)
