"""Test-time adaptation: it fits the writer's style words, never changes the model it was given,
refuses bad input with a clear error, and the fidelity benchmark adapts on the same style words
it would otherwise encode once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from scriptvit_lib.adaptation import AdaptConfig, adapt
from scriptvit_lib.config import ScriptViTConfig
from scriptvit_lib.data import mini_dataset
from scriptvit_lib.discriminator import Discriminator
from scriptvit_lib.errors import UserError
from scriptvit_lib.features import JudgeConfig, train_judges
from scriptvit_lib.fidelity import style_fidelity, style_memory, writer_generator
from scriptvit_lib.generator import ScriptViT

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return mini_dataset(ROOT / "data" / "fonts-mini", words_per_writer=40)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ScriptViT(ScriptViTConfig.preset("tiny", width_mode="predicted")).eval()


def _words(data, n=3):
    w = sorted(data["train"].writers)[0]
    return data["train"].of_writer(w)[:n]


@pytest.mark.parametrize(
    "what,lr,gain",
    [("decoder", 3e-3, 0.9), ("synthesis", 3e-3, 0.9), ("memory", 0.1, 0.995), ("norms", 1e-2, 0.95)],
)
def test_adaptation_fits_the_style_words_and_leaves_the_model_alone(data, model, what, lr, gain):
    words = _words(data)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g, memory, losses = adapt(
        model, [s.image for s in words], [s.text for s in words], AdaptConfig(15, lr, what)
    )
    assert len(losses) == 16 and losses[-1] < gain * losses[0]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert (g is model) == (what == "memory")
    if what == "memory":  # only the memory moved
        assert memory.tokens.shape[0] == 1 and not memory.tokens.requires_grad
    else:  # only the chosen parts moved
        moved = {n for n, p in g.named_parameters() if not torch.equal(p, model.get_parameter(n))}
        parts = {n.split(".")[0] for n in moved}
        assert parts == ({"fusion", "synthesis"} if what == "decoder" else {"synthesis"})
        assert (what == "norms") == all(".norm" in n for n in moved)
        assert not any(p.requires_grad for p in g.parameters())


def test_zero_steps_is_the_one_pass_memory(data, model):
    words = _words(data)
    g, memory, losses = adapt(
        model, [s.image for s in words], [s.text for s in words], AdaptConfig(0, what="memory")
    )
    assert g is model and len(losses) == 1
    g2, memory2, _ = adapt(
        model, [s.image for s in words], [s.text for s in words], AdaptConfig(0, what="memory")
    )
    torch.testing.assert_close(memory.tokens, memory2.tokens)


def test_bad_input_is_a_clear_error(data, model):
    words = _words(data)
    images = [s.image for s in words]
    with pytest.raises(UserError, match="one text per word"):
        adapt(model, images, ["a"])
    with pytest.raises(UserError, match="unknown"):
        adapt(model, images, ["a", "b", "\u2603"])
    with pytest.raises(UserError, match="at least one"):
        adapt(model, [], [])
    with pytest.raises(UserError, match="must be one of"):
        AdaptConfig(what="everything")


def test_writer_generator_draws_the_style_words_of_style_memory(data, model):
    pool = data["train"]
    w = sorted(pool.writers)[1]
    g, memory, one_pass = writer_generator(model, pool, w, 4, seed=3)
    assert g is model and memory is one_pass
    torch.testing.assert_close(memory.tokens, style_memory(model, pool, w, 4, 3).tokens)
    g, adapted, one_pass = writer_generator(model, pool, w, 4, seed=3, adapt=AdaptConfig(3, 1e-3, "memory"))
    torch.testing.assert_close(one_pass.tokens, style_memory(model, pool, w, 4, 3).tokens)
    assert not torch.equal(adapted.tokens, one_pass.tokens)


def test_style_fidelity_with_adaptation_adds_the_one_pass_row(data, model, tmp_path):
    cfg = JudgeConfig(feat_ch=4, feat_dim=32, rec_ch=4, feat_steps=30, rec_steps=2)
    judges = train_judges(data["train"], tmp_path, config=cfg, progress=False)

    def score(draws):
        return style_fidelity(
            model,
            data,
            judges,
            n_per_writer=6,
            progress=False,
            distinct_texts=4,
            adapt=AdaptConfig(2, 1e-3, "synthesis"),
            adapt_draws=draws,
        )

    result, extra = score(1)
    assert set(result["rows"]) == {"model", "mean", "nearest", "floor", "one_pass"}
    assert result["adapt"] == {
        "steps": 2,
        "lr": 1e-3,
        "what": "synthesis",
        "w_ctc": 0.0,
        "w_l1": 1.0,
        "w_feat": 0.0,
        "w_hand": 0.0,
        "w_feat_d": 0.0,
        "draws": 1,
    }
    assert len(extra["images"]["one_pass"]) == len(extra["images"]["model"]) == result["words_per_set"]
    assert any(
        not np.array_equal(x, y) for x, y in zip(extra["images"]["one_pass"], extra["images"]["model"])
    )
    # two draws per writer: draw 0 is the one above and writes every other target, draw 1 the rest
    result2, extra2 = score(2)
    assert result2["adapt"]["draws"] == 2
    a = extra2["a"]
    for w in sorted(a.writers):
        idx = [int(i) for i in a.indices_of(w)]
        one, two = extra["images"]["one_pass"], extra2["images"]["one_pass"]
        assert all(np.array_equal(one[i], two[i]) for i in idx[0::2])
        assert not all(np.array_equal(one[i], two[i]) for i in idx[1::2])


def test_recognizer_round_trips_and_bad_paths_are_clear_errors(model, tmp_path):
    from scriptvit_lib.adaptation import load_recognizer, save_recognizer
    from scriptvit_lib.recognizer import Recognizer

    torch.manual_seed(1)
    r = Recognizer.from_config(model.config)
    save_recognizer(r, tmp_path)
    back = load_recognizer(tmp_path, model.config)
    x = torch.rand(2, 1, 32, 64) * 2 - 1
    torch.testing.assert_close(back(x), r.eval()(x))
    assert not any(p.requires_grad for p in back.parameters())
    with pytest.raises(UserError, match="no recognizer at"):
        load_recognizer(tmp_path / "missing_dir_is_no_file", model.config)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no recognizer.safetensors"):
        load_recognizer(tmp_path / "empty", model.config)
    with pytest.raises(UserError, match="needs the recognizer"):
        adapt(model, [np.full((32, 40), 255, np.uint8)], ["ab"], AdaptConfig(2, w_ctc=1.0))


def test_legibility_anchor_changes_the_adapted_generator(data, model):
    from scriptvit_lib.recognizer import Recognizer

    words = _words(data)
    images, texts = [s.image for s in words], [s.text for s in words]
    torch.manual_seed(2)
    r = Recognizer.from_config(model.config).eval()
    plain, _, l_plain = adapt(model, images, texts, AdaptConfig(4, 1e-3, "synthesis"))
    anchored, _, l_anch = adapt(
        model, images, texts, AdaptConfig(4, 1e-3, "synthesis", w_ctc=1.0), recognizer=r
    )
    assert l_plain[0] == pytest.approx(l_anch[0])  # same start: the anchor only adds a term
    p, q = plain.synthesis.to_img.weight, anchored.synthesis.to_img.weight
    assert not torch.allclose(p, q)  # the recognizer's gradient moved the weights elsewhere


def _critic(model, writers=4):
    from scriptvit_lib.writer_classifier import WriterClassifier

    torch.manual_seed(5)
    return WriterClassifier(num_writers=writers, ch=model.config.wcls_ch).eval()


def test_critic_losses_move_the_words_towards_the_style_words_in_the_critics_space(data, model):
    """The feature loss lowers the paired feature distance to the style words, the hand loss the
    distance between W's centroids of other words written and of the style words: each with the
    pixel L1 off."""
    from scriptvit_lib.adaptation import _Anchor, _paired, _targets
    from scriptvit_lib.charset import Charset
    from scriptvit_lib.losses import feature_match_loss

    words = _words(data, 4)
    images, texts = [s.image for s in words], [s.text for s in words]
    w = _critic(model)
    target, widths, ids, lengths = _targets(images, texts, Charset())
    _, memory, _ = adapt(model, images, texts, AdaptConfig(0, what="memory"))  # the one-pass memory

    def feat(g, mem, net=w):
        with torch.no_grad():
            _, fake, tgt, fw = _paired(g, mem, target, widths, ids, lengths)
            maps = net.feature_maps(fake), net.feature_maps(tgt)
            return float(feature_match_loss(*maps, fw, fake.shape[-1]))

    def hand(g, mem):  # other words than the style words' (another draw than adaptation's)
        with torch.no_grad():
            fake, fw, _, _ = _Anchor(None, Charset(), 12, 99, "cpu").write(g, mem)
            return float((w.embed(fake, fw).mean(0) - w.embed(target, widths).mean(0)).norm())

    cfg = AdaptConfig(15, 3e-3, "synthesis", w_l1=0, w_feat=1)
    g, m_feat, losses = adapt(model, images, texts, cfg, memory=memory, critic=w)
    assert feat(g, m_feat) < 0.5 * feat(model, memory)
    assert len(losses) == 16  # the L1 is still reported while its weight is 0
    cfg = AdaptConfig(15, 3e-3, "synthesis", w_l1=0, w_hand=1, anchor_words=6, critic=w)
    g, m_hand, _ = adapt(model, images, texts, cfg, memory=memory)
    assert hand(g, m_hand) < 0.5 * hand(model, memory)
    torch.manual_seed(6)
    d = Discriminator(ch=model.config.d_ch).eval()  # the same loss in D's trunk
    cfg = AdaptConfig(15, 3e-3, "synthesis", w_l1=0, w_feat_d=1)
    g, m_d, _ = adapt(model, images, texts, cfg, memory=memory, discriminator=d)
    assert feat(g, m_d, d) < 0.5 * feat(model, memory, d)


def test_load_critic_from_a_model_folder_or_checkpoint_and_clear_errors(tmp_path, model):
    from scriptvit_lib.adaptation import load_critic
    from scriptvit_lib.trainer import save_critics

    w = _critic(model, writers=3)
    save_critics({"W": w.state_dict(), "step": 7}, tmp_path)
    torch.save({"W": w.state_dict()}, tmp_path / "step_0000007.pt")
    x = torch.rand(2, 1, 32, 48) * 2 - 1
    for source in (tmp_path, tmp_path / "step_0000007.pt"):
        back = load_critic(source)
        torch.testing.assert_close(back(x), w(x))
        assert back.num_writers == 3 and not any(p.requires_grad for p in back.parameters())
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no critics.safetensors"):
        load_critic(tmp_path / "empty")
    with pytest.raises(UserError, match="no critics at"):
        load_critic(tmp_path / "nothing.txt")
    save_critics({"D": {"x": torch.zeros(1)}}, tmp_path / "empty")
    with pytest.raises(UserError, match="holds no writer classifier"):
        load_critic(tmp_path / "empty")
    with pytest.raises(UserError, match="needs the writer classifier"):
        adapt(model, [np.full((32, 40), 255, np.uint8)], ["ab"], AdaptConfig(2, w_hand=1.0))
    with pytest.raises(UserError, match="holds no discriminator"):
        load_critic(tmp_path / "empty", "D")
    with pytest.raises(UserError, match="needs the discriminator"):
        adapt(model, [np.full((32, 40), 255, np.uint8)], ["ab"], AdaptConfig(2, w_feat_d=1.0))
    with pytest.raises(UserError, match="'W' or 'D'"):
        load_critic(tmp_path, "S")
    d = Discriminator(ch=4).eval()  # spectral norm: its power-iteration vectors travel too
    (tmp_path / "d").mkdir()
    save_critics({"D": d.state_dict()}, tmp_path / "d")
    torch.testing.assert_close(load_critic(tmp_path / "d", "D")(x), d(x))
    with pytest.raises(UserError, match=">= 0"):
        AdaptConfig(2, w_feat=-1.0)
