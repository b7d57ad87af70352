"""Reconstruction losses and anomaly scores on particle clouds of 4-vectors.

All functions work jet by jet: the value for one jet never depends on which other jets share
its batch (no cross-jet terms, no batch-level normalisation).

Point distance
--------------
Every loss here compares two particles ``a`` and ``b`` with the **squared Euclidean distance of
their Cartesian 4-vectors** ``d(a, b) = sum_mu (a_mu - b_mu)^2`` over ``(E, px, py, pz)``, in the
units of the inputs (GeV for the public API; a model may pass its scaled units, see ``scale``).
The Minkowski square is not used because it is not positive definite (two different light-like
momenta can be at "distance" zero). This is the Cartesian 4-vector Chamfer loss of the LGAE paper
(Hao et al. 2022). The differences are formed explicitly (no ``|a|^2 + |b|^2 - 2 a.b``
expansion), so the distance is exactly symmetric and exactly zero for identical particles, and
there is no cancellation in float32 for TeV-scale momenta.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

__all__ = [
    "chamfer",
    "chamfer_dr",
    "hungarian_match",
    "hungarian_mse",
    "mse",
    "pairwise_sqdist",
]

Reduction = Literal["none", "mean", "sum"]
PointReduction = Literal["sum", "mean"]


def _as_tensor(name: str, x) -> tuple[torch.Tensor, bool]:
    was_numpy = isinstance(x, np.ndarray)
    if was_numpy:
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    return x, was_numpy


def _check_cloud(name: str, x: torch.Tensor, mask_name: str, mask, batch: int | None = None):
    if x.ndim != 3 or x.shape[-1] != 4:
        raise ValueError(
            f"{name} must have shape (B, N, 4) with (E, px, py, pz) last, got {tuple(x.shape)}"
        )
    if not (x.is_floating_point()):
        raise ValueError(f"{name} must be a floating-point array, got dtype {x.dtype}")
    if batch is not None and x.shape[0] != batch:
        raise ValueError(
            f"{name} has batch size {x.shape[0]}, expected {batch} (as the first cloud)"
        )
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    mask, _ = _as_tensor(mask_name, mask)
    if mask.dtype != torch.bool:
        raise ValueError(f"{mask_name} must be a boolean array, got dtype {mask.dtype}")
    if tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"{mask_name} must have shape {tuple(x.shape[:2])} (B, N of {name}), "
            f"got {tuple(mask.shape)}"
        )
    return mask.to(x.device)


def _reduce(per_jet: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per_jet
    if reduction == "mean":
        return per_jet.mean()
    if reduction == "sum":
        return per_jet.sum()
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def _check_point_reduction(point_reduction: str) -> None:
    if point_reduction not in ("sum", "mean"):
        raise ValueError(f"point_reduction must be 'sum' or 'mean', got {point_reduction!r}")


def pairwise_sqdist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between all particles of two batched clouds.

    Parameters
    ----------
    x, y : torch.Tensor
        Shapes (B, N, 4) and (B, M, 4).

    Returns
    -------
    torch.Tensor
        (B, N, M) with ``d[b, i, j] = sum_mu (x[b, i, mu] - y[b, j, mu])^2``, formed from explicit
        differences (exactly symmetric, exactly zero for equal points).
    """
    diff = x.unsqueeze(2) - y.unsqueeze(1)
    return (diff * diff).sum(-1)


