"""Style fidelity: does a generated word look like *its* writer wrote it? Unseen writers only.

For every unseen writer w (test families, minus any the model was trained on), its real words
are cut in two halves (`evaluate.halves`): A_w are the words to imitate, B_w the pool the k
style words come from (and, as real words, the real-vs-real floor). Candidates, each written for
the texts of A and scored against A:

    model      the model, styled by k words of w from B_w
    mean       the same model with one *mean style*: the style memories of every unseen writer
               concatenated into one memory (the decoder attends over all of them, the width
               head pools all of them) - what the model writes when the style input says nothing
    nearest    the same model styled by k words of the *training* writer whose real words sit
               nearest to w's (judges' embedding centroids) - "the closest hand it already knows"
    floor      B: real words of w (other texts) - what a perfect imitation scores

With `adapt` (test-time adaptation, `adaptation.py`, a library option), `model` is the generator
adapted to each writer's k style words (one draw per writer by default, `adapt_draws` for more;
from B_w, texts known) and a row `one_pass` adds the unadapted model on exactly those style words,
so the two differ only by the adaptation. The baselines stay one-pass.

Scores (targets of issue 8):
1. attribution: share of words nearest (centroid) to their own writer among all unseen writers,
   by the judges' embedding (learned on training writers only) and by `style_statistics`, a
   hand-crafted judge nobody trains (slant/orientation histogram, stroke widths, ink density,
   darkness, px per character, ink height); target >= 0.8 x floor.
2. distribution: FID and HWD (judges' features, protocol `full`); target <= 2 x floor.
3. sharpness: `sharpness` of generated / of real words of the same writers; target within 20 %.
4. legibility: dCER (judges' recognizer, never a training loss); target <= 0.05.
5. the style input matters: the model beats `mean` and `nearest` on 1-3, and the same text
   written for two writers differs more than two renders for one writer (judges' embedding).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F

from .adaptation import AdaptConfig
from .adaptation import adapt as adapt_to
from .evaluate import compare, generate, halves, measure
from .features import Judges
from .generator import ScriptViT
from .metrics import cer, hwd_per_writer, retrieval_predictions, tokens_by_writer, writer_means
from .monitor import to_uint8
from .sampler import StyleWordDataset, collate_style_batch, place_on_canvas
from .style_encoder import StyleMemory
from .words import WordSample, WordSet

ORIENTATION_BINS = 8


def _ink(image: np.ndarray) -> np.ndarray:
    return 1.0 - image.astype(np.float64) / 255.0


def _ink_box(ink: np.ndarray, level: float = 0.5) -> tuple[slice, slice] | None:
    rows, cols = np.nonzero(ink > level)
    if len(rows) == 0:
        return None
    return slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)


def sharpness(image: np.ndarray) -> float:
    """Mean |dx| + |dy| of the ink (0 paper .. 1 ink) inside the word's ink bounding box.

    Crisp strokes have steep edges; blur and grey smears flatten them (a share of mid-grey
    pixels alone does not separate them: thin crisp strokes are anti-aliased too)."""
    ink = _ink(image)
    box = _ink_box(ink)
    if box is None:
        return 0.0
    win = ink[box]
    return float(np.abs(np.diff(win, axis=1)).mean() if win.shape[1] > 1 else 0.0) + float(
        np.abs(np.diff(win, axis=0)).mean() if win.shape[0] > 1 else 0.0
    )


def _runs(mask: np.ndarray) -> float:
    """Mean length of ink runs along rows of `mask` (0 when there is no ink)."""
    padded = np.pad(mask.astype(np.int8), ((0, 0), (1, 1)))
    d = np.diff(padded, axis=1)
    starts, ends = np.nonzero(d == 1), np.nonzero(d == -1)
    lengths = ends[1] - starts[1]
    return float(lengths.mean()) if len(lengths) else 0.0


def style_statistics(image: np.ndarray, text: str) -> np.ndarray:
    """A hand-crafted description of a word's hand (nobody trains it), 15 numbers:

    8-bin histogram of gradient orientations weighted by magnitude (slant, roundness), mean
    horizontal and vertical stroke run length (stroke width), ink density in the ink box,
    darkness of ink pixels, px per character (ink box width / text length), ink height, and
    the vertical centre of mass relative to the box."""
    ink = _ink(image)
    box = _ink_box(ink)
    if box is None:
        return np.zeros(ORIENTATION_BINS + 7)
    win = ink[box]
    gy, gx = ndimage.sobel(win, axis=0), ndimage.sobel(win, axis=1)
    mag, ang = np.hypot(gx, gy), np.mod(np.arctan2(gy, gx), np.pi)  # orientation, sign-free
    hist, _ = np.histogram(ang, bins=ORIENTATION_BINS, range=(0, np.pi), weights=mag)
    hist = hist / max(hist.sum(), 1e-9)
    mask = win > 0.5
    rows = np.arange(win.shape[0])[:, None]
    return np.concatenate(
        [
            hist,
            [
                _runs(mask),
                _runs(mask.T),
                float(mask.mean()),
                float(win[mask].mean()) if mask.any() else 0.0,
                win.shape[1] / max(len(text), 1),
                float(win.shape[0]),
                float((rows * win).sum() / max(win.sum(), 1e-9)) / max(win.shape[0] - 1, 1),
            ],
        ]
    )


def nearest_centroid_top1(
    query: np.ndarray, query_writers: Sequence[str], reference: np.ndarray, reference_writers: Sequence[str]
) -> float:
    """Share of query rows whose nearest (Euclidean) writer centroid of `reference` is their own
    writer; features are z-scored with the reference's mean and std first."""
    mu, sd = reference.mean(0), reference.std(0) + 1e-9
    q, r = (query - mu) / sd, (reference - mu) / sd
    names = sorted(set(reference_writers))
    rw = np.array(reference_writers)
    cent = np.stack([r[rw == w].mean(0) for w in names])
    d = ((q[:, None, :] - cent[None]) ** 2).sum(-1)
    y = np.array([names.index(w) for w in query_writers])
    return float((d.argmin(1) == y).mean())


