"""The style batch contract: shapes, masks, and where the style references come from."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from scriptvit_lib.charset import Charset, UnknownCharacterError
from scriptvit_lib.sampler import StyleWordDataset, collate_style_batch, place_on_canvas
from scriptvit_lib.words import WordSample, WordSet


def _word(writer_no: int, sample_no: int, width: int) -> np.ndarray:
    """A fake word image whose pixels encode (writer, sample) so we can trace it."""
    img = np.full((32, width), 255, np.uint8)
    img[10:20, 2 : width - 2] = writer_no * 10 + sample_no  # < 255: "ink"
    return img


@pytest.fixture()
def words():
    texts = ["a", "the", "Hello,", "1960", "it's"]
    return WordSet(
        WordSample(f"w{w}", texts[s % len(texts)], _word(w, s, 20 + 7 * s))
        for w in range(3)
        for s in range(6)
    )


def _ink_id(style_img: torch.Tensor) -> int:
    """Recover writer*10+sample from a style canvas."""
    ink = style_img[style_img < 0.99]
    return int(round((ink[0].item() + 1) * 127.5))


@pytest.mark.parametrize("k", [1, 5, 15])
def test_batch_shapes_and_padding(words, k):
    ds = StyleWordDataset(words, k=k, style_size=(64, 96), writer_index={"w0": 0, "w1": 1})
    batch = collate_style_batch([ds[i] for i in range(len(ds))])
    B = len(words)
    assert batch.style.shape == (B, k, 1, 64, 96)
    assert batch.style_widths.shape == (B, k)
    wmax = max(s.image.shape[1] for s in words)
    assert batch.target.shape == (B, 1, 32, -(-wmax // 8) * 8), "padded to the longest, a multiple of 8"
    assert batch.text_ids.shape == (B, max(len(s.text) for s in words))
    for b in range(B):
        w, n = batch.target_widths[b], batch.text_lengths[b]
        assert torch.all(batch.target[b, :, :, w:] == 1.0), "target padding must be paper"
        assert torch.all(batch.text_ids[b, n:] == 0) and torch.all(batch.text_ids[b, :n] > 0)
        assert Charset().decode(batch.text_ids[b].tolist()) == batch.texts[b]
    assert set(batch.writer_ids.tolist()) == {0, 1, -1}
    assert batch.style.min() >= -1 and batch.style.max() <= 1


def test_style_refs_same_writer_never_target(words):
    ds = StyleWordDataset(words, k=5, style_size=(32, 128))
    for n in range(len(ds)):
        item = ds[n]
        target_id = words.indices_of(item["writer"]).index(ds.targets[n]) + 10 * int(item["writer"][1:])
        for img in item["style"]:
            ref = _ink_id(img)
            assert ref // 10 == int(item["writer"][1:]), "a style image came from another writer"
            assert ref != target_id, "the target image was used as its own style reference"


def test_seeded_is_deterministic_unseeded_varies(words):
    a = StyleWordDataset(words, k=3, style_size=(32, 64), seed=7)
    b = StyleWordDataset(words, k=3, style_size=(32, 64), seed=7)
    assert torch.equal(a[4]["style"], b[4]["style"])
    r = StyleWordDataset(words, k=3, style_size=(32, 64))
    draws = {tuple(_ink_id(img) for img in r[4]["style"]) for _ in range(20)}
    assert len(draws) > 1


def test_canvas_crops_wide_words_and_rejects_tall_ones():
    canvas, w = place_on_canvas(np.zeros((32, 300), np.uint8), (32, 128))
    assert w == 128 and canvas.shape == (1, 32, 128) and torch.all(canvas == -1)
    canvas, w = place_on_canvas(np.zeros((32, 40), np.uint8), (224, 224))
    assert w == 40 and torch.all(canvas[:, :96] == 1) and torch.all(canvas[:, 96:128, :40] == -1)
    with pytest.raises(ValueError, match="high"):
        place_on_canvas(np.zeros((64, 40), np.uint8), (32, 128))


def test_dataloader_and_bad_input(words):
    dl = DataLoader(
        StyleWordDataset(words, k=2, style_size=(32, 64)), batch_size=4, collate_fn=collate_style_batch
    )
    batch = next(iter(dl))
    assert len(batch) == 4 and batch.to("cpu").style.shape[:2] == (4, 2)
    with pytest.raises(ValueError, match="1..15"):
        StyleWordDataset(words, k=16)
    lonely = WordSet([WordSample("solo", "a", _word(0, 0, 20))])
    with pytest.raises(ValueError, match=">= 2 images"):
        StyleWordDataset(lonely, k=1)
    with pytest.raises(ValueError, match="outside the charset"):
        StyleWordDataset(WordSet([WordSample("w", "naïve", _word(0, 0, 20))] * 2), k=1)


def test_charset_errors_name_the_characters():
    cs = Charset()
    assert len(cs) == 80 and cs.num_classes == 81
    with pytest.raises(UnknownCharacterError) as e:
        cs.encode("café €5")
    assert e.value.unknown == ["é", "€"] and "'é'" in str(e.value)
    with pytest.raises(ValueError, match="Empty"):
        cs.encode("")
    assert cs.ctc_decode([0, 5, 5, 0, 5, 2, 2]) == cs.decode([5, 5, 2])
    assert cs.clean("café", replace="?") == "caf?"
