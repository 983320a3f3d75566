"""Losses of ScriptViT training: hinge adversarial, CTC legibility, writer identity.

ScriptViT (arXiv 2511.18307) trains like HWT: the generator G minimises

    L_G = L_adv + lambda_ctc * L_ctc + lambda_w * L_writer

while the discriminator D, the recognizer R and the writer classifier W are trained on
real words. Every loss on an image averages only over positions inside the word's true
width (`mask`, from `discriminator.width_mask`), never over padding.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over each word's valid positions, then over the batch: every word weighs the same
    whatever its width, and a batch's loss is the mean of its samples' losses (so a batch split
    over several processes gives the same gradient as the whole batch in one)."""
    if mask is None:
        return x.mean()
    assert mask.shape == x.shape, f"mask {tuple(mask.shape)} does not match logits {tuple(x.shape)}"
    m = mask.to(device=x.device, dtype=x.dtype).flatten(1)
    return ((x.flatten(1) * m).sum(1) / m.sum(1).clamp_min(1.0)).mean()


def d_hinge_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    real_mask: torch.Tensor | None = None,
    fake_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Discriminator hinge loss (Lim & Ye 2017; BigGAN, HWT), over valid columns p:

        L_D = E_p[ max(0, 1 - D(x_real)_p) ] + E_p[ max(0, 1 + D(x_fake)_p) ]

    D is pushed to score real columns above +1 and fake ones below -1, and stops caring
    once they are. Pass `fake_logits` of detached fakes.
    """
    return _masked_mean(F.relu(1.0 - real_logits), real_mask) + _masked_mean(
        F.relu(1.0 + fake_logits), fake_mask
    )


def g_hinge_loss(fake_logits: torch.Tensor, fake_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Generator hinge loss:  L_adv = - E_p[ D(G(s, t))_p ]  (raise D's score of fakes)."""
    return -_masked_mean(fake_logits, fake_mask)


