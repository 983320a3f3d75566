"""Metrics: ~0 (or at their floor) on identical sets, larger when one set is degraded (blur,
noise, wrong writer); FID/KID equal torchmetrics' own computation on the same features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_iam import synthetic_sets
from PIL import Image, ImageFilter
from scipy import linalg
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from scriptvit_lib.data import mini_dataset
from scriptvit_lib.evaluate import compare, halves, measure
from scriptvit_lib.features import JudgeConfig, train_judges
from scriptvit_lib.metrics import (
    InceptionExtractor,
    VGG16Tokens,
    cer,
    fid,
    fid_features,
    hwd,
    hwd_prepare,
    kid,
    protocol_crop,
    retrieval_top1,
    tokens_by_writer,
    writer_accuracy,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    return mini_dataset(ROOT / "data" / "fonts-mini", words_per_writer=40)


@pytest.fixture(scope="module")
def judges(data, tmp_path_factory):
    """A feature net that tells the 8 training fonts apart (~90% after 100 steps)."""
    cfg = JudgeConfig(feat_ch=8, feat_dim=64, rec_ch=4, feat_steps=100, rec_steps=1)
    return train_judges(data["train"], tmp_path_factory.mktemp("judges"), config=cfg, progress=False)


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    """A recognizer that has learned to read six clean synthetic words (a few seconds)."""
    sets = synthetic_sets(writers=("w1", "w2", "w3", "w4"), words=("the", "Move", "of", "and", "it", "house"))
    cfg = JudgeConfig(
        feat_ch=4,
        feat_dim=32,
        rec_ch=8,
        feat_steps=1,
        rec_steps=150,
        lr=5e-3,
        batch_size=12,
        rec_scale=(1.0, 1.0),
    )
    judges = train_judges(sets["train"], tmp_path_factory.mktemp("reader"), config=cfg, progress=False)
    return judges, sets["train"]


def blur(im: np.ndarray, radius: float = 2.0) -> np.ndarray:
    return np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(radius)))


def noise(im: np.ndarray, sigma: float = 60.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(im + rng.normal(0, sigma, im.shape), 0, 255).astype(np.uint8)


def test_judges_read_each_word_on_its_own(judges, data):
    """One token per 32 px inside the word (>= 1), and features that do not depend on the
    other words of the call (words are batched only with words of their own width)."""
    images = [s.image for s in data["val"]][:24]
    together = judges.describe(images)
    assert [len(t) for t in together["tokens"]] == [max(1, im.shape[1] // 32) for im in images]
    alone = judges.describe(images[5:6])
    torch.testing.assert_close(together["embedding"][5:6], alone["embedding"])
    torch.testing.assert_close(together["logits"][5:6], alone["logits"])
    assert judges.read(images)[5:6] == judges.read(images[5:6])


def test_protocol_crops():
    word = np.full((32, 100), 200, np.uint8)
    narrow = np.full((32, 20), 0, np.uint8)
    assert protocol_crop(word, "full") is word
    assert protocol_crop(word, "hwd").shape == (32, 32)
    assert protocol_crop(word, "ganwriting").shape == (32, 64)
    crop = protocol_crop(narrow, "ganwriting")  # narrow words: padded with paper, never stretched
    assert crop.shape == (32, 64) and (crop[:, :20] == 0).all() and (crop[:, 20:] == 255).all()
    with pytest.raises(ValueError, match="protocol"):
        protocol_crop(word, "inception")


class _CropEmbedder(nn.Module):
    """The judges' embedding as a torchmetrics feature extractor for fixed 32x32 crops."""

    def __init__(self, net):
        super().__init__()
        self.net, self.num_features = net, net.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, 1, 32, 32] in [-1, 1]
        return self.net.embed(x, torch.full((x.shape[0],), 32))


