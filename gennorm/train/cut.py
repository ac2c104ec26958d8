"""CUT and FastCUT (Park et al., ECCV 2020, "Contrastive Learning for Unpaired Image-to-Image
Translation"): one generator G: A -> B, a PatchGAN D on B, and a patchwise contrastive loss
(PatchNCE) between the encoder features of an input and of its translation.

    loss_D = 0.5 * (gan(D(B), real) + gan(D(G(A)), fake))                      (no image pool)
    loss_G = lambda_gan * gan(D(G(A)), real) + NCE
    NCE    = mean over taps l of mean over patches of lambda_nce * patch_nce(q_l, k_l)
             q_l = F_l(G.encode(G(A))_l), k_l = F_l(G.encode(A)_l), the same patch ids for both
    nce_idt: NCE = 0.5 * (NCE(A, G(A)) + NCE(B, G(B)))                       (CUT; not FastCUT)

F is the PatchSampleF head (gennorm.networks.patch_sample): per tap a 2-layer MLP, L2-normalized
outputs. Adam(2e-4, (0.5, 0.999)) for G, D and F. flip_equivariance (FastCUT): each step one
coin from the run's generator flips the whole generator input (A, and B with nce_idt)
horizontally; the query features of the translation are flipped back before the patches are
drawn, so they line up with the unflipped keys (as CUTModel.forward / calculate_NCE_loss).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

MASK_VALUE = -10.0  # CUT fills the self-similarity diagonal of the negatives with this before / T


def patch_nce(q: torch.Tensor, k: torch.Tensor, temperature: float = 0.07,
              batch_negatives: bool = False) -> torch.Tensor:
    """PatchNCE losses [B, P] of queries q and keys k, both [B, P, D] and L2-normalized.

    For patch i of image b: cross-entropy, target 0, of the logits
        [q_bi . k_bi, q_bi . k_bj (j = 1..P, the j = i entry replaced by -10)] / temperature
    i.e. the positive is the matching key patch, the negatives are the other patches of the same
    image (batch_negatives: of the whole batch, B*P - 1 of them). k is detached (no gradient
    reaches the keys). Exactly CUT's PatchNCELoss with reduction none, reshaped to [B, P].
    """
    if q.dim() != 3 or q.shape != k.shape:
        raise ValueError(f"patch_nce: q and k must both be [B, P, D], got {tuple(q.shape)} and {tuple(k.shape)}")
    dtype = torch.promote_types(q.dtype, torch.float32)  # half inputs (autocast): the loss in float32
    q, k = q.to(dtype), k.detach().to(dtype)
    b, p, d = q.shape
    l_pos = (q * k).sum(-1).reshape(b * p, 1)  # [B*P, 1]
    groups = 1 if batch_negatives else b
    qg, kg = q.reshape(groups, -1, d), k.reshape(groups, -1, d)  # [g, n, D], n = B*P/g
    n = qg.shape[1]
    l_neg = torch.bmm(qg, kg.transpose(1, 2))  # [g, n, n]
    diagonal = torch.eye(n, dtype=torch.bool, device=q.device)[None]
    l_neg = l_neg.masked_fill(diagonal, MASK_VALUE).reshape(b * p, n)  # [B*P, n]
    logits = torch.cat([l_pos, l_neg], 1) / temperature  # [B*P, 1 + n]
    target = torch.zeros(b * p, dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target, reduction="none").reshape(b, p)