def match_d_hinge_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    swapped_logits: torch.Tensor,
    real_mask: torch.Tensor | None = None,
    fake_mask: torch.Tensor | None = None,
    swapped_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Hinge loss of the style-matching discriminator (`StyleMatchDiscriminator`, library option):

        L = E[ max(0, 1 - D(x_real | s_own)) ] + 1/2 E[ max(0, 1 + D(x_fake | s_own)) ]
                                               + 1/2 E[ max(0, 1 + D(x_real | s_other)) ]

    `swapped_logits` score real words against another writer's style words (`other_writer`);
    both negatives together weigh as much as the positive. An empty negative (no sample has a
    partner of another writer; or no fakes) is left out and the other takes its weight."""
    negs = [
        _masked_mean(F.relu(1.0 + logits), mask)
        for logits, mask in ((fake_logits, fake_mask), (swapped_logits, swapped_mask))
        if logits.shape[0] > 0
    ]
    assert negs, "match_d_hinge_loss needs fakes or swapped pairs"
    return _masked_mean(F.relu(1.0 - real_logits), real_mask) + sum(negs) / len(negs)


def other_writer(writer_ids: torch.Tensor) -> torch.Tensor:
    """[B] writer ids -> [B] index of a batch partner of another writer for each sample (the
    next one, cyclically, whose writer differs), or -1 where every sample has the same writer."""
    ids = writer_ids.tolist()  # plain ints: this runs every iteration, per pair
    n = len(ids)
    out = [next(((i + s) % n for s in range(1, n) if ids[(i + s) % n] != ids[i]), -1) for i in range(n)]
    return torch.tensor(out, dtype=torch.long, device=writer_ids.device)


def ctc_loss(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
) -> torch.Tensor:
    """CTC loss (Graves et al., 2006) of the recognizer's output:

        L_ctc = - log sum_{pi in B^-1(t)} prod_c p(pi_c | x),

    summed over all column paths pi that collapse (merge repeats, drop blanks) to the text t.
    `log_probs` is the recognizer's [B, T, C] (log_softmax, blank = 0); torch wants [T, B, C].
    Reduction 'mean' divides each sample by its target length, then averages the batch;
    `zero_infinity` zeroes impossible alignments (image too narrow for the text).
    """
    assert log_probs.dim() == 3, f"expected [B, T, C] log-probs, got {tuple(log_probs.shape)}"
    inside = (
        torch.arange(targets.shape[1], device=targets.device)[None, :]
        < target_lengths.to(targets.device)[:, None]
    )
    assert bool((targets[inside] > 0).all()), "a target holds the blank id 0 inside its length"
    # paper silent on the reduction: chose torch's 'mean' (per-character) so long and short
    # words weigh alike; HWT averages per-word totals (reduction='none', then mean).
    return F.ctc_loss(
        log_probs.transpose(0, 1).float(),  # [T, B, C]
        targets.long(),  # [B, L] padded with 0, only the first target_lengths[b] are read
        input_lengths.long().clamp(max=log_probs.shape[1]),
        target_lengths.long(),
        blank=0,
        reduction="mean",
        zero_infinity=True,
    )


def writer_ce_loss(logits: torch.Tensor, writer_ids: torch.Tensor) -> torch.Tensor:
    """Writer cross-entropy:  L_writer = - log softmax(W(x))_w  for the true writer w.

    Samples with writer id -1 (unknown writer) are ignored; a batch with none known gives 0.
    """
    known = writer_ids >= 0
    if not bool(known.any()):
        return logits.sum() * 0.0  # keeps the graph, contributes nothing
    return F.cross_entropy(logits[known], writer_ids[known])


def style_contrastive_loss(
    fake_emb: torch.Tensor, ref_emb: torch.Tensor, writer_ids: torch.Tensor, tau: float = 0.1
) -> torch.Tensor:
    """InfoNCE between each fake word and the style words it was written from (library option).

    fake_emb [B, D] embeds fake i; ref_emb [B, D] embeds the k style words of sample i (their
    mean). With cosine similarities s_ij / tau, fake i must pick its own references among the
    batch's:  L = - log softmax_j(s_ij / tau)_i.  References of the same writer as i (another
    sample of that writer in the batch) are left out of the negatives. Unlike the writer
    cross-entropy it names no training writer, so it also asks "looks like *these* style words"
    of writers the classifier never saw. A batch with no negative gives 0.
    """
    assert fake_emb.shape == ref_emb.shape, f"{tuple(fake_emb.shape)} vs {tuple(ref_emb.shape)}"
    f, r = F.normalize(fake_emb.float(), dim=1), F.normalize(ref_emb.float(), dim=1)
    logits = f @ r.t() / tau  # [B, B]
    same = writer_ids[:, None] == writer_ids[None, :]
    eye = torch.eye(len(f), dtype=torch.bool, device=f.device)
    logits = logits.masked_fill(same & ~eye, float("-inf"))
    has_negative = (~same).any(dim=1)
    if not bool(has_negative.any()):
        return fake_emb.sum() * 0.0  # keeps the graph, contributes nothing
    target = torch.arange(len(f), device=f.device)
    return F.cross_entropy(logits[has_negative], target[has_negative])


def feature_match_loss(
    fake_maps: list[torch.Tensor], real_maps: list[torch.Tensor], widths: torch.Tensor, image_width: int
) -> torch.Tensor:
    """Perceptual (feature-matching) loss: mean |phi_l(fake) - phi_l(real)| over the layers l of a
    feature network, each over the columns inside the word's true width (`widths` px, the same
    for the fake and its real target of the same writer and text; `image_width` px is the
    width of the images the maps came from, so a map of W_l columns has stride image_width/W_l).
    The real maps are constants: only the fake is pulled."""
    total = fake_maps[0].new_zeros((), dtype=torch.float32)
    for fm, rm in zip(fake_maps, real_maps, strict=True):
        assert fm.shape == rm.shape, f"feature maps differ: {tuple(fm.shape)} vs {tuple(rm.shape)}"
        stride = image_width / fm.shape[-1]
        cols = torch.arange(fm.shape[-1], device=fm.device)
        m = (cols[None, :] * stride < widths.to(fm.device)[:, None]).float()  # [B, W_l]
        diff = (fm.float() - rm.detach().float()).abs().mean(dim=(1, 2))  # [B, W_l]
        total = total + ((diff * m).sum(1) / m.sum(1).clamp_min(1.0)).mean()
    return total / len(fake_maps)
