"""A contrastive (self-supervised) term for LGAE training (issue 21, deliverable 3).

JetCLR / AnomalyCLR in the LGAE's language. Besides its reconstruction loss, the encoder sees
each training jet twice more:

* a **positive view** (:func:`positive_view`): the same jet after IRC-safe changes that a
  physicist would call the same jet -- collinear splittings of random particles
  (:func:`collinear_split`, exact 4-momentum conservation) and a soft angular smearing of the
  constituents (:func:`soft_smear`, width ``soft_scale / pT``, so hard particles barely move).
  Lorentz transformations are no augmentation here: the latent invariants are exactly
  invariant under them already;
* an **anomalous view** (:func:`hard_prongs`): the same jet with one or two extra hard,
  wide-angle prongs that take a share of its energy (the jet's total energy and direction are
  kept up to the prongs' transverse recoil, which is balanced). It is what makes a QCD jet
  multi-prong, without any signal's mass or decay: AnomalyCLR's "anomalous augmentation"
  idea, as a hard negative.

A small MLP (:class:`ContrastiveHead`) maps the latent's Lorentz invariants
(:func:`lgae_hep.scoring.aux_head.latent_invariants`) to a unit vector; the loss
(:func:`contrastive_loss`) is the symmetric InfoNCE / NT-Xent of the original and positive
views against the other jets of the batch, with the jet's own anomalous view as one more
negative. The head is a training-time module, stored beside the model (``extra
["contrastive_head"]``), as the auxiliary head is; the model file and its scores are those of
an LGAE. :func:`lgae_hep.train.fit` adds the term with ``contrastive_weight > 0``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .scoring.aux_head import TrainingHead, silu_mlp

__all__ = ["ContrastiveHead", "collinear_split", "contrastive_loss", "exposure_views",
           "hard_prongs", "keep_hardest", "narrow_to_mass", "positive_view", "soft_smear"]


def keep_hardest(p4: torch.Tensor, mask: torch.Tensor, n: int) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
    """The ``n`` highest-energy real particles of every jet, energy-ordered, padded with
    zeros: ``(B, M, 4), (B, M) -> (B, n, 4), (B, n)``. Ties keep their input order."""
    key = torch.where(mask, p4[..., 0], torch.full_like(p4[..., 0], -math.inf))
    order = torch.sort(key, dim=1, descending=True, stable=True).indices[:, :n]
    out = p4.gather(1, order.unsqueeze(-1).expand(-1, -1, 4))
    keep = mask.gather(1, order)
    out = torch.where(keep.unsqueeze(-1), out, torch.zeros((), dtype=p4.dtype,
                                                           device=p4.device))
    return out, keep


def collinear_split(p4: torch.Tensor, mask: torch.Tensor, gen: torch.Generator,
                    prob: float = 0.3, z_min: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Split every real particle with probability ``prob`` into two exactly collinear ones,
    ``z p`` and ``(1 - z) p`` with ``z ~ U(z_min, 1 - z_min)``; then keep the ``N`` hardest
    (by energy) of the particles, so the shape stays ``(B, N, 4)``.

    When a jet has enough free (padded) slots nothing is dropped and its 4-momentum is
    conserved exactly up to rounding (``z p + (1 - z) p``); otherwise its softest particles
    make room (an IRC-safe change: the dropped energy is the softest of the jet).
    """
    _check(p4, mask)
    b, n, _ = p4.shape
    u = torch.rand((b, n), generator=gen, device=p4.device, dtype=p4.dtype)
    split = mask & (torch.rand((b, n), generator=gen, device=p4.device) < prob)
    z = torch.where(split, z_min + (1 - 2 * z_min) * u, torch.ones_like(u))
    first = p4 * z.unsqueeze(-1)
    second = p4 - first  # (1 - z) p: exactly p - z p, so that the pair adds up to p
    cand = torch.cat([first, second], 1)
    cmask = torch.cat([mask, split], 1)
    return keep_hardest(cand, cmask, n)