def _as_tensor(images):
    return torch.from_numpy(np.stack(images).astype(np.float32) / 127.5 - 1.0)[:, None]


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # dead ReLU channels: rank-deficient covariance
@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_fid_kid_agree_with_torchmetrics_and_scipy(judges, data):
    a, b = halves(data["test"], 30, seed=0)
    real, fake = [s.image for s in a], [blur(s.image) for s in b]
    f_real, f_fake = fid_features(real, "hwd", judges), fid_features(fake, "hwd", judges)

    ref = FrechetInceptionDistance(feature=_CropEmbedder(judges.feature_net))
    ref.update(_as_tensor([protocol_crop(im, "hwd") for im in real]), real=True)
    ref.update(_as_tensor([protocol_crop(im, "hwd") for im in fake]), real=False)
    ours = fid(f_real, f_fake)
    assert ours == pytest.approx(float(ref.compute()), rel=1e-3)

    x, y = f_real.double().numpy(), f_fake.double().numpy()  # the textbook formula
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    textbook = ((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert ours == pytest.approx(textbook, rel=1e-3)

    ref_kid = KernelInceptionDistance(feature=_CropEmbedder(judges.feature_net), subsets=10, subset_size=20)
    ref_kid.update(_as_tensor([protocol_crop(im, "hwd") for im in real]), real=True)
    ref_kid.update(_as_tensor([protocol_crop(im, "hwd") for im in fake]), real=False)
    ref_kid.real_features = [f.double() for f in ref_kid.real_features]  # we compute in float64
    ref_kid.fake_features = [f.double() for f in ref_kid.fake_features]
    torch.manual_seed(7)
    mean, std = ref_kid.compute()
    ours_kid = kid(f_real, f_fake, subsets=10, subset_size=20, seed=7)
    assert ours_kid == pytest.approx((1e3 * float(mean), 1e3 * float(std)), rel=1e-3)

    # one subset of all samples = the unbiased MMD^2 itself, written out
    n, d = len(x), x.shape[1]
    k = lambda p, q: (p @ q.T / d + 1) ** 3
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    mmd = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()
    assert kid(f_real, f_fake, subsets=3, subset_size=n)[0] == pytest.approx(1e3 * mmd, rel=1e-6)


@pytest.mark.parametrize("protocol", ["full", "hwd", "ganwriting"])
def test_fid_kid_zero_on_identical_sets_and_grow_when_degraded(judges, data, protocol):
    a, b = halves(data["test"], 40, seed=1)
    feats = lambda images: fid_features(images, protocol, judges)
    f_a = feats([s.image for s in a])
    assert abs(fid(f_a, f_a)) < 1e-3 * max(1.0, fid(f_a, feats([s.image for s in b])))
    floor_fid = fid(f_a, feats([s.image for s in b]))  # real vs real, other words
    floor_kid = kid(f_a, feats([s.image for s in b]))[0]
    for degrade in (blur, noise):
        f_bad = feats([degrade(s.image) for s in b])
        assert fid(f_a, f_bad) > 1.5 * floor_fid, degrade.__name__
        assert kid(f_a, f_bad)[0] > floor_kid + abs(floor_kid), degrade.__name__


def test_hwd_zero_on_itself_and_larger_for_another_writer(judges, data):
    words = data["train"]
    w1, w2 = words.writers[:2]
    one, other = words.of_writer(w1), words.of_writer(w2)
    toks = lambda ws: judges.describe([hwd_prepare(s.image) for s in ws])["tokens"]
    half = len(one) // 2
    t_a, t_b, t_other = toks(one[:half]), toks(one[half:]), toks(other[:half])
    a = tokens_by_writer(t_a, [w1] * len(t_a))
    assert hwd(a, a) == 0.0
    same = hwd(a, tokens_by_writer(t_b, [w1] * len(t_b)))
    wrong = hwd(a, tokens_by_writer(t_other, [w1] * len(t_other)))  # another hand, same label
    assert 0 < same < wrong
    blurred = toks([type(s)(s.writer, s.text, blur(s.image)) for s in one[half:]])
    assert hwd(a, tokens_by_writer(blurred, [w1] * len(blurred))) > same


def test_hwd_prepare_pads_to_square_and_resizes_to_32():
    assert hwd_prepare(np.zeros((32, 10), np.uint8)).shape == (32, 32)
    assert hwd_prepare(np.zeros((64, 200), np.uint8)).shape == (32, 100)
    padded = hwd_prepare(np.zeros((32, 10), np.uint8))
    assert (padded[:, :11] == 255).all() and (padded[:, 11:21] == 0).all()  # centred, paper around


def test_cer_and_dcer_sign(reader):
    judges, words = reader
    texts, writers = [s.text for s in words], [s.writer for s in words]
    assert cer(texts, texts) == 0.0
    assert cer(["th"], ["the"]) == pytest.approx(1 / 3)

    def measured(images):
        return {**measure(images, judges, "full"), "texts": texts, "writers": writers}

    real = measured([s.image for s in words])
    assert cer(real["read"], texts) < 0.7, "the fixture recognizer should read its clean words"
    assert compare(real, measured([s.image for s in words]), judges)["dcer"] == 0.0  # generated = real
    for degrade in (lambda im: blur(im, 3.0), lambda im: noise(blur(im, 2.0), 90.0)):
        assert compare(real, measured([degrade(s.image) for s in words]), judges)["dcer"] > 0.1


def test_writer_accuracy_and_retrieval(judges, data):
    val = data["val"]
    d = judges.describe([s.image for s in val])
    writers = [s.writer for s in val]
    acc = writer_accuracy(d["logits"], writers, judges.writers)
    wrong = [judges.writers[(judges.writers.index(w) + 1) % len(judges.writers)] for w in writers]
    assert acc > 0.5 and writer_accuracy(d["logits"], wrong, judges.writers) < 0.2
    assert writer_accuracy(d["logits"], ["nobody"] * len(val), judges.writers) is None

    a, b = halves(data["test"], 40, seed=0)  # unseen writers: retrieval among them
    ea, eb = judges.embed([s.image for s in a]), judges.embed([s.image for s in b])
    wa, wb = [s.writer for s in a], [s.writer for s in b]
    # both halves of real words find their own writer (the held-out half is the floor that
    # generated words are compared with); which of the two is higher depends on the run
    assert retrieval_top1(ea, wa, ea, wa) > 0.75 and retrieval_top1(eb, wb, ea, wa) > 0.75
    swapped = [wa[0] if w != wa[0] else wa[-1] for w in wb]  # every word labelled with the other writer
    assert retrieval_top1(eb, swapped, ea, wa) < 0.25


def test_vgg16_backbone_hook(tmp_path):
    from safetensors.torch import save_file
    from torchvision.models import vgg16

    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in vgg16().features.state_dict().items()}
    save_file(state, str(tmp_path / "vgg.safetensors"))
    net = VGG16Tokens(tmp_path / "vgg.safetensors")
    images = [hwd_prepare(np.full((32, w), 255, np.uint8)) for w in (20, 64, 100)]
    toks = net(images)
    assert [t.shape for t in toks] == [(1, 512), (2, 512), (3, 512)]  # floor(w / 32), min 1
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        VGG16Tokens(tmp_path / "missing.pth")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="VGG16"):
        VGG16Tokens(tmp_path / "bad.safetensors")


def test_inception_needs_a_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        InceptionExtractor(tmp_path / "pt_inception.pth")
