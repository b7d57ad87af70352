"""The frame the scoring engine evaluates a Lorentz-equivariant model in: the jet's rest frame.

Why
---
A jet at pT ~ 1 TeV has a Lorentz factor gamma = E / m ~ 10, and its particles are nearly
massless and nearly collinear. In the lab frame every Lorentz invariant the network forms
(particle masses ``p_i^2``, pair invariants ``(p_i - p_j)^2``, the Minkowski products of the
latent vectors) is a difference of numbers up to ``gamma^2`` (and, for collinear particles,
``1 / theta^2``) times larger than itself: float32 rounding of the components, 6e-8 relative,
becomes 1e-4 .. 1e-2 relative in the invariants, and a latent density turns that into score
changes of a sizeable fraction of the score's spread (docs/RELIABILITY.md section 5).

What
----
For a Lorentz-equivariant model (the LGAE) the engine boosts each jet, in float64, to the frame
where the sum of its kept particles is at rest (:func:`rest_frame_boosts`), runs the network
there, and boosts every covariant output back to the lab, again in float64
(:func:`to_lab`): reconstructed 4-momenta, and the latent 4-vectors. By equivariance this is the
*same function* as the lab-frame evaluation in exact arithmetic (tested in float64 to ~1e-10
relative); it only changes which rounding errors are made. Invariant outputs (latent scalars,
Minkowski norms, the density scores) need no transformation at all.

The boost is capped at ``gamma <= MAX_GAMMA`` (jets whose mass is not resolved, e.g. one
particle): any boost is exact by equivariance, the cap only keeps the transformation finite.
Models that are not Lorentz equivariant (GNNAE) are evaluated in the lab frame.

An LGAE with reference vectors ("spurions", ``config["references"]``) is not equivariant in the
particles alone, only *covariant* when particles and references transform together. The engine
evaluates it in the rest frame too, and passes it the lab references boosted with the same
``to_rest`` matrices (:func:`frame_references`): again the same function as the lab-frame
evaluation in exact arithmetic. (Boosting only the particles would evaluate another function.)
"""

from __future__ import annotations

from typing import Any

import torch

from lgae_hep.lorentz import fourvec_to_irrep, irrep_to_fourvec

__all__ = ["MAX_GAMMA", "apply_boosts", "frame_references", "is_lorentz_equivariant",
           "rest_frame_boosts", "to_lab"]

#: Largest Lorentz factor of the boost to a jet's rest frame (2^10, the same scale as the
#: mass-resolution threshold ``m <= 2^-10 E`` of :func:`lgae_hep.nn.io.jet_mass`).
MAX_GAMMA = 1024.0

#: Latent irreps whose lab-frame components :func:`to_lab` can restore: scalars are invariant,
#: 4-vectors are boosted as Cartesian vectors.
_SUPPORTED_LATENT = {(0, 0), (1, 1)}


def is_lorentz_equivariant(model: Any) -> bool:
    """Whether the engine may evaluate ``model`` in each jet's rest frame: an LGAE whose latent
    holds only scalars and 4-vectors (the irreps :func:`to_lab` restores). An LGAE with
    reference vectors qualifies too, given its references in that frame
    (:func:`frame_references`)."""
    from lgae_hep.models import LGAE

    if not isinstance(model, LGAE):
        return False
    return set(getattr(model, "tau_latent", {})) <= _SUPPORTED_LATENT


def frame_references(model: Any, boosts: torch.Tensor | None, batch_size: int
                     ) -> torch.Tensor | None:
    """The reference vectors to pass as ``model(..., references=)``, or None.

    None for a model without reference vectors (``getattr(model, "references", ())`` empty:
    then nothing is passed and the call is what it always was). Otherwise (``batch_size``, R,
    4) in the model's dtype: for the first ``len(boosts)`` jets the model's lab references
    ``model.ref_lab`` (R, 4) transformed by that jet's matrix in float64 (``boosts``: the
    ``to_rest`` matrices of :func:`rest_frame_boosts`, or None for a lab-frame evaluation),
    for the remaining (padding) jets of the batch the lab references.
    """
    if not getattr(model, "references", ()):
        return None
    lab = model.ref_lab.to(torch.float64)
    refs = lab.expand(batch_size, *lab.shape).clone()
    if boosts is not None:
        k = boosts.shape[0]
        refs[:k] = apply_boosts(boosts, refs[:k])
    return refs.to(model.ref_lab.dtype)


