"""Metrics of styled handwriting generation: FID, KID, HWD, CER / dCER, writer-id, retrieval.

Every function takes word images as uint8 [32, w] arrays (255 = paper) or features computed
from them by the judges (`features.py`). `evaluate.py` computes each metric twice: generated vs
real, and real vs real (two disjoint halves of the same writers' words: the floor).

FID/KID inputs ("protocols"; only FID/KID use them, every other metric reads whole words):

* ``full`` (default): the whole word, padding masked: our feature net only (Inception needs a
  fixed-size image).
* ``hwd``: the word's left h x h square (32 x 32), as the HWD package's FID/KID scores
  (`CropStartSquare` + `ResizeSquare(32)`; Pippi et al., BMVC 2023).
* ``ganwriting``: the word's left 64 columns (32 x 64), resized to 64 x 64 (nearest, i.e. rows
  doubled) for Inception, as GANwriting's `fid_score_crop64x64.py` that HWT/VATr reuse.

Words narrower than the crop are padded with paper (their scripts would pad with black or
stretch the word; our generated words are never narrower than 16 px, real ones can be).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance
from torchmetrics.text import CharErrorRate

from .features import by_width

PROTOCOLS = {
    "full": "whole word, 32 px high, padding masked",
    "hwd": "left 32x32 square (HWD's FID/KID crop)",
    "ganwriting": "left 64 columns, 32x64 (64x64 for Inception; GANwriting/HWT/VATr's FID crop)",
}
DEFAULT_PROTOCOL = "full"


def protocol_crop(image: np.ndarray, protocol: str) -> np.ndarray:
    """uint8 [h, w] -> the part of the word FID/KID look at (see the module docstring)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown FID protocol {protocol!r}; choose from {sorted(PROTOCOLS)}")
    if protocol == "full":
        return image
    h = image.shape[0]
    width = h if protocol == "hwd" else 64
    crop = image[:, :width]
    return np.pad(crop, ((0, 0), (0, width - crop.shape[1])), constant_values=255)