def soft_smear(p4: torch.Tensor, mask: torch.Tensor, gen: torch.Generator,
               soft_scale: float = 0.1, max_shift: float = 0.5
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """JetCLR's soft distortion: every real particle's ``eta`` and ``phi`` move by Gaussian
    shifts of width ``soft_scale / pT`` (GeV; clipped at ``max_shift``); its ``pT`` and mass
    are kept. A 100 GeV particle moves by ~1e-3, a 1 GeV one by ~0.1."""
    _check(p4, mask)
    e, px, py, pz = p4.unbind(-1)
    pt = torch.hypot(px, py)
    ok = mask & (pt > 0)
    safe_pt = torch.where(ok, pt, torch.ones_like(pt))
    eta = torch.asinh(pz / safe_pt)
    phi = torch.atan2(py, px)
    m2 = (e * e - px * px - py * py - pz * pz).clamp_min(0)
    sigma = (soft_scale / safe_pt).clamp_max(max_shift)
    d_eta = (torch.randn(eta.shape, generator=gen, device=p4.device, dtype=p4.dtype) * sigma
             ).clamp(-max_shift, max_shift)
    d_phi = (torch.randn(phi.shape, generator=gen, device=p4.device, dtype=p4.dtype) * sigma
             ).clamp(-max_shift, max_shift)
    eta, phi = eta + d_eta, phi + d_phi
    pz_new = safe_pt * torch.sinh(eta)
    new = torch.stack([torch.sqrt(m2 + safe_pt ** 2 + pz_new ** 2), safe_pt * torch.cos(phi),
                       safe_pt * torch.sin(phi), pz_new], -1)
    return torch.where(ok.unsqueeze(-1), new, p4), mask


def positive_view(p4: torch.Tensor, mask: torch.Tensor, gen: torch.Generator,
                  split_prob: float = 0.3, soft_scale: float = 0.1
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The IRC-safe positive view: :func:`collinear_split` then :func:`soft_smear`."""
    p4, mask = collinear_split(p4, mask, gen, prob=split_prob)
    return soft_smear(p4, mask, gen, soft_scale=soft_scale)


#: particles per wide prong (:func:`hard_prongs`' ``spread``)
PRONG_PARTICLES = 4


def hard_prongs(p4: torch.Tensor, mask: torch.Tensor, gen: torch.Generator,
                share: tuple[float, float] = (0.15, 0.35),
                angle: tuple[float, float] = (0.2, 0.6),
                keep_mass: bool = False, spread: tuple[float, float] | None = None,
                spread_particles: int = PRONG_PARTICLES) -> tuple[torch.Tensor, torch.Tensor]:
    """The anomalous view: one or two new massless prongs per jet, each with an energy share
    ``f ~ U(share)`` of the jet, at ``Delta R ~ U(angle)`` from the jet axis in a random
    direction; every original particle is scaled by ``1 - sum f``, and the prongs' transverse
    momentum relative to the axis is balanced by a recoil spread over the scaled particles in
    proportion to their energy, so the jet's 3-momentum direction is kept. The ``N`` hardest
    particles are kept (:func:`keep_hardest`).

    The prongs nearly always make the jet heavier. With ``keep_mass``, such a view is then
    narrowed back to the original jet mass (:func:`narrow_to_mass`): a jet with more prongs at
    its own mass, the structure a density given the mass should find rare (a view that came
    out lighter is kept as it is). The random draws are the same either way.

    ``spread=None`` makes each prong one massless particle. ``spread=(lo, hi)`` makes it a
    *wide* prong, as a real subjet with its own mass: ``spread_particles`` massless particles
    that share the prong's energy with fractions drawn uniformly on the simplex
    (Dirichlet(1, ..., 1)), their directions moved from the prong's by Gaussian angles of width
    ``sigma ~ U(lo, hi)`` (one per prong) in the plane transverse to it, so the prong's mass is
    about ``sigma`` times its energy. These draws come after all the others, so that
    ``spread=None`` is the single-particle view of before, bit for bit."""
    _check(p4, mask)
    if spread is not None and not (0.0 < spread[0] <= spread[1] < 0.5):
        raise ValueError(f"spread must be (lo, hi) with 0 < lo <= hi < 0.5; got {spread!r}")
    if spread is not None and not (isinstance(spread_particles, int)
                                   and spread_particles >= 2):
        raise ValueError(f"spread_particles must be an int >= 2, got {spread_particles!r}")
    b, n, _ = p4.shape
    dev, dt = p4.device, p4.dtype
    zero = torch.zeros((), dtype=dt, device=dev)
    jet = torch.where(mask.unsqueeze(-1), p4, zero).sum(1)  # (B, 4)
    e_jet = jet[:, 0]
    pvec = jet[:, 1:]
    pnorm = pvec.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(dt).tiny)
    axis = pvec / pnorm
    # an orthonormal pair (u, v) perpendicular to the axis
    helper = torch.where((axis[:, 2:3].abs() < 0.9), torch.tensor([0.0, 0.0, 1.0], dtype=dt,
                         device=dev), torch.tensor([1.0, 0.0, 0.0], dtype=dt, device=dev))
    u = torch.linalg.cross(axis, helper)
    u = u / u.norm(dim=-1, keepdim=True)
    v = torch.linalg.cross(axis, u)
    two = torch.rand((b,), generator=gen, device=dev) < 0.5
    lo, hi = share
    f = lo + (hi - lo) * torch.rand((b, 2), generator=gen, device=dev, dtype=dt)
    f = torch.where(torch.stack([torch.ones_like(two), two], 1), f, zero)
    a_lo, a_hi = angle
    theta = a_lo + (a_hi - a_lo) * torch.rand((b, 2), generator=gen, device=dev, dtype=dt)
    az = 2 * math.pi * torch.rand((b, 2), generator=gen, device=dev, dtype=dt)
    direction = (torch.cos(theta).unsqueeze(-1) * axis.unsqueeze(1)
                 + torch.sin(theta).unsqueeze(-1) * (torch.cos(az).unsqueeze(-1) * u.unsqueeze(1)
                                                     + torch.sin(az).unsqueeze(-1)
                                                     * v.unsqueeze(1)))
    e_prong = f * e_jet.unsqueeze(1)  # (B, 2)
    prongs = torch.cat([e_prong.unsqueeze(-1), e_prong.unsqueeze(-1) * direction], -1)
    real = torch.stack([torch.ones_like(two), two], 1)  # (B, 2): which prongs exist
    if spread is not None:
        prongs = _wide_prongs(direction, e_prong, gen, spread, spread_particles)
        real = real.repeat_interleave(spread_particles, 1)
    scale = (1 - f.sum(1)).view(b, 1, 1)
    rest = p4 * scale
    # balance the prongs' momentum transverse to the axis with the scaled particles
    t = prongs[..., 1:].sum(1)
    t_perp = t - (t * axis).sum(-1, keepdim=True) * axis  # (B, 3)
    w = torch.where(mask, rest[..., 0], zero)
    w = w / w.sum(1, keepdim=True).clamp_min(torch.finfo(dt).tiny)
    rest = torch.cat([rest[..., :1], rest[..., 1:] - w.unsqueeze(-1) * t_perp.unsqueeze(1)],
                     -1)
    # keep every recoiled particle on or inside its light cone (E >= |p|)
    rest_e = torch.maximum(rest[..., 0], rest[..., 1:].norm(dim=-1))
    rest = torch.cat([rest_e.unsqueeze(-1), rest[..., 1:]], -1)
    cand = torch.cat([rest, prongs], 1)
    cmask = torch.cat([mask, real], 1)
    cand = torch.where(cmask.unsqueeze(-1), cand, zero)
    out, keep = keep_hardest(cand, cmask, n)
    if keep_mass:
        m2 = jet[:, 0] ** 2 - (jet[:, 1:] ** 2).sum(-1)
        out = narrow_to_mass(out, keep, m2.clamp_min(0).sqrt())
    return out, keep


def _wide_prongs(direction: torch.Tensor, energy: torch.Tensor, gen: torch.Generator,
                 spread: tuple[float, float], k: int) -> torch.Tensor:
    """``k`` massless particles per prong (:func:`hard_prongs`' ``spread``): prongs of unit
    directions ``direction`` (B, 2, 3) and energies ``energy`` (B, 2) -> (B, 2 k, 4), the
    particles of prong 0 first. The fractions are normalised exponential draws (uniform on the
    simplex), so the particles' energies add up to the prong's (to rounding)."""
    b, n_p, _ = direction.shape
    dev, dt = direction.device, direction.dtype
    lo, hi = spread
    sigma = lo + (hi - lo) * torch.rand((b, n_p, 1), generator=gen, device=dev, dtype=dt)
    frac = -torch.log1p(-torch.rand((b, n_p, k), generator=gen, device=dev, dtype=dt))
    frac = frac / frac.sum(-1, keepdim=True)
    off = torch.randn((b, n_p, k, 2), generator=gen, device=dev, dtype=dt) * sigma.unsqueeze(-1)
    # an orthonormal pair perpendicular to each prong's direction
    helper = torch.where(direction[..., 2:3].abs() < 0.9,
                         torch.tensor([0.0, 0.0, 1.0], dtype=dt, device=dev),
                         torch.tensor([1.0, 0.0, 0.0], dtype=dt, device=dev))
    u = torch.linalg.cross(direction, helper.expand_as(direction))
    u = u / u.norm(dim=-1, keepdim=True)
    v = torch.linalg.cross(direction, u)
    d = (direction.unsqueeze(2) + off[..., :1] * u.unsqueeze(2) + off[..., 1:] * v.unsqueeze(2))
    d = d / d.norm(dim=-1, keepdim=True)
    e = frac * energy.unsqueeze(-1)  # (B, 2, k)
    parts = torch.cat([e.unsqueeze(-1), e.unsqueeze(-1) * d], -1)  # (B, 2, k, 4)
    return parts.reshape(b, n_p * k, 4)


#: bisection steps of :func:`narrow_to_mass`: the factor's interval shrinks to 2^-60, below
#: float64's resolution of a factor in (0, 1]
NARROW_STEPS = 60


def exposure_views(p4: torch.Tensor, mask: torch.Tensor, gen: torch.Generator,
                   split_prob: float = 0.5, share: tuple[float, float] = (0.15, 0.35),
                   angle: tuple[float, float] = (0.2, 0.6),
                   spread: tuple[float, float] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two classes of the ``exposure`` head (:mod:`lgae_hep.scoring.exposure`):
    ``(p4_qcd, mask_qcd, p4_anomalous, mask_anomalous)``.

    The anomalous view is :func:`hard_prongs` with ``keep_mass=True`` (one or two extra hard
    prongs with energy shares ``U(share)`` at ``Delta R ~ U(angle)``, narrowed back to the
    jet's own mass); then *both* views get :func:`positive_view`
    (collinear splittings with probability ``split_prob``, soft smearing), so that a prong is a
    spray of collinear particles like a real subjet, not one particle that no QCD jet has, and
    the head cannot tell the classes apart by the splitting itself. The draws come from ``gen``
    in a fixed order (prongs, then the anomalous view's splits, then the QCD view's).
    ``spread``: :func:`hard_prongs`' wide prongs (``None``: one particle per prong)."""
    pn, mn = hard_prongs(p4, mask, gen, share=share, angle=angle, keep_mass=True,
                         spread=spread)
    pn, mn = positive_view(pn, mn, gen, split_prob=split_prob)
    pq, mq = positive_view(p4, mask, gen, split_prob=split_prob)
    return pq, mq, pn, mn


def narrow_to_mass(p4: torch.Tensor, mask: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:
    """Jets narrowed to a given mass: every particle's momentum transverse to its jet's axis
    scaled by one factor ``lam`` in [0, 1] per jet, each particle's own mass kept (its energy
    follows), so the jet's 3-momentum is kept (to rounding) and its mass, which grows with
    ``lam``, is brought to ``mass`` by bisection (:data:`NARROW_STEPS`). A jet already at or
    below ``mass`` is returned unchanged, bit for bit; one that stays above it even when
    collinear gets ``lam = 0``. ``(B, N, 4), (B, N), (B,) -> (B, N, 4)``."""
    _check(p4, mask)
    dt = p4.dtype
    zero = torch.zeros((), dtype=dt, device=p4.device)
    p4 = torch.where(mask.unsqueeze(-1), p4, zero)
    pvec = p4[..., 1:]
    jet_p = pvec.sum(1)  # (B, 3)
    axis = jet_p / jet_p.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(dt).tiny)
    par = (pvec * axis.unsqueeze(1)).sum(-1, keepdim=True) * axis.unsqueeze(1)
    perp = pvec - par
    own_m2 = (p4[..., 0] ** 2 - (pvec ** 2).sum(-1)).clamp_min(0)

    def narrowed(lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = par + lam.view(-1, 1, 1) * perp
        e = torch.where(mask, (own_m2 + (q ** 2).sum(-1)).sqrt(), zero)
        qsum = torch.where(mask.unsqueeze(-1), q, zero).sum(1)
        jet_m2 = e.sum(1) ** 2 - (qsum ** 2).sum(-1)
        return torch.cat([e.unsqueeze(-1), q], -1), jet_m2

    target = mass.to(dt) ** 2
    lo = torch.zeros(p4.shape[0], dtype=dt, device=p4.device)
    hi = torch.ones_like(lo)
    heavier = narrowed(hi)[1] > target
    if not bool(heavier.any()):
        return p4
    for _ in range(NARROW_STEPS):
        mid = 0.5 * (lo + hi)
        above = narrowed(mid)[1] > target
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    out, _ = narrowed(torch.where(heavier, lo, hi))
    # a jet that is not heavier than asked is returned as it came, bit for bit
    return torch.where(heavier.view(-1, 1, 1) & mask.unsqueeze(-1), out, p4)


def _check(p4: torch.Tensor, mask: torch.Tensor) -> None:
    if p4.ndim != 3 or p4.shape[-1] != 4 or tuple(mask.shape) != tuple(p4.shape[:2]):
        raise ValueError(f"augmentations want p4 (B, N, 4) and mask (B, N), got "
                         f"{tuple(p4.shape)} and {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be boolean, got {mask.dtype}")


class ContrastiveHead(TrainingHead):
    """``asinh`` of the latent invariants -> ``Linear -> SiLU -> Linear`` -> unit vector.

    It sees only Lorentz invariants, so the embedding is invariant when the encoder is
    equivariant. Stored and rebuilt as a :class:`~lgae_hep.scoring.aux_head.TrainingHead`."""

    def __init__(self, n_in: int, hidden: int = 64, n_out: int = 32) -> None:
        super().__init__()
        self.config = {"n_in": int(n_in), "hidden": int(hidden), "n_out": int(n_out)}
        self.mlp = silu_mlp(n_in, hidden, 1, n_out)

    def forward(self, invariants: torch.Tensor) -> torch.Tensor:
        y = self.mlp(torch.asinh(invariants.to(self.mlp[0].weight.dtype)))
        return nn.functional.normalize(y, dim=-1)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> ContrastiveHead:
        return cls(cfg["n_in"], cfg["hidden"], cfg["n_out"])


def contrastive_loss(z: torch.Tensor, z_pos: torch.Tensor, z_neg: torch.Tensor | None = None,
                     temperature: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE (NT-Xent) per jet (B,): for jet ``i`` the positive pair is
    ``(z_i, z_pos_i)``; the negatives are the other jets of the batch in both views and,
    with ``z_neg``, the jet's own anomalous view ``z_neg_i`` (one more negative for each of
    the two directions). All embeddings are unit vectors (B, D); ``B >= 2``."""
    if z.ndim != 2 or z.shape != z_pos.shape or (z_neg is not None and z_neg.shape != z.shape):
        raise ValueError("contrastive_loss wants three (B, D) embeddings of equal shape")
    if z.shape[0] < 2:
        raise ValueError("contrastive_loss needs at least two jets per batch")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    b = z.shape[0]
    both = torch.cat([z, z_pos], 0)  # (2B, D)
    sim = both @ both.T / temperature
    eye = torch.eye(2 * b, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, -math.inf)  # never a jet against itself in the same view
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    if z_neg is not None:
        neg = (both * torch.cat([z_neg, z_neg], 0)).sum(-1, keepdim=True) / temperature
        sim = torch.cat([sim, neg], 1)
    per = nn.functional.cross_entropy(sim, target, reduction="none")
    return 0.5 * (per[:b] + per[b:])