def rest_frame_boosts(p4: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure boosts to each jet's rest frame and back, float64 ``(B, 4, 4)`` each.

    ``p4`` (B, N, 4) in (E, px, py, pz), ``mask`` (B, N). The jet momentum ``P`` is the sum of
    the masked particles; ``to_rest @ P = (m, 0, 0, 0)`` for ``E / m <= MAX_GAMMA``, and
    ``to_lab`` is its inverse (the boost with the opposite velocity). Empty jets get the
    identity. Columns act on column 4-vectors: ``p' = L @ p``.
    """
    p = p4.to(torch.float64) * mask.unsqueeze(-1)
    tot = p.sum(1)  # (B, 4)
    energy, mom = tot[:, 0], tot[:, 1:]
    m2 = energy * energy - (mom * mom).sum(1)
    m = torch.sqrt(torch.clamp(m2, min=0.0))
    # the smallest mass that keeps gamma = E / m <= MAX_GAMMA (E > 0 for a physical jet)
    m = torch.maximum(m, energy / MAX_GAMMA)
    empty = ~(energy > 0)
    m = torch.where(empty, torch.ones_like(m), m)
    gamma = torch.where(empty, torch.ones_like(m), energy / m)
    bg = torch.where(empty.unsqueeze(-1), torch.zeros_like(mom), mom / m.unsqueeze(-1))
    eye = torch.eye(3, dtype=torch.float64, device=p.device)
    spatial = eye + bg.unsqueeze(-1) * bg.unsqueeze(-2) / (1.0 + gamma)[:, None, None]
    to_rest = torch.empty((p.shape[0], 4, 4), dtype=torch.float64, device=p.device)
    to_rest[:, 0, 0] = gamma
    to_rest[:, 1:, 1:] = spatial
    to_lab = to_rest.clone()
    to_rest[:, 0, 1:] = -bg
    to_rest[:, 1:, 0] = -bg
    to_lab[:, 0, 1:] = bg
    to_lab[:, 1:, 0] = bg
    return to_rest, to_lab


def apply_boosts(boosts: torch.Tensor, p4: torch.Tensor) -> torch.Tensor:
    """``L_b @ p`` for every jet ``b`` and 4-vector ``p`` of ``p4`` (B, ..., 4), in float64
    (complex inputs: real and imaginary parts separately, since ``L`` is real)."""
    b = boosts.to(p4.device)
    if p4.is_complex():
        b = b.to(torch.complex128)
        x = p4.to(torch.complex128)
    else:
        x = p4.to(torch.float64)
    shape = x.shape
    flat = x.reshape(shape[0], -1, 4)
    return torch.einsum("bij,bnj->bni", b, flat).reshape(shape)


def to_lab(boosts: torch.Tensor, out: Any) -> Any:
    """Boost the covariant parts of an autoencoder output back to the lab frame (float64).

    ``boosts``: the ``to_lab`` matrices of :func:`rest_frame_boosts`. Transformed: ``p4``,
    the per-jet-unit ``features`` / ``input_features`` of a mass-normalised LGAE (Cartesian
    4-vectors), and the latent 4-vectors ``(1, 1)`` (through the Cartesian basis); latent
    scalars, the mask and reconstructed scalars are invariant. Returns a new output object.
    """
    import dataclasses

    latent = {}
    for rep, z in out.latent.items():
        if tuple(rep) == (1, 1):
            latent[rep] = fourvec_to_irrep(apply_boosts(boosts, irrep_to_fourvec(
                z.to(torch.complex128))))
        else:
            latent[rep] = z
    changes: dict[str, Any] = {"latent": latent, "p4": apply_boosts(boosts, out.p4)}
    for name in ("features", "input_features"):
        v = getattr(out, name, None)
        if v is not None and v.shape[-1] == 4:
            changes[name] = apply_boosts(boosts, v)
    return dataclasses.replace(out, **changes)


def lab_light_cone(model: Any, p4: torch.Tensor) -> torch.Tensor:
    """For a model whose decoder emits massless particles (``output="lightlike"``, see
    :func:`lgae_hep.models.lgae.light_cone_projection`): its float64 lab-frame outputs with the
    energy set to ``sqrt((px^2 + py^2) + pz^2)`` (times ``1 + 4 u``); ``output="massive"``:
    the energy raised to that where it is below; any other model: ``p4`` unchanged.

    The model projects in the frame it runs in (the jet's rest frame); the boost back to the
    lab rounds E and |p| separately, which leaves about half of the massless particles a few
    ulp outside the light cone (E < |p|). The projection commutes with the boost, so applying
    it once more in the lab changes E by rounding only. E is then raised by a margin of
    ``4 u`` (float64): any other evaluation of |p| (another order of the three squares, numpy
    or torch) is within ``2 u`` of this one, so ``E >= |p|`` holds whoever checks it. The
    particles get a mass of ``E sqrt(8 u)`` ~ 3e-8 E (3 keV for a 100 GeV particle).
    """
    output = getattr(model, "output", "free")
    if output not in ("lightlike", "massive"):
        return p4
    p = p4.to(torch.float64).clone()
    pabs = torch.sqrt((p[..., 1] * p[..., 1] + p[..., 2] * p[..., 2]) + p[..., 3] * p[..., 3])
    floor = pabs * (1.0 + 4 * torch.finfo(torch.float64).eps / 2)
    # "massive" (p^2 = m^2 >= 0): the boosted energy, raised to the floor only where a
    # (near-)massless particle's rounding put it below
    p[..., 0] = floor if output == "lightlike" else torch.maximum(p[..., 0], floor)
    return p