def _encoded_draw(model: ScriptViT, pool: WordSet, writer: str, k: int, seed: int):
    """k style words of `writer` drawn from `pool` (the same for the same seed) -> (the drawn
    WordSamples, their collated batch, their memory); eval mode, so one draw is one memory."""
    model.eval()
    words = pool.subset(writers=[writer])
    ds = StyleWordDataset(words, k=k, style_size=model.config.style_size, style_pool=words, seed=seed)
    item = ds[0]
    b = collate_style_batch([item])
    with torch.no_grad():
        memory = model.encode_style(b.style, b.style_widths)
    return [words[j] for j in item["style_index"]], b, memory


def style_memory(model: ScriptViT, pool: WordSet, writer: str, k: int, seed: int, *, images: bool = False):
    """The memory of k style words of `writer` drawn from `pool` (the same for the same seed);
    with `images`, also those k words as uint8 images."""
    _, b, memory = _encoded_draw(model, pool, writer, k, seed)
    if not images:
        return memory
    return memory, to_uint8(b.style[0], b.style_widths[0])


def _adapted(model: ScriptViT, chosen: Sequence[WordSample], memory: StyleMemory, adapt: AdaptConfig | None):
    """(generator, memory) to write with: the one-pass pair, or the pair adapted to `chosen`."""
    if adapt is None or adapt.steps == 0:
        return model, memory
    g, adapted, _ = adapt_to(model, [s.image for s in chosen], [s.text for s in chosen], adapt, memory=memory)
    return g, adapted


def writer_generator(
    model: ScriptViT, pool: WordSet, writer: str, k: int, seed: int, adapt: AdaptConfig | None = None
) -> tuple[ScriptViT, StyleMemory, StyleMemory]:
    """The generator and memory to write for `writer` from k of its words in `pool` (the draw of
    `style_memory`): (model, memory, memory) one-pass; with `adapt`, (adapted generator, adapted
    memory, the one-pass memory)."""
    chosen, _, memory = _encoded_draw(model, pool, writer, k, seed)
    return (*_adapted(model, chosen, memory, adapt), memory)


