"""What a training run feeds the network and what it minimises.

* :func:`prepare_data`: jets (awkward, ``JetTensors`` or tensors) -> padded training tensors,
  invalid jets dropped with one warning that counts them;
* :func:`per_jet_loss` / :func:`jet_losses`: the per-jet training loss (``"chamfer"``,
  ``"mse"`` or ``"chamfer-dr"``, see :mod:`lgae_hep.train`), which is also the model's natural
  anomaly score. The model says what is compared (``loss_features`` / ``loss_p4_scale``), so
  no architecture is named here.

* :class:`AuxHead` / :func:`latent_invariants` / :func:`substructure_targets`: the optional
  auxiliary objective of :func:`lgae_hep.train.fit` (``aux_weight > 0``): a small MLP on the
  latent's Lorentz invariants that predicts per-jet targets (by default the jet's own
  standardised log m, tau21, tau32, log D2), trained jointly with the reconstruction so that
  the latent carries the jet's substructure explicitly (issue 21.3). It is a training-time
  module: the model's forward outputs, parameters and model file are those of a model trained
  without it; the head is stored beside the model in the checkpoints' ``extra["aux_head"]``.

``"chamfer-dr"`` is a loss that sees angles: the pT-weighted angular Chamfer distance
(:func:`lgae_hep.losses.chamfer_dr`, in the lab frame, dimensionless) plus
:data:`MOMENTUM_WEIGHT` times the squared Euclidean distance between the reconstructed and the
input jet 4-momentum, relative to the input jet energy squared. The second term closes the
loophole of the angular distance alone, whose reconstruction-side term is weighted by the
reconstructed pT and so shrinks as the network shrinks its output: the jet's 4-momentum must
be conserved.
"""

from __future__ import annotations

import warnings
from typing import Any

import awkward as ak
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import unwrap_model
from .data import DEFAULT_NUM_PARTICLES, to_tensors
from .losses import chamfer, chamfer_dr, mse, pairwise_sqdist
from .scoring.aux_head import AUX_TARGETS, AuxHead, latent_invariants

__all__ = ["AUX_TARGETS", "LOSSES", "AuxHead", "aux_loss", "forward_model", "jet_losses",
           "jet_mass_term", "jet_momentum_term", "latent_invariants", "model_dtype",
           "per_jet_loss", "prepare_data", "substructure_targets"]

#: training losses (see :mod:`lgae_hep.train` and the module docstring)
LOSSES = ("chamfer", "mse", "chamfer-dr")
#: weight of the jet 4-momentum conservation term of the ``"chamfer-dr"`` loss: both terms are
#: dimensionless and O(0.1) for a trained model, so they count alike
MOMENTUM_WEIGHT = 1.0
#: the jet-mass term's floor of the squared mass, relative to the jet energy squared: keeps the
#: relative error finite for (rare) near-massless jets, m^2 >= 1e-4 E^2 (10 GeV at 1 TeV)
MASS_FLOOR = 1e-4