# --- FID and KID, computed by torchmetrics on features we extract ---------------------------
class FeatureTable(nn.Module):
    """The identity, with `num_features`: lets torchmetrics' FID/KID take features we computed
    ourselves (variable-width words cannot go through their `update(images)` in one batch)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        assert features.dim() == 2 and features.shape[1] == self.num_features, (
            f"expected [N, {self.num_features}] features, got {tuple(features.shape)}"
        )
        return features


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frechet distance of two feature sets [N, d], [M, d] (Heusel et al., 2017):

        FID = ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))

    with means mu and (unbiased) covariances S, computed by torchmetrics'
    `FrechetInceptionDistance` with our features as its feature extractor.
    """
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"FID needs >= 2 samples per set, got {len(real)} and {len(fake)}")
    metric = FrechetInceptionDistance(feature=FeatureTable(real.shape[1]))
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kid(
    real: torch.Tensor, fake: torch.Tensor, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Kernel distance (Binkowski et al., 2018), mean and std over subsets, both x 10^3.

    Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over
    `subsets` random subsets of min(subset_size, N, M) samples of each set: torchmetrics'
    `KernelInceptionDistance`, with its random subsets drawn under `seed`.
    """
    n = min(subset_size, len(real), len(fake))
    if n < 2:
        raise ValueError(f"KID needs >= 2 samples per set, got {len(real)} and {len(fake)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features"
        metric = KernelInceptionDistance(feature=FeatureTable(real.shape[1]), subsets=subsets, subset_size=n)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return 1e3 * float(mean), 1e3 * float(std)


class InceptionExtractor:
    """Inception-v3 pool3 features (2048-d), only from a weights file the user gives.

    Uses torchmetrics' `NoTrainInceptionV3` ("inception-v3-compat", the TF-ported FID weights
    `pt_inception-2015-12-05-6726825d.pth`, which needs `torch-fidelity`). Each protocol crop is
    resized to a square of its width (ganwriting 64x64, hwd 32x32), made RGB and uint8; the
    network itself resizes to 299x299.
    """

    def __init__(self, weights_path: str | Path):
        p = Path(weights_path)
        if not p.is_file():
            raise FileNotFoundError(
                f"no Inception weights at {p}: FID with Inception needs the file "
                "pt_inception-2015-12-05-6726825d.pth given by path (nothing is downloaded)"
            )
        try:
            import torch_fidelity  # noqa: F401
        except ImportError:
            raise ModuleNotFoundError(
                "the Inception extractor needs torch-fidelity: pip install torch-fidelity"
            ) from None
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.net = NoTrainInceptionV3(
            name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=str(p)
        )
        self.name = f"Inception-v3 pool3 2048-d ({p.name})"

    @torch.no_grad()
    def __call__(self, crops: Sequence[np.ndarray], batch_size: int = 32) -> torch.Tensor:
        out = []
        for s in range(0, len(crops), batch_size):
            sq = [
                np.asarray(Image.fromarray(c).resize((c.shape[1],) * 2, Image.NEAREST))
                for c in crops[s : s + batch_size]
            ]
            x = (
                torch.from_numpy(np.stack(sq))[:, None].expand(-1, 3, -1, -1).contiguous()
            )  # [B, 3, S, S] uint8
            out.append(self.net(x))
        return torch.cat(out).float()


def fid_features(images: Sequence[np.ndarray], protocol: str, judges=None, inception=None) -> torch.Tensor:
    """The [N, d] features FID/KID compare: protocol crops through Inception or our feature net."""
    crops = [protocol_crop(im, protocol) for im in images]
    if inception is not None:
        if protocol == "full":
            raise ValueError("Inception reads a fixed-size crop: use protocol 'hwd' or 'ganwriting'")
        return inception(crops)
    return judges.embed(crops)


# --- HWD --------------------------------------------------------------------------------------
def hwd_prepare(image: np.ndarray, height: int = 32) -> np.ndarray:
    """HWD's input: pad the word (paper, centred) to at least a square, then resize it to
    `height` px keeping the aspect ratio (nearest), like `PaddingSquareHeight` + `ResizeHeight`."""
    h, w = image.shape
    if w < h:
        left = (h - w) // 2
        image = np.pad(image, ((0, 0), (left, h - w - left)), constant_values=255)
    if h != height:
        new_w = int(height * image.shape[1] / h)
        image = np.asarray(Image.fromarray(image).resize((new_w, height), Image.NEAREST))
    return image


def tokens_by_writer(tokens: Sequence[torch.Tensor], writers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Per-word token lists -> writer -> all that writer's tokens [n, D]."""
    grouped = defaultdict(list)
    for t, w in zip(tokens, writers):
        grouped[w].append(t)
    return {w: torch.cat(ts) for w, ts in grouped.items()}


def hwd(real: dict[str, torch.Tensor], fake: dict[str, torch.Tensor]) -> float:
    """Handwriting Distance (Pippi et al., BMVC 2023; aimagelab/HWD `compute_hwd.py`):

        HWD = 1/|W| sum_w || mean(tokens of fake_w) - mean(tokens of real_w) ||_2

    tokens: one per 32-px column of each word (`hwd_prepare`d), from a conv backbone without
    a pooling head; the mean of writer w is over all its tokens, of all its words.
    """
    return float(np.mean(list(hwd_per_writer(real, fake).values())))


def hwd_per_writer(real: dict[str, torch.Tensor], fake: dict[str, torch.Tensor]) -> dict[str, float]:
    """`hwd`'s terms: writer -> || mean(tokens of fake_w) - mean(tokens of real_w) ||_2."""
    common = sorted(set(real) & set(fake))
    if not common:
        raise ValueError("HWD compares the same writers: the two sets share none")
    return {
        w: float(torch.linalg.vector_norm(real[w].double().mean(0) - fake[w].double().mean(0)))
        for w in common
    }


