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

from gennorm.errors import ConfigError
from gennorm.networks.factory import build_discriminator_from, build_generator_from
from gennorm.networks.patch_sample import PatchSampleF, sample_patch_ids
from gennorm.train.distributed import average_gradients
from gennorm.train.optim import make_adam, make_scheduler
from gennorm.train.task import Task, set_requires_grad

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


def resolve_taps(netG, nce_layers: str | None) -> tuple[str, ...]:
    """train.nce_layers ("input,down1,...", or None for the generator's nce_taps) as checked tap names."""
    if nce_layers is None:
        return tuple(netG.nce_taps)
    taps = tuple(t.strip() for t in nce_layers.split(",") if t.strip())
    unknown = [t for t in taps if t not in netG.taps]
    if unknown or not taps or len(set(taps)) != len(taps):
        raise ConfigError(f"config key 'train.nce_layers': {nce_layers!r} is not a comma-separated list of distinct "
                          f"encoder taps of {netG.arch}; known taps: {', '.join(netG.taps)} (null: "
                          f"{','.join(netG.nce_taps)})")
    return taps


@torch.no_grad()
def tap_channels(netG, taps) -> list[int]:
    """The channel count of each tap, from one eval-mode probe (no statistics or RNG touched)."""
    was = netG.training
    netG.eval()
    try:
        size = max(netG.size_multiple, 32)  # a power of two: the ResNet's reflect pads need >= 2x2 at H/4
        feats = netG.encode(torch.zeros(1, netG.input_nc, size, size), taps)
    finally:
        netG.train(was)
    return [f.shape[1] for f in feats]


class CUTTask(Task):
    """CUT (train.nce_idt) and FastCUT (lambda_nce 10, no nce_idt, flip_equivariance): see the module."""

    GENERATORS = ("G",)
    DISCRIMINATORS = ("D",)
    SAMPLE_COLUMNS = ("A", "G(A)", "B", "G(B)")

    def __init__(self, cfg, device, dist_info=None):
        super().__init__(cfg, device, dist_info)
        t = cfg.train
        self.optims["F"] = make_adam(self.nets["F"].parameters(), t)  # CUT's optimizer_F; no scaler of
        self.scheds["F"] = make_scheduler(self.optims["F"], t)  # its own: G's scaler steps both
        # the flip coins and patch ids: the run's own generator, in checkpoints (exact resume)
        self.cut_gen = torch.Generator().manual_seed(t.seed * 1000 + 211 + 101 * self.dist.rank)

    def build_nets(self):
        m, t = self.cfg.model, self.cfg.train
        netG = build_generator_from(m, m.input_nc, m.output_nc)
        netD = build_discriminator_from(m, m.output_nc)
        self.taps = resolve_taps(netG, t.nce_layers)
        netF = PatchSampleF(t.netf_nc, m.init_type, m.init_gain)
        netF.create(tap_channels(netG, self.taps))  # CUT creates it on the first batch: same shapes
        return {"G": netG, "D": netD, "F": netF}

    def nce_loss(self, src: torch.Tensor, tgt: torch.Tensor, flipped: bool) -> torch.Tensor:
        """CUT's calculate_NCE_loss: mean over taps of lambda_nce * mean PatchNCE(F(G.encode(tgt)), F(G.encode(src)))."""
        t, netG, netF = self.cfg.train, self.nets["G"], self.nets["F"]
        feat_q = netG.encode(tgt, self.taps)  # [N, C_l, H_l, W_l] per tap
        if flipped:
            feat_q = [torch.flip(f, [3]) for f in feat_q]
        feat_k = netG.encode(src, self.taps)
        ids = sample_patch_ids(feat_k, t.num_patches, self.cut_gen)  # shared by keys and queries
        k, q = netF(feat_k, ids), netF(feat_q, ids)  # [N, P_l, netf_nc] each
        total = sum((patch_nce(ql, kl, t.nce_t, t.nce_batch_negatives) * t.lambda_nce).mean() for ql, kl in zip(q, k))
        return total / len(self.taps)

    def generator_losses(self, real_A, real_B, fake_B, idt_B, flipped: bool) -> dict[str, torch.Tensor]:
        """CUT's compute_G_loss, its terms: G_GAN, NCE, (NCE_Y) and G."""
        t, netD = self.cfg.train, self.nets["D"]
        zero = real_A.new_zeros(())
        with self.autocast():
            gan = self.gan(netD(fake_B), True, for_discriminator=False) * t.lambda_gan if t.lambda_gan > 0 else zero
            nce = self.nce_loss(real_A, fake_B, flipped) if t.lambda_nce > 0 else zero
            losses = {"G_GAN": gan, "NCE": nce}
            if t.nce_idt and t.lambda_nce > 0:
                losses["NCE_Y"] = self.nce_loss(real_B, idt_B, flipped)
                nce = (nce + losses["NCE_Y"]) * 0.5
        losses["G"] = gan + nce
        return losses

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        t, netG, netD = self.cfg.train, self.nets["G"], self.nets["D"]
        real_A = batch["A"].to(self.device, non_blocking=True)  # [N, in, H, W]
        real_B = batch["B"].to(self.device, non_blocking=True)  # [N, out, H, W]
        real = torch.cat([real_A, real_B]) if t.nce_idt else real_A  # G's input: [2N or N, in, H, W]
        flipped = t.flip_equivariance and torch.rand((), generator=self.cut_gen).item() < 0.5
        if flipped:
            real = torch.flip(real, [3])
        with self.autocast():
            fake = netG(real)
        fake_B, idt_B = fake[:real_A.shape[0]], (fake[real_A.shape[0]:] if t.nce_idt else None)

        set_requires_grad([netD], True)
        d = self.d_loss(netD, real_B, fake_B)
        self.check_finite({"D_real": d["real"], "D_fake": d["fake"], "D": d["total"]}, step)
        self.optimize("D", d["total"], ("D",))

        set_requires_grad([netD], False)
        g = self.generator_losses(real_A, real_B, fake_B, idt_B, flipped)
        self.check_finite(g, step)
        self._optimize_g_and_f(g["G"])
        set_requires_grad([netD], True)
        self.after_step()
        out = {k: v.item() for k, v in g.items() if k != "G"}
        out.update(D_real=d["real"].item(), D_fake=d["fake"].item())
        return out

    def _optimize_g_and_f(self, loss: torch.Tensor) -> None:
        """One backward, then G's and F's Adam steps (CUT's optimizer_G and optimizer_F), one scaler."""
        opt_g, opt_f, scaler = self.optims["G"], self.optims["F"], self.scalers["G"]
        opt_g.zero_grad(set_to_none=True)
        opt_f.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        average_gradients([self.nets["G"], self.nets["F"]], self.dist)
        scaler.step(opt_g)
        scaler.step(opt_f)
        scaler.update()

    def sample_rows(self, batch: dict) -> list[torch.Tensor]:
        """[A, G(A), B, G(B)] (G(B): the identity CUT's nce_idt trains)."""
        real_A, real_B = batch["A"].to(self.device), batch["B"].to(self.device)
        return [real_A, self.run_generator("G", real_A), real_B, self.run_generator("G", real_B)]

    def local_state(self) -> dict:
        return {**super().local_state(), "cut_gen": self.cut_gen.get_state()}

    def load_local_state(self, state: dict) -> None:
        super().load_local_state(state)
        if "cut_gen" in state:
            self.cut_gen.set_state(state["cut_gen"])