def mean_memory(memories: Sequence[StyleMemory]) -> StyleMemory:
    """Memories of many writers -> one memory holding all their (unpadded) tokens."""
    tokens = torch.cat([m.tokens[0][~m.pad_mask[0]] for m in memories])[None]
    return StyleMemory(tokens, torch.zeros(1, tokens.shape[1], dtype=torch.bool), None)


@torch.no_grad()
def write_texts(
    model: ScriptViT, memory: StyleMemory, texts: Sequence[str], batch_size: int = 64
) -> list[np.ndarray]:
    """Every text written from one memory -> uint8 word images."""
    from .attention import _ids
    from .charset import Charset

    cs, out = Charset(), []
    model.eval()
    for s in range(0, len(texts), batch_size):
        ids, lengths = _ids(texts[s : s + batch_size], cs)
        images, widths = model.write(memory, ids, lengths)
        out += to_uint8(images, widths)
    return out


def _relabel(words: WordSet, mapping: dict[str, str]) -> WordSet:
    return WordSet([WordSample(writer=mapping[s.writer], text=s.text, image=s.image) for s in words])


def distinctness(
    model: ScriptViT,
    judges: Judges,
    pool: WordSet,
    writers: Sequence[str],
    texts: Sequence[str],
    k: int,
    seed: int,
    adapt: AdaptConfig | None = None,
) -> dict:
    """Same texts for every writer, with two draws of style words each: mean judges-embedding
    distance between writers (same draw) vs between the two draws of one writer."""
    emb = {}
    for w in writers:
        for draw in (0, 1):
            g, memory, _ = writer_generator(model, pool, w, k, seed + draw, adapt)
            images = write_texts(g, memory, texts)
            emb[(w, draw)] = F.normalize(judges.embed(images).double(), dim=1)
    within = np.mean([float((emb[(w, 0)] - emb[(w, 1)]).norm(dim=1).mean()) for w in writers])
    between = np.mean(
        [
            float((emb[(a, 0)] - emb[(b, 0)]).norm(dim=1).mean())
            for i, a in enumerate(writers)
            for b in writers[i + 1 :]
        ]
    )
    return {
        "between_writers": float(between),
        "within_writer": float(within),
        "ratio": float(between / max(within, 1e-12)),
    }


def _scores(
    ref: dict,
    cand: dict,
    judges: Judges,
    seed: int,
    stats_ref: np.ndarray,
    stats_cand: np.ndarray,
    sharp_ref: float,
) -> dict:
    m = compare(ref, cand, judges, seed=seed)
    return {
        "attribution_learned": m["retrieval_top1"],
        "attribution_stats": nearest_centroid_top1(stats_cand, cand["writers"], stats_ref, ref["writers"]),
        "fid": m["fid"],
        "hwd": m["hwd"],
        "sharpness_ratio": float(np.mean([sharpness(im) for im in cand["images"]]) / max(sharp_ref, 1e-12)),
        "cer": m["cer"],
        "dcer": m["dcer"],
    }


def per_writer_attribution(ref: dict, cand: dict) -> dict[str, dict]:
    """For each writer of `cand`: the share of its words the judges' embedding attributes to it
    (`top1`; their mean over writers is `attribution_learned` when every writer has as many
    words) and the writer its misattributed words go to most often (`confused_with`, with the
    share of all its words that went there). `ref`/`cand`: `measure` outputs plus "writers"."""
    pred = retrieval_predictions(cand["embedding"], cand["writers"], ref["embedding"], ref["writers"])
    out = {}
    for w in sorted(set(cand["writers"])):
        got = [p for p, q in zip(pred, cand["writers"]) if q == w]
        wrong = [p for p in got if p != w]
        top = max(set(wrong), key=lambda x: (wrong.count(x), x)) if wrong else None
        out[w] = {
            "top1": float(np.mean([p == w for p in got])),
            "confused_with": top,
            "confused_share": wrong.count(top) / len(got) if wrong else 0.0,
        }
    return out


