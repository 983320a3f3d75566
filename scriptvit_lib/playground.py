"""A playground for a trained ScriptViT: pick (or upload) a hand, type, look.

All the logic is in `Playground`, whose methods are pure functions of their arguments (and a
cache): `render` (text -> page, with k, seed and variations), `interpolate` (between two
writers, `attention.interpolate_styles`), `attention_view` (where one character looks,
`attention.character_attention`) and `on_upload` (pictures -> a new writer). Each takes
`adapt=True` to write with the writer's memory adapted to its style words (`Writer.adapt`, a
library option: needs what the style words say - a dataset's labels, or the texts typed beside
an upload - and the training writer classifier shipped in the model folder).
`build_widgets(playground)` wires ipywidgets to them; a test sets the widgets' values and
checks the images change, so nothing here needs a browser.

Speed: a style memory is encoded once per (writer, k, seed) and cached (by `Writer`), so an
update is one batched decode of the text's words - tens of ms for a sentence on a CPU.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from . import viz
from .attention import character_attention, decode_words, interpolate_styles
from .errors import UserError
from .generator import ScriptViT
from .preprocess import ImageLike, prepare_style_images
from .words import WordSet
from .writer import Writer, load_model

GAP = 14  # px between words in an interpolated line
MAX_STYLE_WORDS = 40  # style words kept per dataset writer (k of them are drawn)


def png_bytes(image: np.ndarray | Image.Image | Figure, dpi: int = 80) -> bytes:
    """A uint8 image, PIL image or matplotlib Figure -> PNG bytes (what `widgets.Image` shows)."""
    buf = io.BytesIO()
    if isinstance(image, Figure):
        image.savefig(buf, format="png", dpi=dpi)
    else:
        (image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))).save(buf, "png")
    return buf.getvalue()


def stack_rows(rows: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    """uint8 images top to bottom, left-aligned on white, `gap` px apart."""
    w = max(r.shape[1] for r in rows)
    parts = []
    for r in rows:
        parts += [
            np.pad(r, ((0, 0), (0, w - r.shape[1])), constant_values=255),
            np.full((gap, w), 255, np.uint8),
        ]
    return np.concatenate(parts[:-1])


class Playground:
    """A model + named style sources (dataset writers, uploads) with cached writers.

    `critic`: the writer classifier W for `adapt=True` (a module, or the folder / checkpoint that
    holds it); default: the model folder, when `model` is one. `adapt_feat_d` > 0 adds the
    discriminator D's features to the adaptation with that weight (`Writer.adapt(feat_d=)`);
    `discriminator`: D (a module, or where it is; default: where W came from, else the model
    folder)."""

    def __init__(
        self,
        model: ScriptViT | str,
        data: WordSet | None = None,
        *,
        words_per_writer=MAX_STYLE_WORDS,
        critic=None,
        adapt_steps: int = 40,
        adapt_feat_d: float = 0.0,
        discriminator=None,
    ):
        self.model = load_model(model).eval()
        if critic is None and not isinstance(model, ScriptViT):
            critic = Path(model)  # the model folder's critics.safetensors
        if adapt_feat_d < 0:
            raise UserError(f"adapt_feat_d must be >= 0, got {adapt_feat_d}")
        if discriminator is None and critic is not None and not isinstance(critic, torch.nn.Module):
            discriminator = critic  # D from where W comes from
        elif discriminator is None and not isinstance(model, ScriptViT):
            discriminator = Path(model)
        self.critic = critic
        self.adapt_steps = adapt_steps
        self.adapt_feat_d = float(adapt_feat_d)
        self.discriminator = discriminator
        self.styles: dict[str, list[np.ndarray]] = {}  # name -> model-ready style words [32, w]
        self.texts: dict[str, list[str]] = {}  # name -> what each style word says, where known
        if data is not None:
            for w in data.writers:
                samples = data.of_writer(w)[:words_per_writer]
                self.styles[w] = [s.image for s in samples]
                self.texts[w] = [s.text for s in samples]
        self._writers: dict[tuple[str, int, int, bool], Writer] = {}

    @property
    def names(self) -> list[str]:
        return list(self.styles)

    @property
    def max_k(self) -> int:
        return self.model.config.max_style_images

    def _known(self, name: str) -> None:
        if name not in self.styles:
            raise UserError(f"no writer called {name!r}; choose one of {self.names} or upload pictures")

    def writer(self, name: str, k: int = 5, seed: int = 0, adapt: bool = False) -> Writer:
        """The cached `Writer` of a style source (its memory is encoded on first use, then reused;
        with `adapt`, adapted to its style words first - seconds per style draw on a CPU)."""
        self._known(name)
        key = (name, int(k), int(seed), bool(adapt))
        if key not in self._writers:
            w = Writer.from_images(self.styles[name], self.model, k=int(k), seed=int(seed), preprocess=False)
            if adapt:
                if not self.texts.get(name):
                    raise UserError(
                        f"adapting needs what {name!r}'s style words say: type their texts, in order"
                    )
                if self.critic is None:
                    raise UserError("adapting needs the writer classifier: Playground(critic=folder or W)")
                if self.adapt_feat_d > 0 and self.discriminator is None:
                    raise UserError(
                        "adapt_feat_d needs the discriminator: Playground(discriminator=folder or D)"
                    )
                w.adapt(
                    self.texts[name],
                    steps=self.adapt_steps,
                    critic=self._loaded("critic", "W"),
                    feat_d=self.adapt_feat_d,
                    discriminator=self._loaded("discriminator", "D") if self.adapt_feat_d > 0 else None,
                )
            self._writers[key] = w
        return self._writers[key]

    def _loaded(self, attr: str, net: str) -> torch.nn.Module:
        """The critic in `attr` (W or D), loaded once for every writer where it was given as a path."""
        critic = getattr(self, attr)
        if not isinstance(critic, torch.nn.Module):
            from .adaptation import load_critic

            critic = load_critic(critic, net)
            setattr(self, attr, critic)
        return critic

    def set_texts(self, name: str, texts: str | Sequence[str]) -> None:
        """What `name`'s style words say, in order (a string is split at spaces); adapted writers
        of `name` are made again."""
        self._known(name)
        self.texts[name] = texts.split() if isinstance(texts, str) else [str(t) for t in texts]
        self._writers = {key: w for key, w in self._writers.items() if not (key[0] == name and key[3])}

    # --- the views -------------------------------------------------------------------------------
    def render(
        self, text: str, name: str, *, k: int = 5, seed: int = 0, variations: int = 1, adapt: bool = False
    ) -> np.ndarray:
        """`text` in `name`'s hand -> uint8 page; `variations` > 1 stacks that many renders
        (other draws of the style words, `Writer.variations`; each draw is adapted with `adapt`)."""
        w = self.writer(name, k, seed, adapt)
        if variations <= 1:
            return w.write_array(text, seed=seed)
        return stack_rows([np.asarray(im) for im in w.variations(text, int(variations), seed=seed)])

    def interpolate(
        self,
        text: str,
        name_a: str,
        name_b: str,
        alpha: float,
        *,
        k: int = 5,
        seed: int = 0,
        adapt: bool = False,
    ) -> np.ndarray:
        """`text` written with a memory between two writers (alpha 0 = A, 1 = B), words side by side."""
        words = text.split()
        if not words:
            raise UserError("nothing to write: the text is empty")
        a, b = self.writer(name_a, k, seed, adapt), self.writer(name_b, k, seed, adapt)
        bad = sorted({c for word in words for c in a.charset.unknown(word)})
        if bad:
            raise UserError(f"the text has characters this model cannot write: {bad}")
        mem = interpolate_styles(a.memory(), b.memory(), alpha)
        images = decode_words(self.model, mem, words)
        parts = []
        for im in images:
            parts += [im, np.full((im.shape[0], GAP), 255, np.uint8)]
        return np.concatenate(parts[:-1], axis=1)

    @staticmethod
    def locate(text: str, char_index: int) -> tuple[str, int]:
        """Index into the text's non-space characters -> (its word, its index in the word)."""
        words = text.split()
        if not words:
            raise UserError("nothing to write: the text is empty")
        i = min(max(int(char_index), 0), sum(map(len, words)) - 1)
        for word in words:
            if i < len(word):
                return word, i
            i -= len(word)
        raise AssertionError("unreachable")

    def attention_view(
        self,
        text: str,
        name: str,
        char_index: int,
        *,
        k: int = 5,
        seed: int = 0,
        layer: str | int = "mean",
        head: str | int = "mean",
        adapt: bool = False,
    ) -> Figure:
        """Where character `char_index` (counting non-space characters) looks in the style words."""
        word, i = self.locate(text, char_index)
        w = self.writer(name, k, seed, adapt)
        bad = w.charset.unknown(word)
        if bad:
            raise UserError(f"the text has characters this model cannot write: {bad}")
        r = character_attention(w, word, layer=layer, head=head)
        return viz.plot_character_attention(
            r.image, r.canvases, r.maps, r.text, char_width=r.char_width, chars=[i], label=r.label
        )

    # --- your own hand ---------------------------------------------------------------------------
    def on_upload(self, files, name: str | None = None, texts: str | Sequence[str] | None = None) -> str:
        """Pictures of handwriting -> a new style source; returns its name.

        `files`: a `widgets.FileUpload` value (dicts with "name" and "content"), or a list of
        PNG/JPEG bytes, paths, PIL images or arrays (anything `preprocess.py` reads). `texts`: what
        the words found in them say, in order (for `adapt=True`; `set_texts` gives them later).
        """
        if isinstance(files, dict):
            files = list(files.values())
        images: list[ImageLike] = []
        names = []
        for f in files:
            if isinstance(f, dict):  # ipywidgets 8 FileUpload: {"name", "type", "size", "content", ...}
                images.append(Image.open(io.BytesIO(bytes(f["content"]))))
                names.append(str(f.get("name", "upload")))
            elif isinstance(f, (bytes, bytearray, memoryview)):
                images.append(Image.open(io.BytesIO(bytes(f))))
            else:
                images.append(f)
        if not images:
            raise UserError("no pictures uploaded")
        words, _ = prepare_style_images(images)
        name = name or "upload: " + (", ".join(names) if names else f"{len(images)} picture(s)")
        self.styles[name] = words
        self.texts.pop(name, None)
        self._writers = {key: w for key, w in self._writers.items() if key[0] != name}  # re-upload: fresh
        if texts:
            self.set_texts(name, texts)
        return name