def chamfer(
    x,
    y,
    mask_x=None,
    mask_y=None,
    reduction: Reduction = "none",
    *,
    point_reduction: PointReduction = "sum",
    scale: float = 1.0,
):
    r"""Masked Chamfer distance between two batches of particle clouds, one value per jet.

    .. math::
        CD(X, Y) = \sum_{x \in X} \min_{y \in Y} d(x, y) + \sum_{y \in Y} \min_{x \in X} d(x, y)

    with ``d`` the squared Euclidean distance of the 4-vectors (module docstring). With
    ``point_reduction="mean"`` each sum is divided by the number of particles in its cloud.
    Padded particles (mask False) are neither matched nor matched against.

    Parameters
    ----------
    x, y : torch.Tensor or numpy.ndarray
        Clouds of shape (B, N, 4) and (B, M, 4), ``(E, px, py, pz)``; N and M may differ.
    mask_x, mask_y : bool arrays (B, N) / (B, M), optional
        True for real particles; None means all particles are real.
    reduction : {"none", "mean", "sum"}
        "none" returns the per-jet values (B,); "mean"/"sum" reduce over the batch.
    point_reduction : {"sum", "mean"}
        Sum (the paper's convention, default) or average over the particles of each cloud.
    scale : float
        The clouds are multiplied by ``scale`` before distances are taken (e.g. 1e-3 for TeV);
        the result scales with ``scale**2``.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        Per-jet distance (B,) (or a scalar after reduction); numpy in, numpy out.
        Two empty clouds give 0.0. If exactly one of the two clouds of a jet is empty there is
        nothing to match its particles to and the value is ``+inf`` for that jet.

    Raises
    ------
    ValueError
        On wrong shapes, non-boolean masks, mismatched batch sizes or an unknown reduction.
    """
    x, x_np = _as_tensor("x", x)
    y, y_np = _as_tensor("y", y)
    mask_x = _check_cloud("x", x, "mask_x", mask_x)
    mask_y = _check_cloud("y", y, "mask_y", mask_y, batch=x.shape[0])
    _check_point_reduction(point_reduction)
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    if y.dtype != x.dtype:
        y = y.to(x.dtype)
    if scale != 1.0:
        x = x * scale
        y = y * scale

    d = pairwise_sqdist(x, y)  # (B, N, M)
    inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
    pair_ok = mask_x.unsqueeze(2) & mask_y.unsqueeze(1)
    d = torch.where(pair_ok, d, inf)
    zero = torch.zeros((), dtype=d.dtype, device=d.device)
    # nearest y for every x (inf if y is empty), zeroed where x is padding
    dx = torch.where(mask_x, d.amin(dim=2) if d.shape[2] else inf.expand(mask_x.shape), zero)
    dy = torch.where(mask_y, d.amin(dim=1) if d.shape[1] else inf.expand(mask_y.shape), zero)
    sx, sy = dx.sum(1), dy.sum(1)
    if point_reduction == "mean":
        nx = mask_x.sum(1).clamp(min=1).to(d.dtype)
        ny = mask_y.sum(1).clamp(min=1).to(d.dtype)
        sx, sy = sx / nx, sy / ny
    out = sx + sy
    # exactly one empty cloud: nothing to match -> inf (the sums above may miss it
    # when the non-empty side is the one whose mins are all inf; make it explicit)
    nxx, nyy = mask_x.sum(1), mask_y.sum(1)
    one_empty = (nxx == 0) ^ (nyy == 0)
    out = torch.where(one_empty, inf, out)
    out = _reduce(out, reduction)
    return out.detach().cpu().numpy() if (x_np and y_np) else out