def centroid_geometry(ref: dict, cand: dict) -> dict:
    """Where a candidate set puts each writer, relative to where the real words put it, in the
    judges' embedding: writer centroids (mean of L2-normalised word embeddings), each taken as
    its deviation from the mean over writers. `direction`: mean cosine between a writer's
    candidate and real deviation (1 = every writer moved the right way); `magnitude`: mean norm
    ratio (< 1: writers pulled towards a common hand); `shift`: distance between the two means
    over the mean real deviation (a difference every writer shares)."""
    ws = sorted(set(cand["writers"]))
    c, r = (writer_means(d["embedding"], d["writers"], ws) for d in (cand, ref))
    dc, dr = c - c.mean(0), r - r.mean(0)
    return {
        "direction": float(F.cosine_similarity(dc, dr, dim=1).mean()),
        "magnitude": float((dc.norm(dim=1) / dr.norm(dim=1).clamp_min(1e-12)).mean()),
        "shift": float((c.mean(0) - r.mean(0)).norm() / dr.norm(dim=1).mean().clamp_min(1e-12)),
    }


def loo_top1(features: torch.Tensor, labels: Sequence[str]) -> float:
    """Leave-one-out nearest-centroid accuracy: each row is attributed to the writer whose
    centroid (of the other rows; its own writer's without it) is most cosine-similar, after
    centring all rows on their mean."""
    x = features.double()
    x = F.normalize(x - x.mean(0), dim=1)
    names = sorted(set(labels))
    y = torch.tensor([names.index(w) for w in labels])
    onehot = F.one_hot(y, len(names)).double()  # [N, W]
    sums, counts = onehot.T @ x, onehot.sum(0)  # [W, D], [W]
    if counts.min() < 2:
        raise ValueError("leave-one-out needs >= 2 rows per writer")
    cents = sums.unsqueeze(0).repeat(len(x), 1, 1)  # [N, W, D]
    cents[torch.arange(len(x)), y] -= x
    cnt = counts.unsqueeze(0).repeat(len(x), 1)
    cnt[torch.arange(len(x)), y] -= 1
    sims = torch.einsum("nd,nwd->nw", x, F.normalize(cents / cnt.unsqueeze(-1), dim=2))
    return float((sims.argmax(1) == y).double().mean())


