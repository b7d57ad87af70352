"""Normalised-autoencoder (energy-based) training: the reconstruction error as an energy whose
negative samples are pushed up (issue 21.3).

An autoencoder trained only to reconstruct QCD jets also reconstructs jets it never saw, as long
as they are *simpler* (a clean two-prong jet has less structure than a QCD jet's core plus its
wide-angle radiation), so its error ranks by complexity, not by how unusual a jet is for QCD.
The normalised autoencoder (Yoon, Noh and Park 2021; for jets Dillon, Favaro, Plehn, Sorrenson
and Kraemer 2022) reads the reconstruction error ``E(x)`` as the energy of a Boltzmann density
``p(x) ~ exp(-E(x))`` and trains it by maximum likelihood: the gradient lowers ``E`` on the data
and raises it on samples of the model's own density, found by Langevin dynamics on ``E``. The
error then cannot stay low off the data in either direction of complexity.

Here (:func:`lgae_hep.train.fit` with ``nae_weight > 0``):

* the energy of a jet is its own per-jet training loss (:func:`lgae_hep.objectives.per_jet_loss`,
  e.g. ``chamfer-dr``), in the model's loss units;
* negative samples are short-run Langevin chains in the space of the particles' 4-momenta on the
  light cone (:func:`langevin_negatives`), started from the batch's anomalous view of the
  contrastive objective (:func:`lgae_hep.contrastive.hard_prongs`: one or two extra hard
  prongs), not from noise: a random particle cloud is far from any jet, and a chain from it
  needs hundreds of steps; a chain from a perturbed jet walks towards the model's low-energy
  region near the data, where the error must be raised;
* the term added to the objective is :func:`nae_loss`, ``mean E(x+) - mean E(x-)`` plus
  ``gamma`` times the mean squared energies (the regulariser of Yoon et al., which bounds the
  negatives' energy: the term is lowest at ``E(x-) = 1 / (2 gamma)``).

Each step of a chain moves every particle by a fraction of its own momentum, so the dynamics does
not depend on the units of the momenta; a chain is seeded by (seed, epoch, step), as the
contrastive views are, so a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["langevin_negatives", "nae_loss"]

Energy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def langevin_negatives(energy: Energy, p4: torch.Tensor, mask: torch.Tensor,
                       gen: torch.Generator | None, steps: int, step_size: float,
                       noise: float) -> torch.Tensor:
    """``steps`` Langevin steps down the energy from the jets ``p4`` (B, N, 4), ``mask`` (B, N).

    The chain lives on the light cone: its state is the particles' 3-momenta ``p_i``, and each
    particle enters the energy as ``(|p_i|, p_i)`` (the start included, so the start's small
    masses are dropped). The network has only seen (nearly) massless particles; off the light
    cone its CG products of ``p_i`` with itself, zero for ``p_i^2 = 0``, grow without bound
    (an untrained 4-layer encoder reaches 1e23 after one 2 % step with the energy free).

    Step: ``p_i <- p_i - step_size * s_i * d_i + noise * s_i * xi_i`` for every real particle,
    with ``s_i = |p_i|`` at the start of the chain (the step is relative to it), ``d_i = s_i
    grad_i E / rms_jet(s grad E)`` (the jet's gradient in relative coordinates, normalised to
    unit root-mean-square over the jet's real components, so the step size is the typical
    relative move) and ``xi`` standard normal. Padded particles stay exactly zero and receive
    no noise; a non-finite gradient component (the angles of a vanishing transverse momentum)
    does not move its coordinate. Only the inputs are differentiated: parameter gradients are
    neither computed nor accumulated.

    Parameters
    ----------
    energy : callable
        ``(p4, mask) -> (B,)`` per-jet energies, differentiable in ``p4``.
    p4, mask : torch.Tensor
        Start of the chains (a detached copy is moved).
    gen : torch.Generator or None
        Source of the noise (``None``: the global generator).
    steps : int
        Number of steps (0 returns the start unchanged).
    step_size, noise : float
        Relative drift and noise per step, both >= 0.

    Returns
    -------
    torch.Tensor
        The chains' ends (B, N, 4), massless, detached.
    """
    if steps < 0 or step_size < 0 or noise < 0:
        raise ValueError(f"steps, step_size and noise must be >= 0, got {steps}, {step_size}, "
                         f"{noise}")
    m = mask.unsqueeze(-1).to(p4.dtype)
    zero = torch.zeros((), dtype=p4.dtype, device=p4.device)
    p = torch.where(mask.unsqueeze(-1), p4[..., 1:], zero).detach()  # the 3-momenta move
    scale = p.norm(dim=-1, keepdim=True)  # (B, N, 1): each particle's |p|, fixed over the chain
    n_real = (m.sum((1, 2)) * 3).clamp_min(1.0)  # real components per jet
    tiny = torch.finfo(p4.dtype).tiny

    def lightlike(q: torch.Tensor) -> torch.Tensor:
        # E = |p| (a padded slot has p = 0, hence E = 0); the norm's gradient at p = 0 is
        # never needed: padded slots do not move
        e = torch.sqrt((q * q).sum(-1, keepdim=True).clamp_min(tiny))
        return torch.cat([torch.where(mask.unsqueeze(-1), e, zero), q], dim=-1)

    for _ in range(steps):
        p.requires_grad_(True)
        with torch.enable_grad():
            e = energy(lightlike(p), mask)
            (grad,) = torch.autograd.grad(e.sum(), p)
        p = p.detach()
        # padded slots and any non-finite component of a real particle's gradient do not move
        good = torch.isfinite(grad) & mask.unsqueeze(-1)
        d = torch.where(good, grad, zero) * scale
        rms = ((d * d).sum((1, 2)) / n_real).sqrt().clamp_min(tiny).view(-1, 1, 1)
        p = p - step_size * scale * (d / rms)
        if noise > 0:
            xi = torch.randn(p.shape, generator=gen, dtype=p.dtype, device=p.device)
            p = p + noise * scale * xi
        p = p * m
    return lightlike(p).detach()


def nae_loss(e_pos: torch.Tensor, e_neg: torch.Tensor, gamma: float) -> torch.Tensor:
    """The normalised-autoencoder term: ``mean E(x+) - mean E(x-) + gamma (mean E(x+)^2 +
    mean E(x-)^2)`` (a scalar); lowest in ``E(x-)`` at ``1 / (2 gamma)``."""
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    return (e_pos.mean() - e_neg.mean()
            + float(gamma) * ((e_pos * e_pos).mean() + (e_neg * e_neg).mean()))