# --- widgets -------------------------------------------------------------------------------------
def build_widgets(pg: Playground, *, text: str = "hello world", name: str | None = None) -> SimpleNamespace:
    """ipywidgets wired to `pg`; returns a namespace with every widget, the update functions and
    `.box` (display that). Errors (unknown characters, empty text) show up in `.status`."""
    import ipywidgets as W

    names = pg.names or ["(upload pictures)"]
    ui = SimpleNamespace()
    ui.writer = W.Dropdown(options=names, value=name or names[0], description="writer")
    ui.upload = W.FileUpload(accept="image/*", multiple=True, description="your hand")
    ui.text = W.Text(value=text, description="text", continuous_update=False)
    ui.k = W.IntSlider(value=min(5, pg.max_k), min=1, max=pg.max_k, description="k")
    ui.seed = W.IntSlider(value=0, min=0, max=20, description="seed")
    ui.variations = W.IntSlider(value=1, min=1, max=4, description="variations")
    ui.adapt = W.Checkbox(value=False, description="adapt to the style words (seconds)")
    ui.style_texts = W.Text(
        value="",
        placeholder="what your pictures say, word by word",
        description="their texts",
        continuous_update=False,
    )
    ui.writer_b = W.Dropdown(options=names, value=names[-1], description="writer B")
    ui.alpha = W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.125, description="alpha")
    ui.char = W.IntSlider(value=0, min=0, max=max(0, len(text.replace(" ", "")) - 1), description="character")
    ui.layer = W.Dropdown(
        options=["mean", *range(pg.model.config.dec_layers)], value="mean", description="layer"
    )
    ui.head = W.Dropdown(
        options=["mean", *range(pg.model.config.dec_heads)], value="mean", description="head"
    )
    ui.image = W.Image(format="png")
    ui.interp_image = W.Image(format="png")
    ui.attn_image = W.Image(format="png")
    ui.status = W.HTML()

    def guarded(fn):
        def run(*_):
            try:
                fn()
                ui.status.value = ""
            except (UserError, AssertionError) as e:
                ui.status.value = f"<span style='color:#b00'>{e}</span>"

        return run

    def common():
        return dict(k=ui.k.value, seed=ui.seed.value, adapt=ui.adapt.value)

    @guarded
    def update_render():
        img = pg.render(ui.text.value, ui.writer.value, variations=ui.variations.value, **common())
        ui.image.value = png_bytes(img)

    @guarded
    def update_interp():
        img = pg.interpolate(ui.text.value, ui.writer.value, ui.writer_b.value, ui.alpha.value, **common())
        ui.interp_image.value = png_bytes(img)

    @guarded
    def update_attention():
        ui.char.max = max(0, len(ui.text.value.replace(" ", "").replace("\n", "")) - 1)
        fig = pg.attention_view(
            ui.text.value,
            ui.writer.value,
            ui.char.value,
            layer=ui.layer.value,
            head=ui.head.value,
            **common(),
        )
        ui.attn_image.value = png_bytes(fig, dpi=72)

    def update_all(*_):
        update_render()
        update_interp()
        update_attention()

    def on_upload(change):
        if not change["new"]:
            return
        try:
            new = pg.on_upload(change["new"], texts=ui.style_texts.value or None)
        except UserError as e:
            ui.status.value = f"<span style='color:#b00'>{e}</span>"
            return
        opts = [o for o in ui.writer.options if o != "(upload pictures)"]
        ui.writer.options = [*opts, new] if new not in opts else opts
        ui.writer_b.options = ui.writer.options
        ui.writer.value = new  # triggers update_all

    def on_style_texts(change):  # what the current writer's style words say (an upload's, mostly)
        if ui.writer.value not in pg.styles or not change["new"].strip():
            return
        pg.set_texts(ui.writer.value, change["new"])
        if ui.adapt.value:
            update_all()

    for wdg in (ui.writer, ui.text, ui.k, ui.seed, ui.adapt):
        wdg.observe(update_all, names="value")
    ui.style_texts.observe(on_style_texts, names="value")
    ui.variations.observe(update_render, names="value")
    for wdg in (ui.writer_b, ui.alpha):
        wdg.observe(update_interp, names="value")
    for wdg in (ui.char, ui.layer, ui.head):
        wdg.observe(update_attention, names="value")
    ui.upload.observe(on_upload, names="value")
    ui.update_all, ui.update_render, ui.update_interp, ui.update_attention = (
        update_all,
        update_render,
        update_interp,
        update_attention,
    )
    ui.on_upload = on_upload

    ui.box = W.VBox(
        [
            W.HBox([ui.writer, ui.upload]),
            W.HBox([ui.adapt, ui.style_texts]),
            ui.text,
            W.HBox([ui.k, ui.seed, ui.variations]),
            ui.image,
            W.HTML("<b>between two hands</b>"),
            W.HBox([ui.writer_b, ui.alpha]),
            ui.interp_image,
            W.HTML("<b>where does one character look?</b>"),
            W.HBox([ui.char, ui.layer, ui.head]),
            ui.attn_image,
            ui.status,
        ]
    )
    if pg.names:
        update_all()
    return ui