def _pt_eta_phi(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Transverse momentum, pseudorapidity and azimuth of (..., 4) ``(E, px, py, pz)``.

    A particle with pT = 0 gets eta = asinh(pz / tiny), i.e. a large |eta| of the sign of pz
    (0 for pz = 0), and phi = 0: finite, far from any real particle in angle, and its pT weight
    in :func:`chamfer_dr` is zero.
    """
    px, py, pz = x[..., 1], x[..., 2], x[..., 3]
    pt = torch.hypot(px, py)
    tiny = torch.finfo(x.dtype).tiny
    eta = torch.asinh(pz / pt.clamp_min(tiny))
    phi = torch.atan2(py, px)
    return pt, eta, phi


def chamfer_dr(x, y, mask_x=None, mask_y=None, reduction: Reduction = "none"):
    r"""pT-weighted angular Chamfer distance between a jet ``x`` and its reconstruction ``y``.

    .. math::
        CD_{\Delta R}(X, Y) = \sum_{i \in X} z_i \min_{j \in Y} \Delta R_{ij}
                            + \sum_{j \in Y} z'_j \min_{i \in X} \Delta R_{ij},
        \qquad z_i = p_{T,i} / \sum_{k \in X} p_{T,k}, \quad
        z'_j = p_{T,j} / \sum_{k \in X} p_{T,k}

    with :math:`\Delta R_{ij}^2 = \Delta\eta^2 + \Delta\phi^2` (azimuth wrapped to
    :math:`[-\pi, \pi)`). Directions (eta, phi) and pT are those of the velocity
    :math:`\vec p / E`: identical to the momentum's for every physical particle, and for a
    negative-energy 4-vector :math:`-p` (which autoencoder outputs can be; the LGAE's decoder
    is not constrained to E > 0) the direction of :math:`+p`, the Feynman-Stueckelberg reading
    of a negative-energy state. Without this, an output :math:`-p` lands at the antipode
    :math:`(-\eta, \phi + \pi)` and dominates the score of a jet whose reconstruction is
    otherwise close (``docs/RESULTS.md``); the Cartesian :func:`chamfer` still sees the sign.
    Both weights are fractions of the **input** jet's scalar pT sum, so the
    value is dimensionless and reconstructed pT put at the wrong angles costs in proportion to
    its size (an angularly perfect reconstruction scores 0 whatever its pT scale: this metric
    measures where the energy goes, the Cartesian :func:`chamfer` measures how much).
    This is the Chamfer distance in the JetNet relative coordinates
    (:math:`\eta_{rel}, \phi_{rel}`) with each particle counted by its momentum fraction, the
    energy weighting of the energy mover's distance: it measures whether the reconstruction
    puts the jet's energy where the jet has it (prong structure), and is insensitive to soft
    particles. It is invariant under rotations about the beam axis, a common rescaling of both
    clouds and, for massless particles, boosts along the beam (pseudorapidity is used, not
    rapidity, because network outputs need not satisfy E >= |pz|; for massive particles
    pseudorapidity differences change with such a boost at order (m / pT)^2). It is not
    invariant under general Lorentz transformations (neither is the Cartesian :func:`chamfer`).

    It is not a training loss of the paper; it is offered as an anomaly score
    (``lgae_hep.score(..., metric="chamfer-dr")``) because it separates multi-prong jets from
    QCD better than the Cartesian Chamfer distance in GeV^2, whose value is dominated by
    the absolute momentum of the hardest particles (see ``docs/RESULTS.md``).

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        The input jets (B, N, 4), ``(E, px, py, pz)``; defines the weights' normalisation.
    y : torch.Tensor or numpy.ndarray
        The reconstructions (B, M, 4).
    mask_x, mask_y : bool arrays (B, N) / (B, M), optional
        True for real particles; None means all are real.
    reduction : {"none", "mean", "sum"}
        As in :func:`chamfer`.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        Per-jet value (B,) (numpy in, numpy out). Two empty clouds give 0.0; exactly one empty
        cloud gives ``+inf``; an input whose particles all have pT = 0 (no transverse momentum
        to weight with) gives NaN.

    Raises
    ------
    ValueError
        As :func:`chamfer`.
    """
    x, x_np = _as_tensor("x", x)
    y, y_np = _as_tensor("y", y)
    mask_x = _check_cloud("x", x, "mask_x", mask_x)
    mask_y = _check_cloud("y", y, "mask_y", mask_y, batch=x.shape[0])
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    if y.dtype != x.dtype:
        y = y.to(x.dtype)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    inf = torch.tensor(float("inf"), dtype=x.dtype, device=x.device)
    # direction of flight p / E: a (network-made) negative-energy 4-vector -p counts along +p
    x = torch.where(x[..., :1] < 0, -x, x)
    y = torch.where(y[..., :1] < 0, -y, y)
    pt_x, eta_x, phi_x = _pt_eta_phi(x)
    pt_y, eta_y, phi_y = _pt_eta_phi(y)
    pt_x = torch.where(mask_x, pt_x, zero)
    pt_y = torch.where(mask_y, pt_y, zero)
    deta = eta_x.unsqueeze(2) - eta_y.unsqueeze(1)
    dphi = torch.remainder(phi_x.unsqueeze(2) - phi_y.unsqueeze(1) + torch.pi, 2 * torch.pi)
    dphi = dphi - torch.pi
    pair_ok = mask_x.unsqueeze(2) & mask_y.unsqueeze(1)
    # sqrt is only taken of positive numbers: its gradient at 0 is infinite and turns into
    # NaN (inf * 0) in training, both for padded pairs (whose value is discarded) and for
    # pairs in exactly the same direction (a one-particle jet: an equivariant network's only
    # covariant output is parallel to the input); such pairs are at distance exactly 0
    d2 = deta * deta + dphi * dphi
    pos = pair_ok & (d2 > 0)
    dr = torch.where(pos, torch.sqrt(torch.where(pos, d2, torch.ones_like(d2))), zero)
    dr = torch.where(pair_ok, dr, inf)  # (B, N, M)
    near_x = dr.amin(dim=2) if dr.shape[2] else inf.expand(mask_x.shape)
    near_y = dr.amin(dim=1) if dr.shape[1] else inf.expand(mask_y.shape)
    # pT weights: 0 * inf must not turn a padded or pT = 0 particle into NaN, neither in the
    # value nor in its gradient (inf * 0 in the backward pass of the product): the distances
    # of such particles are replaced before they are multiplied
    use_x, use_y = mask_x & (pt_x > 0), mask_y & (pt_y > 0)
    tx = (pt_x * torch.where(use_x, near_x, zero)).sum(1)
    ty = (pt_y * torch.where(use_y, near_y, zero)).sum(1)
    total = pt_x.sum(1)
    nx, ny = mask_x.sum(1), mask_y.sum(1)
    out = (tx + ty) / total
    out = torch.where((nx == 0) & (ny == 0), zero, out)
    out = torch.where((nx == 0) ^ (ny == 0), inf, out)
    out = torch.where((nx > 0) & (ny > 0) & (total <= 0), torch.full_like(out, float("nan")), out)
    out = _reduce(out, reduction)
    return out.detach().cpu().numpy() if (x_np and y_np) else out


def mse(
    x, y, mask=None, reduction: Reduction = "none", *, point_reduction: PointReduction = "mean"
):
    """Per-jet order-preserving squared error: particle i of ``x`` against particle i of ``y``.

    For models whose output keeps the input order (e.g. ``mix`` aggregation). The per-particle
    error is the squared Euclidean distance of the 4-vectors; it is averaged (default) or summed
    over the real particles of each jet. Jets without particles give 0.0.

    Parameters
    ----------
    x, y : torch.Tensor or numpy.ndarray
        (B, N, 4) each.
    mask : bool array (B, N), optional
        Particles that count; None means all.
    reduction, point_reduction
        As in :func:`chamfer` (note the default ``point_reduction="mean"`` here).

    Returns
    -------
    torch.Tensor or numpy.ndarray
        (B,) or scalar.
    """
    x, x_np = _as_tensor("x", x)
    y, y_np = _as_tensor("y", y)
    mask = _check_cloud("x", x, "mask", mask)
    _check_cloud("y", y, "mask", None, batch=x.shape[0])
    if y.shape != x.shape:
        raise ValueError(
            f"mse needs x and y of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    _check_point_reduction(point_reduction)
    diff = x - y.to(x.dtype)
    per = torch.where(mask, (diff * diff).sum(-1), torch.zeros((), dtype=x.dtype, device=x.device))
    out = per.sum(1)
    if point_reduction == "mean":
        out = out / mask.sum(1).clamp(min=1).to(x.dtype)
    out = _reduce(out, reduction)
    return out.detach().cpu().numpy() if (x_np and y_np) else out


def hungarian_match(x, y, mask_x=None, mask_y=None) -> np.ndarray:
    """Optimal one-to-one assignment of the particles of ``x`` to those of ``y``, per jet.

    Minimises the summed squared Euclidean 4-vector distance with
    :func:`scipy.optimize.linear_sum_assignment` (a loop over jets on the CPU; for evaluation,
    not for training).

    Parameters
    ----------
    x, y : torch.Tensor or numpy.ndarray
        (B, N, 4) and (B, M, 4).
    mask_x, mask_y : bool arrays, optional
        Real particles.

    Returns
    -------
    numpy.ndarray
        int64 (B, N): ``perm[b, i]`` is the index in ``y[b]`` matched to ``x[b, i]``, or -1 when
        ``x[b, i]`` is padding or left unmatched (when the two clouds have different multiplicities
        only ``min(n_x, n_y)`` pairs are formed).
    """
    from scipy.optimize import linear_sum_assignment

    x, _ = _as_tensor("x", x)
    y, _ = _as_tensor("y", y)
    mask_x = _check_cloud("x", x, "mask_x", mask_x)
    mask_y = _check_cloud("y", y, "mask_y", mask_y, batch=x.shape[0])
    d = pairwise_sqdist(x.detach().double(), y.detach().to(torch.float64)).cpu().numpy()
    mx, my = mask_x.cpu().numpy(), mask_y.cpu().numpy()
    perm = np.full(x.shape[:2], -1, dtype=np.int64)
    for b in range(x.shape[0]):
        ix, iy = np.flatnonzero(mx[b]), np.flatnonzero(my[b])
        if ix.size == 0 or iy.size == 0:
            continue
        rows, cols = linear_sum_assignment(d[b][np.ix_(ix, iy)])
        perm[b, ix[rows]] = iy[cols]
    return perm


def hungarian_mse(
    x, y, mask_x=None, mask_y=None, reduction: Reduction = "none",
    *, point_reduction: PointReduction = "mean",
):
    """Per-jet squared error after optimal (Hungarian) matching of particles.

    Matched pairs contribute their squared Euclidean 4-vector distance. When the multiplicities
    differ, each unmatched real particle is compared with a zero 4-vector (the JetNet
    zero-padding convention), i.e. contributes its squared norm. The sum is averaged over
    ``max(n_x, n_y)`` (``point_reduction="mean"``, default) or left as a sum. Two empty clouds
    give 0.0. Computed in float64 on the CPU; returns numpy (B,) (or a float after reduction).
    """
    x, _ = _as_tensor("x", x)
    y, _ = _as_tensor("y", y)
    mask_x = _check_cloud("x", x, "mask_x", mask_x)
    mask_y = _check_cloud("y", y, "mask_y", mask_y, batch=x.shape[0])
    _check_point_reduction(point_reduction)
    perm = hungarian_match(x, y, mask_x, mask_y)
    xn = x.detach().cpu().double().numpy()
    yn = y.detach().cpu().double().numpy()
    mx, my = mask_x.cpu().numpy(), mask_y.cpu().numpy()
    out = np.zeros(x.shape[0])
    for b in range(x.shape[0]):
        matched = perm[b] >= 0
        total = ((xn[b, matched] - yn[b, perm[b, matched]]) ** 2).sum()
        un_x = mx[b] & ~matched
        un_y = my[b].copy()
        un_y[perm[b, matched]] = False
        total += (xn[b, un_x] ** 2).sum() + (yn[b, un_y] ** 2).sum()
        if point_reduction == "mean":
            total /= max(int(mx[b].sum()), int(my[b].sum()), 1)
        out[b] = total
    if reduction == "none":
        return out
    if reduction == "mean":
        return float(out.mean())
    if reduction == "sum":
        return float(out.sum())
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