class VGG16Tokens:
    """HWD's original backbone: torchvision VGG16 `features` (13 convs, 5 max-pools), no head.

    The weights come from a path (e.g. HWD's `VGG16_class_10400.pth`, a plain state dict, read
    with `weights_only=True`, or a .safetensors file); only the `features.*` tensors are used.
    Input as HWD's `ToTensor`: RGB in [0, 1] (paper = 1); output one 512-d token per 32 px.
    """

    def __init__(self, weights_path: str | Path):
        from torchvision.models import vgg16

        p = Path(weights_path)
        if not p.is_file():
            raise FileNotFoundError(
                f"no VGG16 weights at {p} (HWD's VGG16_class_10400.pth; nothing is downloaded)"
            )
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)
        state = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
        self.net = vgg16().features.eval()
        try:
            self.net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ValueError(f"{p} does not hold VGG16 `features` weights: {e}") from e
        self.name = f"VGG16 features ({p.name})"

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray], batch_size: int = 16) -> list[torch.Tensor]:
        out = [None] * len(images)
        for idx in by_width(images, batch_size):
            x = torch.from_numpy(np.stack([images[i] for i in idx]).astype(np.float32) / 255.0)
            f = self.net(x[:, None].expand(-1, 3, -1, -1))  # [B, 512, H/32, W/32]
            f = f.flatten(2).transpose(1, 2)  # [B, T, 512]
            for j, i in enumerate(idx):
                out[i] = f[j]
        return out


# --- legibility, writer identity -----------------------------------------------------------------
def cer(predictions: Sequence[str], texts: Sequence[str]) -> float:
    """Character error rate (torchmetrics `CharErrorRate`): sum of edit distances (substitutions
    + deletions + insertions) over all words / total characters of the true texts.
    dCER = CER(generated) - CER(real words of the same texts and writers)."""
    return float(CharErrorRate()(list(predictions), list(texts)))


def writer_accuracy(logits: torch.Tensor, writers: Sequence[str], classes: Sequence[str]) -> float | None:
    """Share of words whose top writer-classifier logit is their own writer (seen writers);
    None if a word's writer is not one of the classifier's `classes`."""
    index = {w: i for i, w in enumerate(classes)}
    if any(w not in index for w in writers):
        return None
    y = torch.tensor([index[w] for w in writers])
    return float((logits.argmax(1) == y).float().mean())


def writer_means(embedding: torch.Tensor, writers: Sequence[str], names: Sequence[str]) -> torch.Tensor:
    """[len(names), D]: per writer, the mean of its L2-normalised embeddings (float64)."""
    x, lab = F.normalize(embedding.double(), dim=1), np.array(writers)
    return torch.stack([x[torch.from_numpy(lab == w)].mean(0) for w in names])


def retrieval_predictions(
    query: torch.Tensor,
    query_writers: Sequence[str],
    reference: torch.Tensor,
    reference_writers: Sequence[str],
) -> list[str]:
    """The writer each query word is attributed to: the writer whose centroid (mean of the
    L2-normalised reference embeddings of that writer, its held-out real words) has the largest
    cosine similarity, among the writers of `reference`."""
    names = sorted(set(reference_writers))
    if any(w not in names for w in query_writers):
        raise ValueError("every query writer needs reference words")
    centroids = F.normalize(writer_means(reference, reference_writers, names), dim=1)
    sims = F.normalize(query.double(), dim=1) @ centroids.T  # [N, writers]
    return [names[int(i)] for i in sims.argmax(1)]


def retrieval_top1(
    query: torch.Tensor,
    query_writers: Sequence[str],
    reference: torch.Tensor,
    reference_writers: Sequence[str],
) -> float:
    """Style retrieval: share of query words whose nearest writer centroid is their own writer
    (`retrieval_predictions`)."""
    pred = retrieval_predictions(query, query_writers, reference, reference_writers)
    return float(np.mean([p == w for p, w in zip(pred, query_writers)]))