def style_separability(
    model: ScriptViT,
    pool: WordSet,
    judges: Judges,
    *,
    k: int = 5,
    draws: int = 8,
    seed: int = 0,
    texts: Sequence[str] = (),
) -> dict:
    """How well k style words identify their writer, before any word is generated: each writer's
    words in `pool` are split into up to `draws` disjoint sets of k; each set is described by
    (a) the style memory the model's encoder makes of it (mean of its tokens; and mean and
    standard deviation), (b) the judges' embedding (mean over its k words). Leave-one-out
    nearest-centroid accuracy among the pool's writers (`loo_top1`) of each: if the memory
    separates the writers as well as the judges do, what the generator loses is lost after the
    encoder (fusion, synthesis); if not, the encoder is the bottleneck."""
    model.eval()

    def set_embedding(images: list[np.ndarray]) -> torch.Tensor:  # a set of words -> one judges' vector
        return F.normalize(judges.embed(images).double(), dim=1).mean(0)

    rng = np.random.default_rng(seed)
    mem_mean, mem_std, judge, labels = [], [], [], []
    fused, raw_emb, final_emb = [], [], []
    if texts:
        from .attention import _ids
        from .charset import Charset

        ids, lengths = _ids(list(texts), Charset())
        char_mask = (
            (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1).float()
        )  # [T, L, 1]
        hidden = {}
        hook = model.synthesis.register_forward_hook(lambda mod, args, out: hidden.update(h=args[0], raw=out))
    n_draws = None
    try:
        for w in sorted(pool.writers):
            idx = rng.permutation(pool.indices_of(w))
            n = min(draws, len(idx) // k)
            if n < 2:
                raise ValueError(f"writer {w!r} has {len(idx)} words: separability needs >= {2 * k}")
            n_draws = n if n_draws is None else min(n_draws, n)
            sets = [idx[d * k : (d + 1) * k] for d in range(n)]
            placed = [
                [place_on_canvas(pool[int(j)].image, model.config.style_size) for j in st] for st in sets
            ]
            style = torch.stack([torch.stack([c for c, _ in p]) for p in placed])  # [n, k, 1, H, W]
            widths = torch.tensor([[wd for _, wd in p] for p in placed])
            with torch.no_grad():
                memory = model.encode_style(style, widths)
            keep = (~memory.pad_mask).unsqueeze(-1).to(memory.tokens.dtype)
            mean = memory.pooled()
            var = ((memory.tokens - mean.unsqueeze(1)) ** 2 * keep).sum(1) / keep.sum(1).clamp_min(1.0)
            mem_mean.append(mean)
            mem_std.append(torch.cat([mean, var.sqrt()], dim=1))
            judge += [set_embedding([pool[int(j)].image for j in st]) for st in sets]
            labels += [w] * n
            for d in range(n if texts else 0):
                mem_d = StyleMemory(
                    memory.tokens[d : d + 1],
                    memory.pad_mask[d : d + 1],
                    None if memory.positions is None else memory.positions[d : d + 1],
                )
                with torch.no_grad():
                    images, out_widths = model.write(mem_d, ids, lengths)
                h, raw = hidden["h"], hidden["raw"]  # this `write`'s decoder output and synthesised words
                fused.append(((h * char_mask).sum(1) / char_mask.sum(1)).mean(0))
                raw_emb.append(set_embedding(to_uint8(raw, model.output_widths(lengths))))
                final_emb.append(set_embedding(to_uint8(images, out_widths)))
    finally:
        if texts:
            hook.remove()
    chain = {}
    if texts:
        chain = {
            "fusion_output": loo_top1(torch.stack(fused), labels),
            "generated_raw_width": loo_top1(torch.stack(raw_emb), labels),
            "generated": loo_top1(torch.stack(final_emb), labels),
            "texts": len(texts),
        }
    return {
        "memory_mean": loo_top1(torch.cat(mem_mean), labels),
        "memory_mean_std": loo_top1(torch.cat(mem_std), labels),
        **chain,
        "judges": loo_top1(torch.stack(judge), labels),
        "chance": 1 / len(pool.writers),
        "writers": len(pool.writers),
        "k": k,
        "sets_per_writer": n_draws,
    }


def style_fidelity(
    model: ScriptViT,
    data: dict[str, WordSet],
    judges: Judges,
    *,
    k: int = 5,
    n_per_writer: int = 40,
    seed: int = 0,
    exclude_writers: Sequence[str] = (),
    train_words_per_writer: int = 30,
    distinct_texts: int = 24,
    progress: bool = True,
    adapt: AdaptConfig | None = None,
    adapt_draws: int = 1,
) -> tuple[dict, dict]:
    """Score the model and its two baselines on unseen writers (see the module docstring).

    With `adapt`, each writer's targets are written from `adapt_draws` draws of k style words
    (one adaptation each; draw d writes every `adapt_draws`-th target): one draw is the use case
    (a user's k words), many approach the one-pass protocol, which draws anew for every word.

    Returns (the JSON-able result, extras: generated images per candidate in the order of the
    targets `a`, and the halves `a`, `b` for figures)."""
    model.eval()
    excluded = set(exclude_writers)
    test = data["test"].subset(writers=set(data["test"].writers) - excluded)
    a, b = halves(test, n_per_writer, seed)
    writers = sorted(a.writers)
    if len(writers) < 2:
        raise ValueError("style fidelity needs >= 2 unseen writers")
    texts = [s.text for s in a]
    images = {"floor": [s.image for s in b]}
    if adapt is not None and adapt.steps > 0:
        from tqdm.auto import tqdm

        if adapt_draws < 1:
            raise ValueError(f"adapt_draws must be >= 1, got {adapt_draws}")
        images["model"], images["one_pass"] = [None] * len(a), [None] * len(a)
        desc = f"adapting ({adapt.what}, {adapt.steps} steps, {adapt_draws} draw(s) per writer)"
        for w in tqdm(writers, desc=desc, disable=not progress):
            idx = [int(i) for i in a.indices_of(w)]
            for d in range(min(adapt_draws, len(idx))):  # draw d writes every adapt_draws-th target
                g, memory, one_pass = writer_generator(model, b, w, k, seed + d, adapt)
                mine = idx[d::adapt_draws]
                texts_d = [a[i].text for i in mine]
                for i, x, y in zip(
                    mine, write_texts(g, memory, texts_d), write_texts(model, one_pass, texts_d)
                ):
                    images["model"][i], images["one_pass"][i] = x, y
    else:
        adapt = None
        images["model"] = generate(model, a, b, k=k, seed=seed, progress=progress, desc="model")
    mems = [style_memory(model, b, w, k, seed) for w in writers]
    mean_images = write_texts(model, mean_memory(mems), texts)
    images["mean"] = mean_images
    # nearest training writer by the judges' embedding (B words of w vs training words)
    rng = np.random.default_rng(seed)
    train = data["train"]
    t_names = sorted(train.writers)
    cents = []
    for tw in t_names:
        idx = train.indices_of(tw)
        pick = rng.choice(idx, size=min(train_words_per_writer, len(idx)), replace=False)
        e = F.normalize(judges.embed([train[int(i)].image for i in pick]).double(), dim=1)
        cents.append(F.normalize(e.mean(0), dim=0))
    cents = torch.stack(cents)
    b_emb = F.normalize(judges.embed([s.image for s in b]).double(), dim=1)
    bw = np.array([s.writer for s in b])
    nearest, novelty = {}, {}
    for w in writers:
        c = F.normalize(b_emb[torch.from_numpy(bw == w)].mean(0), dim=0)
        sims = cents @ c
        nearest[w] = t_names[int(sims.argmax())]
        novelty[w] = float(1 - sims.max())  # cosine distance to the closest training writer
    images["nearest"] = generate(
        model, _relabel(a, nearest), train, k=k, seed=seed, progress=progress, desc="nearest"
    )

    measured = {}
    for name, ims in [("real", [s.image for s in a])] + list(images.items()):
        ws = b if name == "floor" else a
        measured[name] = measure(ims, judges, "full")
        measured[name].update(writers=[s.writer for s in ws], texts=[s.text for s in ws], images=ims)
        measured[name]["stats"] = np.stack(
            [style_statistics(im, t) for im, t in zip(ims, measured[name]["texts"])]
        )
    ref = measured["real"]
    sharp_ref = float(np.mean([sharpness(im) for im in ref["images"]]))
    rows = {
        name: _scores(ref, measured[name], judges, seed, ref["stats"], measured[name]["stats"], sharp_ref)
        for name in ("model", "mean", "nearest", "floor") + (("one_pass",) if "one_pass" in images else ())
    }
    per = {name: per_writer_attribution(ref, measured[name]) for name in ("model", "nearest", "floor")}
    ref_tokens = tokens_by_writer(ref["tokens"], ref["writers"])
    hwd_w = {
        name: hwd_per_writer(
            ref_tokens, tokens_by_writer(measured[name]["tokens"], measured[name]["writers"])
        )
        for name in ("model", "floor")
    }
    per_writer = {
        w: {
            "model": per["model"][w]["top1"],
            "floor": per["floor"][w]["top1"],
            "nearest_baseline": per["nearest"][w]["top1"],
            "model_confused_with": per["model"][w]["confused_with"],
            "model_confused_share": per["model"][w]["confused_share"],
            "nearest_training_writer": nearest[w],
            "novelty": novelty[w],
            "hwd_model": hwd_w["model"][w],
            "hwd_floor": hwd_w["floor"][w],
        }
        for w in writers
    }
    dist_writers = writers[: min(len(writers), 8)]
    common = sorted({s.text for s in a if len(s.text) >= 3})[:distinct_texts] or texts[:distinct_texts]
    rows["model"]["distinctness"] = distinctness(model, judges, b, dist_writers, common, k, seed, adapt)
    floor, mdl = rows["floor"], rows["model"]
    beats = {
        base: bool(
            mdl["attribution_learned"] > rows[base]["attribution_learned"]
            and mdl["attribution_stats"] > rows[base]["attribution_stats"]
            and mdl["fid"] < rows[base]["fid"]
            and mdl["hwd"] < rows[base]["hwd"]
            and abs(mdl["sharpness_ratio"] - 1) <= abs(rows[base]["sharpness_ratio"] - 1)
        )
        for base in ("mean", "nearest")
    }
    targets = {
        "1_attribution": {
            "value": mdl["attribution_learned"],
            "floor": floor["attribution_learned"],
            "goal": ">= 0.8 x floor",
            "ratio": mdl["attribution_learned"] / max(floor["attribution_learned"], 1e-12),
            "pass": mdl["attribution_learned"] >= 0.8 * floor["attribution_learned"],
            "stats_judge": {"value": mdl["attribution_stats"], "floor": floor["attribution_stats"]},
        },
        "2_distribution": {
            "fid": mdl["fid"],
            "fid_floor": floor["fid"],
            "hwd": mdl["hwd"],
            "hwd_floor": floor["hwd"],
            "goal": "<= 2 x floor",
            "pass": mdl["fid"] <= 2 * floor["fid"] and mdl["hwd"] <= 2 * floor["hwd"],
        },
        "3_sharpness": {
            "ratio": mdl["sharpness_ratio"],
            "goal": "within 20 % of real",
            "pass": abs(mdl["sharpness_ratio"] - 1) <= 0.2,
        },
        "4_legibility": {
            "dcer": mdl["dcer"],
            "goal": "<= 0.05",
            "pass": mdl["dcer"] <= 0.05,
            "more_legible_than_real": mdl["dcer"] < 0,
        },
        "5_style_matters": {
            "beats_mean": beats["mean"],
            "beats_nearest": beats["nearest"],
            "distinctness_ratio": mdl["distinctness"]["ratio"],
            "pass": beats["mean"] and beats["nearest"] and mdl["distinctness"]["ratio"] > 1,
        },
    }
    return {
        "writers": len(writers),
        "words_per_set": len(a),
        "k": k,
        "seed": seed,
        "excluded_writers": sorted(excluded & set(data["test"].writers)),
        "adapt": None
        if adapt is None
        else {
            "steps": adapt.steps,
            "lr": adapt.lr,
            "what": adapt.what,
            "w_ctc": adapt.w_ctc,
            "w_l1": adapt.w_l1,
            "w_feat": adapt.w_feat,
            "w_hand": adapt.w_hand,
            "w_feat_d": adapt.w_feat_d,
            "draws": adapt_draws,
        },
        "cer_real": cer(ref["read"], ref["texts"]),
        "nearest_training_writer": nearest,
        "per_writer": per_writer,
        "geometry": {name: centroid_geometry(ref, measured[name]) for name in ("model", "nearest", "floor")},
        "separability": style_separability(model, test, judges, k=k, seed=seed)
        if all(len(test.indices_of(w)) >= 2 * k for w in writers)
        else None,  # (too few words per writer for two disjoint sets of k)
        "rows": rows,
        "targets": targets,
    }, {"images": images, "a": a, "b": b}


def fidelity_figure(
    model: ScriptViT,
    a: WordSet,
    b: WordSet,
    *,
    k: int = 5,
    seed: int = 0,
    max_writers: int = 6,
    words: int = 4,
    path=None,
    title: str = "",
    adapt: AdaptConfig | None = None,
):
    """Rows = unseen writers: its k style words | the model's words | the same words as the
    writer really wrote them; last row: the mean-style baseline writing the first row's words.
    With `adapt`: style words | one-pass | adapted | real."""
    import matplotlib.pyplot as plt

    from .monitor import _row

    writers = sorted(a.writers)[:max_writers]
    bar = np.full((32, 3), 0, np.uint8)
    rows, labels = [], []
    mems = {}  # the drawn writers' memories, reused for the mean-style row
    first_texts = None
    for w in writers:
        chosen, batch, memory = _encoded_draw(model, b, w, k, seed)
        style_images = to_uint8(batch.style[0], batch.style_widths[0])
        mems[w] = memory
        targets = a.of_writer(w)[:words]
        texts = [s.text for s in targets]
        first_texts = first_texts or texts
        fake = write_texts(model, memory, texts)
        if adapt is not None and adapt.steps > 0:
            fake = fake + [bar] + write_texts(*_adapted(model, chosen, memory, adapt), texts)
        rows.append(_row(list(style_images) + [bar] + fake + [bar] + [s.image for s in targets], gap=6))
        labels.append(w)
    every = [mems[w] if w in mems else style_memory(model, b, w, k, seed) for w in sorted(a.writers)]
    mean = write_texts(model, mean_memory(every), first_texts)
    rows.append(_row([np.full((32, 40), 255, np.uint8), bar] + mean, gap=6))
    labels.append("mean style")
    width = max(r.shape[1] for r in rows)
    fig, axes = plt.subplots(len(rows), 1, figsize=(min(width / 70, 18), 0.62 * len(rows) + 0.6))
    for ax, r, lab in zip(axes, rows, labels):
        ax.imshow(
            np.pad(r, ((0, 0), (0, width - r.shape[1])), constant_values=255), cmap="gray", vmin=0, vmax=255
        )
        ax.set_ylabel(lab, rotation=0, ha="right", va="center", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_title(
        title or f"unseen writers: {k} style words | generated | real (same words); last row: mean style",
        fontsize=8,
    )
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def per_writer_correlations(per_writer: dict[str, dict]) -> dict[str, float]:
    """Spearman rank correlations over writers of the model's attribution with how hard the
    writer is to tell apart from real words (`floor`) and with how far the writer is from every
    training writer (`novelty`): which hands does the model fail, and why?"""
    from scipy.stats import spearmanr

    ws = sorted(per_writer)
    model = [per_writer[w]["model"] for w in ws]
    out = {}
    for key in ("floor", "novelty", "nearest_baseline"):
        other = [per_writer[w][key] for w in ws]
        rho = spearmanr(model, other).statistic if len(ws) > 2 and len(set(other)) > 1 else float("nan")
        out[key] = float(rho)
    return out


def per_writer_figure(result: dict, path=None, title: str | None = None):
    """Left: each unseen writer's attribution (model bar; real-vs-real floor and the nearest-
    training-writer baseline as markers), sorted. Right: the model's attribution against the
    writer's novelty (cosine distance of its real words to the closest training writer)."""
    import matplotlib.pyplot as plt

    per = result["per_writer"]
    ws = sorted(per, key=lambda w: (per[w]["model"], w))
    y = np.arange(len(ws))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 0.2 * len(ws) + 1.6), width_ratios=(3, 2))
    ax.barh(y, [per[w]["model"] for w in ws], color="C0", label="model")
    ax.plot([per[w]["floor"] for w in ws], y, "k|", ms=9, mew=2, label="real-vs-real floor")
    ax.plot(
        [per[w]["nearest_baseline"] for w in ws], y, "^", color="C2", ms=4, label="nearest training writer"
    )
    ax.set_yticks(y, ws, fontsize=6)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the writer's generated words attributed to it (judges)")
    ax.legend(fontsize=6, loc="lower right")
    rho = per_writer_correlations(per)
    ax2.scatter([per[w]["novelty"] for w in ws], [per[w]["model"] for w in ws], s=10)
    for w in ws:
        ax2.annotate(
            w, (per[w]["novelty"], per[w]["model"]), fontsize=5, xytext=(2, 1), textcoords="offset points"
        )
    ax2.set_xlabel("novelty: cosine distance to the closest training writer")
    ax2.set_ylabel("model attribution")
    ax2.set_title(f"Spearman: novelty {rho['novelty']:+.2f}, floor {rho['floor']:+.2f}", fontsize=8)
    fig.suptitle(
        title
        or f"{result.get('model', 'model')}: attribution per unseen writer "
        f"(mean {result['rows']['model']['attribution_learned']:.3f})",
        fontsize=9,
    )
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
