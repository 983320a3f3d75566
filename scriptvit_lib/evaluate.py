"""Evaluating a trained ScriptViT: its words against real words of the same writers and texts.

Two settings, scored separately: *seen* writers (the `val` split: training writers, words held
out from training) and *unseen* writers (the `test` split). In each, for every writer w:

    real words of w, shuffled by `seed`  ->  A_w (first m)  and  B_w (next m),
                                             m = min(n_per_writer, n_w // 2)
    G_w = the model writing the texts of A_w, each from k style words drawn from B_w
          (`StyleWordDataset(A, style_pool=B, seed=seed)`: the same references every run)

    generated row = metrics(G vs A)     same writers, same texts: dCER = CER(G) - CER(A)
    floor row     = metrics(B vs A)     real vs real, disjoint halves: what "perfect" scores

FID/KID pool all writers of a setting; HWD is per writer, then averaged; writer-acc (seen
writers only) asks the judges' writer classifier; retrieval asks whether each word's nearest
writer centroid (centroids from A) is its own writer. All features come from the judges
(`features.py`: trained on real training words only), or from Inception / VGG16 weights the user
gives. Output: `metrics.json` and `metrics.md` (a table per setting) in `out`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .features import Judges, judges_for, load_judges, words_fingerprint
from .generator import ScriptViT
from .metrics import (
    DEFAULT_PROTOCOL,
    PROTOCOLS,
    InceptionExtractor,
    VGG16Tokens,
    cer,
    fid,
    fid_features,
    hwd,
    hwd_prepare,
    kid,
    retrieval_top1,
    tokens_by_writer,
    writer_accuracy,
)
from .monitor import to_uint8
from .sampler import StyleWordDataset, collate_style_batch
from .words import WordSet

SETTINGS = {"val": "seen", "test": "unseen"}  # split -> setting
METRICS = ("fid", "kid_x1e3", "kid_std_x1e3", "hwd", "cer", "dcer", "writer_acc", "retrieval_top1")


def halves(words: WordSet, n_per_writer: int, seed: int) -> tuple[WordSet, WordSet]:
    """Per writer (sorted), shuffle its words with `seed` and cut two disjoint halves A, B of
    m = min(n_per_writer, n // 2) words each; writers with fewer than 2 words are left out."""
    rng = np.random.default_rng(seed)
    a, b = [], []
    for w in sorted(words.writers):
        mine = words.of_writer(w)
        m = min(n_per_writer, len(mine) // 2)
        if m < 1:
            continue
        perm = rng.permutation(len(mine))
        a += [mine[i] for i in perm[:m]]
        b += [mine[i] for i in perm[m : 2 * m]]
    return WordSet(a), WordSet(b)


@torch.no_grad()
def generate(
    model: ScriptViT,
    targets: WordSet,
    style_pool: WordSet,
    *,
    k: int = 5,
    seed: int = 0,
    batch_size: int = 32,
    device: str = "cpu",
    desc: str = "generating",
    progress: bool = True,
) -> list[np.ndarray]:
    """The model's word for each target's text, styled by k words of its writer from
    `style_pool` -> uint8 [32, W] images (W = 16 * len(text) for a fixed-width model), in the
    order of `targets`."""
    ds = StyleWordDataset(targets, k=k, style_size=model.config.style_size, style_pool=style_pool, seed=seed)
    assert len(ds) == len(targets), "every target writer needs style words in the pool"
    model.eval().to(device)
    out = []
    for s in tqdm(range(0, len(ds), batch_size), desc=desc, disable=not progress):
        b = collate_style_batch([ds[n] for n in range(s, min(s + batch_size, len(ds)))]).to(device)
        fake, widths = model.write(model.encode_style(b.style, b.style_widths), b.text_ids, b.text_lengths)
        out += to_uint8(fake, widths)
    return out


def measure(images: Sequence[np.ndarray], judges: Judges, protocol: str, inception=None, vgg=None) -> dict:
    """Everything the metrics need of one set of words, extracted once."""
    prepared = [hwd_prepare(im) for im in images]  # 32-px words: only pads those under 32 px
    d = judges.describe(prepared)  # tokens, embedding, logits of whole words
    if protocol == "full" and inception is None:
        d["fid"] = d["embedding"]
    else:
        d["fid"] = fid_features(images, protocol, judges=judges, inception=inception)
    if vgg is not None:
        d["tokens"] = vgg(prepared)
    d["read"] = judges.read(images)
    return d


def compare(ref: dict, cand: dict, judges: Judges, *, seed: int = 0) -> dict:
    """All metrics of a candidate set (generated, or the second real half) against reference A.
    Both dicts are `measure` outputs plus "writers" and "texts"."""
    kid_mean, kid_std = kid(ref["fid"], cand["fid"], seed=seed)
    cer_ref, cer_cand = cer(ref["read"], ref["texts"]), cer(cand["read"], cand["texts"])
    return {
        "fid": fid(ref["fid"], cand["fid"]),
        "kid_x1e3": kid_mean,
        "kid_std_x1e3": kid_std,
        "hwd": hwd(
            tokens_by_writer(ref["tokens"], ref["writers"]), tokens_by_writer(cand["tokens"], cand["writers"])
        ),
        "cer": cer_cand,
        "dcer": cer_cand - cer_ref,
        "writer_acc": writer_accuracy(cand["logits"], cand["writers"], judges.writers),
        "retrieval_top1": retrieval_top1(
            cand["embedding"], cand["writers"], ref["embedding"], ref["writers"]
        ),
    }


def by_vocabulary(real: dict, fake: dict, vocabulary: set[str]) -> dict:
    """CER of generated and real words split by whether the text occurs in the training words
    (in-vocabulary, IV) or not (out-of-vocabulary, OOV): HWT/VATr's IV/OOV protocol. `real` and
    `fake` are `measure` outputs for the same texts (A and G)."""
    out = {}
    for name, keep in (("in_vocabulary", True), ("out_of_vocabulary", False)):
        idx = [i for i, t in enumerate(real["texts"]) if (t in vocabulary) == keep]
        if not idx:
            out[name] = {"words": 0, "cer": None, "cer_real": None, "dcer": None}
            continue
        texts = [real["texts"][i] for i in idx]
        c_fake = cer([fake["read"][i] for i in idx], texts)
        c_real = cer([real["read"][i] for i in idx], texts)
        out[name] = {"words": len(idx), "cer": c_fake, "cer_real": c_real, "dcer": c_fake - c_real}
    return out


def _resize_width(image: np.ndarray, width: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, image.shape[0]), Image.BILINEAR))