def _to_torch(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise ValueError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def prepare_data(
    data: Any,
    num_particles: int,
    *,
    name: str = "train",
    dtype: torch.dtype = torch.float32,
    warn: bool = True,
    model: nn.Module | None = None,
    return_kept: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Bring a training sample to ``(p4, mask, scalars)`` CPU tensors with invalid jets dropped.

    Parameters
    ----------
    data : JetTensors, tuple or awkward array
        ``JetTensors`` (its ``valid`` flags are honoured), ``(p4, mask)`` or
        ``(p4, mask, scalars)`` tensors / numpy arrays, or awkward jets of Lorentz vectors with
        any outer structure (converted with ``to_tensors(..., on_invalid="flag")``).
    num_particles : int
        Particle slots of the model: inputs are truncated (they are pT-sorted) or zero-padded.
    name : str
        Used in messages ("train", "val").
    dtype : torch.dtype
        Floating dtype of the returned ``p4`` / ``scalars``.
    warn : bool
        Emit the one warning counting dropped invalid jets.
    model : torch.nn.Module, optional
        The model to be trained: jets it cannot normalise (``model.unnormalizable``, e.g. a
        mass-normalised LGAE and a jet whose mass is not resolved) are dropped too, with one
        warning counting them.
    return_kept : bool
        Also return ``kept``: bool (B_in,) over the input jets, True for those returned (in
        order), so that per-jet data such as auxiliary targets can be aligned.

    Returns
    -------
    p4 (B, num_particles, 4), mask (B, num_particles), scalars (B, num_particles, S) or None
    [, kept (B_in,) bool when ``return_kept``].

    Raises
    ------
    ValueError
        Wrong types or shapes, no jets, or no real particle in the whole sample.
    """
    valid = None
    if hasattr(data, "p4") and hasattr(data, "mask") and hasattr(data, "valid"):
        p4, mask, scalars, valid = data.p4, data.mask, data.scalars, data.valid
    elif isinstance(data, tuple | list) and len(data) in (2, 3) and not hasattr(data, "layout"):
        p4, mask = data[0], data[1]
        scalars = data[2] if len(data) == 3 else None
    elif isinstance(data, ak.Array):
        jt = to_tensors(data, num_particles, backend="torch", on_invalid="flag")
        p4, mask, scalars, valid = jt.p4, jt.mask, jt.scalars, jt.valid
    else:
        raise ValueError(
            f"{name} data must be JetTensors, a (p4, mask[, scalars]) tuple or an awkward "
            f"array of jets, got {type(data).__name__}"
        )
    p4 = _to_torch(p4, f"{name} p4")
    mask = _to_torch(mask, f"{name} mask")
    if p4.ndim != 3 or p4.shape[-1] != 4 or not p4.is_floating_point():
        raise ValueError(
            f"{name} p4 must be a float array of shape (B, N, 4) in (E, px, py, pz) GeV, "
            f"got {tuple(p4.shape)} {p4.dtype}"
        )
    if mask.dtype != torch.bool or tuple(mask.shape) != tuple(p4.shape[:2]):
        raise ValueError(
            f"{name} mask must be bool of shape {tuple(p4.shape[:2])}, "
            f"got {tuple(mask.shape)} {mask.dtype}"
        )
    if scalars is not None:
        scalars = _to_torch(scalars, f"{name} scalars")
        if scalars.ndim != 3 or tuple(scalars.shape[:2]) != tuple(p4.shape[:2]):
            raise ValueError(
                f"{name} scalars must have shape (B, N, S) with (B, N) = {tuple(p4.shape[:2])}, "
                f"got {tuple(scalars.shape)}"
            )
    if p4.shape[0] == 0:
        raise ValueError(f"{name} sample is empty (0 jets): nothing to train on")
    # bad-input policy: drop flagged jets (and jets with non-finite real particles)
    keep = torch.ones(p4.shape[0], dtype=torch.bool)
    if valid is not None:
        keep &= _to_torch(valid, f"{name} valid").to(torch.bool).reshape(-1)
    finite = torch.isfinite(p4).all(-1) | ~mask
    keep &= finite.all(-1)
    kept = keep.clone()
    n_bad = int((~keep).sum())
    if n_bad:
        if warn:
            warnings.warn(
                f"{name}: dropped {n_bad} of {p4.shape[0]} jets flagged invalid (non-finite, "
                "negative-energy or unphysical momenta; project-wide bad-input policy)",
                RuntimeWarning,
                stacklevel=3,
            )
        p4, mask = p4[keep], mask[keep]
        scalars = scalars[keep] if scalars is not None else None
    if p4.shape[0] == 0:
        raise ValueError(f"{name} sample has no valid jets ({n_bad} jets were flagged invalid)")
    n = p4.shape[1]
    if n > num_particles:  # inputs are pT-sorted: keep the hardest
        p4, mask = p4[:, :num_particles], mask[:, :num_particles]
        scalars = scalars[:, :num_particles] if scalars is not None else None
    elif n < num_particles:
        pad = num_particles - n
        p4 = nn.functional.pad(p4, (0, 0, 0, pad))
        mask = nn.functional.pad(mask, (0, pad), value=False)
        scalars = nn.functional.pad(scalars, (0, 0, 0, pad)) if scalars is not None else None
    if not bool(mask.any()):
        raise ValueError(
            f"{name} sample has {p4.shape[0]} jets but no real particle (all padding): "
            "nothing to train on"
        )
    p4 = torch.where(mask.unsqueeze(-1), p4, torch.zeros((), dtype=p4.dtype)).to(dtype)
    if scalars is not None:
        scalars = torch.where(mask.unsqueeze(-1), scalars, torch.zeros((), dtype=scalars.dtype))
        scalars = scalars.to(dtype)
    unnormalizable = getattr(unwrap_model(model), "unnormalizable", None) if model else None
    if unnormalizable is not None:
        drop = unnormalizable(p4, mask).cpu()
        if bool(drop.any()):
            if warn:
                warnings.warn(
                    f"{name}: dropped {int(drop.sum())} of {p4.shape[0]} jets whose mass is not "
                    "resolved (m <= 2^-10 E): the model's mass normalisation is undefined "
                    "for them", RuntimeWarning, stacklevel=3)
            p4, mask = p4[~drop], mask[~drop]
            scalars = scalars[~drop] if scalars is not None else None
            kept[kept.clone()] = ~drop
            if p4.shape[0] == 0:
                raise ValueError(f"{name} sample has no jet the model can normalise")
    if return_kept:
        return p4.contiguous(), mask.contiguous(), scalars, kept
    return p4.contiguous(), mask.contiguous(), scalars


def _feature_chamfer(x: torch.Tensor, y: torch.Tensor, mx: torch.Tensor, my: torch.Tensor):
    """Per-jet masked Chamfer distance (sum convention) for features of any dimension."""
    if x.shape[-1] <= 4:
        pad = 4 - x.shape[-1]
        return chamfer(nn.functional.pad(x, (0, pad)), nn.functional.pad(y, (0, pad)), mx, my)
    d = pairwise_sqdist(x, y)
    inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
    pair = mx.unsqueeze(2) & my.unsqueeze(1)
    d = torch.where(pair, d, inf)
    a = torch.where(mx, d.min(2).values, torch.zeros((), dtype=d.dtype, device=d.device)).sum(1)
    b = torch.where(my, d.min(1).values, torch.zeros((), dtype=d.dtype, device=d.device)).sum(1)
    both_empty = ~mx.any(1) & ~my.any(1)
    return torch.where(both_empty, torch.zeros_like(a), a + b)


def jet_mass_term(reco: torch.Tensor, p4: torch.Tensor, mask_reco: torch.Tensor,
                  mask: torch.Tensor) -> torch.Tensor:
    """Squared relative jet-mass error per jet (B,), the optional term of :func:`per_jet_loss`.

    ``((m_reco^2 - m^2) / (2 m_floor^2))^2`` with ``m_floor^2 = max(m^2, MASS_FLOOR E^2)`` of the
    input jet: to first order the squared relative error of the mass itself,
    ``(delta m / m)^2``, and defined for a reconstruction of any sign of ``m_reco^2`` (a free
    decoder's spacelike sum included). The jet sums are formed in float64: ``m^2 = E^2 - |p|^2``
    cancels ~``log10(E^2 / m^2)`` ~ 2-3 digits of a boosted jet's float32 energy.
    """
    f64 = torch.float64
    zero = torch.zeros((), dtype=f64, device=p4.device)
    jet_in = torch.where(mask.unsqueeze(-1), p4.to(f64), zero).sum(1)
    jet_out = torch.where(mask_reco.unsqueeze(-1), reco.to(f64), zero).sum(1)
    m2_in = jet_in[:, 0] ** 2 - (jet_in[:, 1:] ** 2).sum(-1)
    m2_out = jet_out[:, 0] ** 2 - (jet_out[:, 1:] ** 2).sum(-1)
    floor = torch.maximum(m2_in, MASS_FLOOR * jet_in[:, 0] ** 2).clamp_min(torch.finfo(f64).tiny)
    return (((m2_out - m2_in) / (2.0 * floor)) ** 2).to(p4.dtype)


def jet_momentum_term(reco: torch.Tensor, p4: torch.Tensor, mask_reco: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
    """``|P_reco - P|^2 / E^2`` per jet (B,): the squared Euclidean distance of the
    reconstructed and the input jet 4-momentum relative to the input jet energy (the
    conservation term of ``"chamfer-dr"``, and the optional term of :func:`per_jet_loss`)."""
    zero = torch.zeros((), dtype=p4.dtype, device=p4.device)
    jet_in = torch.where(mask.unsqueeze(-1), p4, zero).sum(1)
    jet_out = torch.where(mask_reco.unsqueeze(-1), reco.to(p4.dtype), zero).sum(1)
    e2 = (jet_in[:, 0] ** 2).clamp_min(torch.finfo(p4.dtype).tiny)
    return ((jet_out - jet_in) ** 2).sum(-1) / e2


def per_jet_loss(
    model: nn.Module, out: Any, p4: torch.Tensor, mask: torch.Tensor, loss: str,
    mass_weight: float = 0.0, momentum_weight: float = 0.0,
) -> torch.Tensor:
    """Per-jet training loss (B,) for a model output (see the module docstring).

    The model says what is compared: ``loss_features(out)`` (e.g. the GNNAE's relative
    coordinates) or, when that is None, the 4-vectors times ``loss_p4_scale``. With
    ``mass_weight > 0`` the loss gains ``mass_weight x`` :func:`jet_mass_term` (the squared
    relative jet-mass error of the reconstructed 4-vectors in GeV, whatever the model's units),
    with ``momentum_weight > 0`` ``momentum_weight x`` :func:`jet_momentum_term`.
    """
    base = _reconstruction_loss(model, out, p4, mask, loss)
    if mass_weight:
        base = base + float(mass_weight) * jet_mass_term(out.p4, p4, out.mask, mask)
    if momentum_weight:
        base = base + float(momentum_weight) * jet_momentum_term(out.p4, p4, out.mask, mask)
    return base


def _reconstruction_loss(
    model: nn.Module, out: Any, p4: torch.Tensor, mask: torch.Tensor, loss: str
) -> torch.Tensor:
    """:func:`per_jet_loss` without the jet-mass term."""
    bare = unwrap_model(model)
    if loss == "chamfer-dr":  # lab-frame angles and 4-momenta (GeV), whatever the model's units
        return angular_loss(out.p4, p4, out.mask, mask)
    features = bare.loss_features(out)
    if features is not None:
        x, y = features
        if loss == "mse":
            d = ((x - y) ** 2).sum(-1) * mask
            return d.sum(1) / mask.sum(1).clamp(min=1)
        return _feature_chamfer(x, y, out.mask, mask)
    s = bare.loss_p4_scale
    if loss == "mse":
        if tuple(out.p4.shape) != tuple(p4.shape):
            raise ValueError(
                f"loss='mse' needs an output with the input's shape {tuple(p4.shape)} "
                f"(order-preserving model), got {tuple(out.p4.shape)}; use loss='chamfer'"
            )
        return mse(out.p4 * s, p4 * s, mask)
    return chamfer(out.p4, p4, out.mask, mask, scale=s)


def angular_loss(reco: torch.Tensor, p4: torch.Tensor, mask_reco: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """The ``"chamfer-dr"`` training loss per jet (B,): angular Chamfer distance plus
    :data:`MOMENTUM_WEIGHT` x |P_reco - P_in|^2 / E_in^2 (module docstring)."""
    conservation = jet_momentum_term(reco, p4, mask_reco, mask)
    # padded slots hold (0, 0, 0, 0), where pT, eta and phi have infinite or undefined
    # gradients that would reach the network as NaN (0 * inf) although their values are
    # discarded: they get a harmless constant instead (no gradient at all)
    safe = torch.tensor([2.0, 1.0, 1.0, 0.0], dtype=reco.dtype, device=reco.device)
    reco = torch.where(mask_reco.unsqueeze(-1), reco, safe)
    return chamfer_dr(p4, reco, mask, mask_reco) + MOMENTUM_WEIGHT * conservation


def forward_model(model: nn.Module, p4, mask, scalars):
    return model(p4, mask, scalars) if scalars is not None else model(p4, mask)


def model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype if not p.is_complex() else torch.float32
    return torch.float32


@torch.no_grad()
def jet_losses(
    model: nn.Module,
    data: Any,
    *,
    loss: str = "chamfer",
    batch_size: int = 1024,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Per-jet loss of a model on a sample (the anomaly score of a trained autoencoder).

    Parameters
    ----------
    model : torch.nn.Module
        A trained LGAE / GNNAE.
    data : JetTensors, tuple or awkward array
        As in :func:`prepare_data`; invalid jets get NaN (with one warning counting them).
    loss : {"chamfer", "mse"}
        The loss the model was trained with.
    batch_size : int
        Jets per forward pass.
    device : optional
        Default: the model's device.
    progress : bool
        tqdm bar.

    Returns
    -------
    numpy.ndarray
        float64 (B,) per-jet loss, in the order of ``data``.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    bare = unwrap_model(model)
    n_part = int(bare.config.get("num_particles", DEFAULT_NUM_PARTICLES))
    dtype = model_dtype(bare)
    if not (hasattr(data, "valid") or isinstance(data, tuple | list)):
        data = to_tensors(data, n_part, backend="torch", on_invalid="flag")
    if hasattr(data, "valid"):
        tensors = (data.p4, data.mask) + ((data.scalars,) if data.scalars is not None else ())
        valid = _to_torch(data.valid, "valid").to(torch.bool).reshape(-1)
    else:
        tensors = tuple(_to_torch(t, "data") for t in data)
        if len(tensors) not in (2, 3) or tensors[0].ndim != 3:
            raise ValueError("data must be JetTensors, (p4, mask[, scalars]) or awkward jets")
        valid = (torch.isfinite(tensors[0]).all(-1) | ~tensors[1].to(torch.bool)).all(-1)
    tensors = tuple(_to_torch(t, "data") for t in tensors)
    n_jets = int(tensors[0].shape[0])
    n_bad = int((~valid).sum())
    if n_bad:
        warnings.warn(
            f"{n_bad} of {n_jets} jets flagged invalid get a NaN loss "
            "(project-wide bad-input policy)", RuntimeWarning, stacklevel=2,
        )
    out = np.full(n_jets, np.nan)
    if n_jets == n_bad:
        return out
    sel = tuple(t[valid] for t in tensors)
    p4, mask = sel[0].to(dtype), sel[1].to(torch.bool)
    scalars = sel[2].to(dtype) if len(sel) == 3 else None
    if p4.shape[1] > n_part:
        p4, mask = p4[:, :n_part], mask[:, :n_part]
        scalars = scalars[:, :n_part] if scalars is not None else None
    p4 = torch.where(mask.unsqueeze(-1), p4, torch.zeros((), dtype=dtype))
    dev = torch.device(device) if device is not None else next(bare.parameters()).device
    was_training = bare.training
    bare.eval()
    vals = []
    for i in tqdm(range(0, len(p4), batch_size), disable=not progress, desc="scoring",
                  unit="batch"):
        sl = slice(i, i + batch_size)
        pb, mb = p4[sl].to(dev), mask[sl].to(dev)
        sb = scalars[sl].to(dev) if scalars is not None else None
        o = forward_model(bare, pb, mb, sb)
        vals.append(per_jet_loss(bare, o, pb, mb, loss).double().cpu())
    bare.train(was_training)
    losses = torch.cat(vals)
    unnormalizable = getattr(bare, "unnormalizable", None)
    if unnormalizable is not None:
        unres = unnormalizable(p4, mask).cpu()
        if bool(unres.any()):
            warnings.warn(
                f"{int(unres.sum())} of {n_jets} jets whose mass is not resolved (m <= 2^-10 E) "
                "cannot be normalised by the model: their loss is NaN", RuntimeWarning,
                stacklevel=2)
            losses = torch.where(unres, torch.full_like(losses, float("nan")), losses)
    out[valid.numpy()] = losses.numpy()
    return out




# --------------------------------------------------------------------- auxiliary objective
# AUX_TARGETS (the default auxiliary targets of substructure_targets, in column order), AuxHead
# and latent_invariants live in lgae_hep.scoring.aux_head (the scoring engine uses the head)


def substructure_targets(obs: Any) -> np.ndarray:
    """Raw per-jet auxiliary targets (n, 4): log m [GeV], tau21, tau32, log D2 (beta 1).

    ``obs``: a mapping with ``mass``, ``tau21``, ``tau32``, ``d2`` arrays (what
    :func:`lgae_hep.metrics.yardsticks.jet_observables` returns), or awkward jets, whose
    observables are then computed with it. Undefined values (a jet with fewer particles than
    prongs, m = 0, D2 <= 0) are NaN: :func:`aux_loss` skips them entry by entry.
    """
    if not hasattr(obs, "keys") or "mass" not in obs:
        from .metrics.yardsticks import jet_observables

        obs = jet_observables(obs)
    with np.errstate(divide="ignore", invalid="ignore"):
        cols = [np.log(np.asarray(obs["mass"], dtype=np.float64)),
                np.asarray(obs["tau21"], dtype=np.float64),
                np.asarray(obs["tau32"], dtype=np.float64),
                np.log(np.asarray(obs["d2"], dtype=np.float64))]
    out = np.stack(cols, 1)
    out[~np.isfinite(out)] = np.nan
    return out


def aux_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-jet auxiliary loss (B,): mean squared error over the finite target entries
    (standardised units; a jet without any finite target contributes 0)."""
    ok = torch.isfinite(target)
    diff = torch.where(ok, pred - torch.where(ok, target, torch.zeros_like(target)),
                       torch.zeros_like(pred))
    return (diff ** 2).sum(1) / ok.sum(1).clamp(min=1).to(pred.dtype)
