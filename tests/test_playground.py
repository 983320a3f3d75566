"""playground.py: the widgets run headless - set values, call handlers, check the images change."""

import io
from datetime import datetime, timezone

import numpy as np
import pytest
import torch
from PIL import Image

from scriptvit_lib.config import ScriptViTConfig
from scriptvit_lib.generator import ScriptViT
from scriptvit_lib.playground import Playground, build_widgets
from tests.fixtures_iam import draw_word, synthetic_sets


@pytest.fixture(scope="module")
def pg():
    torch.manual_seed(0)
    model = ScriptViT(ScriptViTConfig.preset("tiny")).eval()
    return Playground(model, synthetic_sets(words=("the", "Move", "garden", "old"))["train"])


def png_of_line(texts=("quiet", "morning", "garden")) -> bytes:
    """A synthetic photo of a line of handwriting, as PNG bytes (what FileUpload hands over)."""
    parts = []
    for t in texts:
        parts += [draw_word(t, height=64), np.full((64, 30), 255, np.uint8)]
    line = np.pad(np.concatenate(parts, axis=1), 20, constant_values=255)
    buf = io.BytesIO()
    Image.fromarray(line).save(buf, "png")
    return buf.getvalue()


def test_pure_methods(pg):
    a, b = pg.names[:2]
    page = pg.render("hello there", a, k=2, seed=0)
    assert page.dtype == np.uint8 and page.ndim == 2
    assert np.array_equal(page, pg.render("hello there", a, k=2, seed=0))  # same args, same pixels
    assert pg.writer(a, 2, 0) is pg.writer(a, 2, 0)  # cached: the memory is encoded once
    three = pg.render("hello", a, k=2, variations=3)
    assert three.shape[0] > 3 * 32
    mix = pg.interpolate("hello there", a, b, 0.5, k=2)
    assert mix.dtype == np.uint8 and mix.shape[0] == 32
    assert pg.locate("ab cde", 3) == ("cde", 1)
    fig = pg.attention_view("ab cde", a, 3, k=2, layer=0, head="mean")
    assert "layer 0, mean of 2 heads" in fig.axes[0].get_title(loc="left")


def test_widgets_update_on_change(pg):
    ui = build_widgets(pg, text="hello")
    first = ui.image.value
    assert first and ui.interp_image.value and ui.attn_image.value and ui.status.value == ""
    ui.text.value = "hello world"
    assert ui.image.value != first and ui.char.max == len("helloworld") - 1
    before = ui.image.value
    ui.writer.value = pg.names[1]
    assert ui.image.value != before
    ui.writer_b.value = pg.names[0]
    before = ui.interp_image.value
    ui.alpha.value = 0.0
    assert ui.interp_image.value != before
    before = ui.attn_image.value
    ui.char.value = 7
    assert ui.attn_image.value != before
    ui.variations.value = 2
    assert Image.open(io.BytesIO(ui.image.value)).height > 2 * 32
    before = ui.image.value
    ui.text.value = "naïve €"  # characters outside the charset: a message, no exception
    assert "cannot write" in ui.status.value and ui.image.value == before


def test_upload_synthetic_png(pg):
    ui = build_widgets(pg, text="hi")
    payload = png_of_line()
    ui.upload.value = (
        {
            "name": "line.png",
            "type": "image/png",
            "size": len(payload),
            "content": memoryview(payload),
            "last_modified": datetime.now(timezone.utc),
        },
    )
    assert ui.writer.value == "upload: line.png" and "upload: line.png" in ui.writer_b.options
    assert len(pg.styles["upload: line.png"]) == 3  # three words found in the picture
    assert ui.status.value == "" and ui.image.value
    assert pg.on_upload([payload], name="again") == "again"


def test_adapt_toggle_writes_with_the_adapted_memory_and_needs_texts_and_critic(pg):
    from scriptvit_lib.errors import UserError
    from scriptvit_lib.writer_classifier import WriterClassifier

    a = pg.names[0]
    with pytest.raises(UserError, match="needs the writer classifier"):
        pg.render("hello", a, k=2, adapt=True)  # a model object: no folder to find W in
    torch.manual_seed(3)
    critic = WriterClassifier(num_writers=3, ch=pg.model.config.wcls_ch).eval()
    ada = Playground(pg.model, None, critic=critic, adapt_steps=3)
    ada.styles, ada.texts = dict(pg.styles), dict(pg.texts)
    assert ada.texts[a] == [t for t in ada.texts[a] if t] and len(ada.texts[a]) == len(ada.styles[a])
    plain, adapted = ada.render("hello", a, k=2), ada.render("hello", a, k=2, adapt=True)
    assert adapted.dtype == np.uint8 and not (plain.shape == adapted.shape and np.array_equal(plain, adapted))
    assert ada.writer(a, 2, 0, True) is not ada.writer(a, 2, 0) and ada.writer(a, 2, 0, True)._adapt
    up = ada.on_upload([png_of_line()], name="mine")
    with pytest.raises(UserError, match="type their texts"):
        ada.render("hello", up, k=2, adapt=True)
    ada.set_texts(up, "quiet morning")  # three words found, two texts
    with pytest.raises(UserError, match="3 style words but 2 texts"):
        ada.render("hello", up, k=2, adapt=True)
    ada.set_texts(up, "quiet morning garden")
    assert ada.render("hello", up, k=2, adapt=True).ndim == 2

    ui = build_widgets(ada, text="hello", name=a)
    before = ui.image.value
    ui.adapt.value = True
    assert ui.status.value == "" and ui.image.value != before
    ui.writer.value = "mine"
    ui.style_texts.value = "only two"
    assert "3 style words but 2 texts" in ui.status.value
    ui.style_texts.value = "quiet morning garden"
    assert ui.status.value == ""


def test_adapt_with_the_discriminator_too(pg):
    from scriptvit_lib.discriminator import Discriminator
    from scriptvit_lib.errors import UserError
    from scriptvit_lib.writer_classifier import WriterClassifier

    a = pg.names[0]
    torch.manual_seed(3)
    critic = WriterClassifier(num_writers=3, ch=pg.model.config.wcls_ch).eval()
    disc = Discriminator(ch=pg.model.config.d_ch).eval()

    def playground(**kw) -> Playground:
        p = Playground(pg.model, None, critic=critic, adapt_steps=3, **kw)
        p.styles, p.texts = dict(pg.styles), dict(pg.texts)
        return p

    with pytest.raises(UserError, match="needs the discriminator"):
        playground(adapt_feat_d=7.0).render("hello", a, k=2, adapt=True)  # W is a module: no folder for D
    with pytest.raises(UserError, match="adapt_feat_d must be >= 0"):
        playground(adapt_feat_d=-1.0)
    w_only = playground(discriminator=disc).writer(a, 2, 0, True)
    w_and_d = playground(adapt_feat_d=7.0, discriminator=disc).writer(a, 2, 0, True)
    assert w_only._adapt[0].discriminator is None and w_and_d._adapt[0].discriminator is disc
    assert not torch.allclose(w_and_d.memory(0).tokens, w_only.memory(0).tokens)