def _judges_summary(judges: Judges) -> dict:
    """What the judges are (config, training data, steps, final accuracy) - no timings, so the
    same judges give the same json."""
    info = {k: ({kk: vv for kk, vv in v.items() if kk != "seconds"} if isinstance(v, dict) else v)
            for k, v in judges.info.items()}  # fmt: skip
    return {"writers": len(judges.writers), "config": asdict(judges.config), **info}


def _round(d):
    if isinstance(d, dict):
        return {k: _round(v) for k, v in d.items()}
    return round(d, 6) if isinstance(d, float) else d


def evaluate(
    model_dir_or_model: str | Path | ScriptViT,
    data: str | Path | dict[str, WordSet],
    split: str = "both",
    k: int = 5,
    n_per_writer: int = 100,
    seed: int = 0,
    judges_dir: str | Path | None = None,
    protocol: str = DEFAULT_PROTOCOL,
    *,
    out: str | Path | None = None,
    inception_weights: str | Path | None = None,
    hwd_weights: str | Path | None = None,
    match_width: bool = False,
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Generate and score; returns (and, with `out`, writes) the metrics of each setting.

    split: "val" (seen writers), "test" (unseen writers) or "both". judges_dir: a folder with
    judges saved by `train_judges`, or else the cache root of `features.judges_for` (None: its
    default), where judges of `data["train"]` are trained on a miss. inception_weights /
    hwd_weights: use Inception-v3 for FID/KID, VGG16 for HWD (weights files, never downloaded).
    match_width: resize each generated word (always 16 px per character) to the width of the
    real word it imitates before scoring - a diagnostic that removes the generator's fixed
    character width from the comparison, at the price of borrowing one number from the reference.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {sorted(PROTOCOLS)}")
    splits = {"both": ["val", "test"], "val": ["val"], "test": ["test"]}.get(split)
    if splits is None:
        raise ValueError(f"split must be 'val', 'test' or 'both', got {split!r}")
    trained_on: set[str] = set()
    if isinstance(model_dir_or_model, ScriptViT):
        model, model_name = model_dir_or_model, "(in memory)"
    else:
        model, model_name = ScriptViT.from_pretrained(model_dir_or_model), str(model_dir_or_model)
        listed = Path(model_dir_or_model) / "training_writers.json"  # written by bench/ship_model.py
        trained_on = set(json.loads(listed.read_text())) if listed.exists() else set()
    if isinstance(data, dict):
        sets, data_name = data, "(in memory)"
    else:
        from .data import load_data

        sets, data_name = load_data(data), str(data)
    if inception_weights and protocol == "full":
        raise ValueError("Inception reads a fixed-size crop: use protocol 'hwd' or 'ganwriting'")
    inception = InceptionExtractor(inception_weights) if inception_weights else None
    vgg = VGG16Tokens(hwd_weights) if hwd_weights else None
    if judges_dir is not None and (Path(judges_dir) / "judges.json").is_file():
        judges = load_judges(judges_dir)
        if judges.info.get("fingerprint") != words_fingerprint(sets["train"]):
            msg = f"the judges in {judges_dir} were trained on other words than this data's train split"
            warnings.warn(msg, stacklevel=2)
    else:
        judges = judges_for(sets["train"], judges_dir, progress=progress)

    result = {
        "model": model_name,
        "data": data_name,
        "k": k,
        "n_per_writer": n_per_writer,
        "seed": seed,
        "protocol": protocol,
        "protocol_means": PROTOCOLS[protocol],
        "match_width": match_width,
        "fid_extractor": inception.name
        if inception
        else f"judges' feature net ({judges.config.feat_dim}-d embedding)",
        "hwd_backbone": vgg.name
        if vgg
        else f"judges' feature-net trunk ({judges.config.feat_dim}-d token / 32 px)",
        "judges": _judges_summary(judges),
        "settings": {},
    }
    vocabulary = {s.text for s in sets["train"]}
    for sp in splits:
        words = sets.get(sp)
        if words is None or len(words) == 0:
            raise ValueError(f"the data has no {sp!r} split to evaluate")
        seen_before = sorted(trained_on & set(words.writers)) if sp == "test" else []
        if seen_before:
            warnings.warn(
                f"{len(seen_before)} of the {len(words.writers)} test writers were training writers of this "
                f"model (e.g. {seen_before[0]}): its 'unseen' scores are not unseen; evaluate on the data "
                "it was trained with",
                stacklevel=2,
            )
        a, b = halves(words, n_per_writer, seed)
        if len(a) == 0:
            raise ValueError(f"no writer of the {sp!r} split has 2 words")
        desc = f"generating ({SETTINGS[sp]} writers)"
        fake = generate(
            model, a, b, k=k, seed=seed, batch_size=batch_size, device=device, desc=desc, progress=progress
        )
        if match_width:
            fake = [_resize_width(g, s.image.shape[1]) for g, s in zip(fake, a)]
        sets_ = {}
        for name, ws, images in (
            ("A", a, [s.image for s in a]),
            ("B", b, [s.image for s in b]),
            ("G", a, fake),
        ):
            sets_[name] = measure(images, judges, protocol, inception, vgg)
            sets_[name].update(writers=[s.writer for s in ws], texts=[s.text for s in ws])
        result["settings"][SETTINGS[sp]] = {
            "split": sp,
            "writers": len(a.writers),
            "words_per_set": len(a),
            "cer_real": cer(sets_["A"]["read"], sets_["A"]["texts"]),
            "generated": compare(sets_["A"], sets_["G"], judges, seed=seed),
            "floor": compare(sets_["A"], sets_["B"], judges, seed=seed),
            "by_vocabulary": by_vocabulary(sets_["A"], sets_["G"], vocabulary),
        }
    result = _round(result)
    if out is not None:
        write_report(result, out)
    return result


def _fmt(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def markdown_report(result: dict) -> str:
    """One table per setting: rows generated / real-vs-real floor, columns the metrics."""
    lines = [
        "# ScriptViT evaluation",
        "",
        f"model `{result['model']}`, data `{result['data']}`, k = {result['k']} style words, "
        f"up to {result['n_per_writer']} words per writer and set, seed {result['seed']}.",
        f"FID/KID: {result['fid_extractor']}, protocol **{result['protocol']}** "
        f"({result['protocol_means']}); KID is x10^3, mean ± std over 100 subsets of min(1000, set size) "
        "words (std 0 when every subset is the whole set). "
        f"HWD: {result['hwd_backbone']}. CER: judges' CRNN. Lower is better except the accuracies.",
    ]
    if result["match_width"]:
        lines.append("Generated words were resized to the width of their real counterparts (--match-width).")
    for setting, r in result["settings"].items():
        lines += [
            "",
            f"## {setting} writers ({r['split']} split): {r['writers']} writers, "
            f"{r['words_per_set']} words per set (CER of the real words: {r['cer_real']:.3f})",
            "",
            "| | FID | KID×10³ | HWD | CER | dCER | writer-acc | retrieval@1 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row, name in (("generated", "generated vs real"), ("floor", "real-vs-real floor")):
            m = r[row]
            cells = [
                f"{m['fid']:.2f}",
                f"{m['kid_x1e3']:.2f} ± {m['kid_std_x1e3']:.2f}",
                f"{m['hwd']:.3f}",
                f"{m['cer']:.3f}",
                f"{m['dcer']:+.3f}",
                _fmt(m["writer_acc"], ".3f"),
                f"{m['retrieval_top1']:.3f}",
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        parts = []
        for key, label in (("in_vocabulary", "in-vocabulary"), ("out_of_vocabulary", "out-of-vocabulary")):
            v = r.get("by_vocabulary", {}).get(key)
            if v and v["words"]:
                cers = f"CER {v['cer']:.3f}, real {v['cer_real']:.3f}, dCER {v['dcer']:+.3f}"
                parts.append(f"{label} ({v['words']} words): {cers}")
            elif v:
                parts.append(f"{label}: no words")
        if parts:
            lines += [
                "",
                "By vocabulary (text seen among the training words or not): " + "; ".join(parts) + ".",
            ]
    return "\n".join(lines) + "\n"


def write_report(result: dict, out: str | Path) -> Path:
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    (d / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    (d / "metrics.md").write_text(markdown_report(result))
    return d
