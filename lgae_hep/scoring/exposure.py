"""The ``exposure`` score: a classifier head on the latent that tells QCD jets from synthetic
anomalies (outlier exposure; issue 21, deliverable 3).

A QCD density flags what is *rare* under QCD, and in every latent trained here two- and
three-prong jets sit where QCD is dense (docs/RESULTS.md, "inside the mass windows"). The
exposure head asks another question of the same latent: does this jet look like a QCD jet, or
like a QCD jet that was given one or two extra hard prongs at its own mass
(:func:`lgae_hep.contrastive.exposure_views`)? No signal sample, no signal mass and no signal
decay enter; the synthetic anomalies are built from the QCD training jets alone.

The head (:class:`ExposureHead`) sees only the latent's Lorentz invariants (the ``"gram"``
feature set of :func:`lgae_hep.density.invariant_features`: scalars and Minkowski products of
the latent 4-vectors) and ``log(m / GeV)``, so its score is Lorentz invariant when the encoder is
equivariant, and permutation invariant when the latent is (a ``mix`` aggregation mixes the
pT-ordered particle slots, as the research code's does). Each input is first mapped to a normal
score through its QCD quantiles (a monotone piecewise-linear map, :meth:`ExposureHead.
normal_scores`): the Gram products span orders of magnitude with heavy tails, and a network on
standardised values learns little from them. Then an MLP gives the logit of "synthetic anomaly",
the score (larger: more anomalous; never flipped).

The head is stored in the model file (``extra["exposure_head"]``) and evaluated in float64
(:func:`exposure_scores`), so the score is as reproducible as the float64 latent it is computed
from; :func:`exposure_errors` carries a latent error bound through it. It is fitted by
:func:`lgae_hep.exposure.fit_exposure_head`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lgae_hep.scoring.aux_head import TrainingHead, silu_mlp

__all__ = ["EXPOSURE_FEATURES", "ExposureHead", "exposure_errors", "exposure_inputs",
           "exposure_scores"]

#: the latent feature set the head sees (:func:`lgae_hep.density.invariant_features`)
EXPOSURE_FEATURES = "gram"


class ExposureHead(TrainingHead):
    """QCD-quantile normal scores of ``n_in`` inputs (the latent invariants, then ``log m``),
    then ``depth`` hidden SiLU layers of width ``hidden``, then one logit.

    ``knots`` (buffer, (n_in, n_quantiles)): each input's QCD quantiles at the levels
    ``(k + 0.5) / n_quantiles``, strictly increasing per row; ``names``: the input names, the
    feature columns in the order the latent gives them and ``"log_mass"`` last.
    """

    def __init__(self, n_in: int, hidden: int = 64, depth: int = 2, n_quantiles: int = 200,
                 knots: Any = None, names: Sequence[str] = (),
                 fit: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if n_in < 1 or hidden < 1 or depth < 1 or n_quantiles < 2:
            raise ValueError(f"ExposureHead needs n_in, hidden, depth >= 1 and n_quantiles >= 2; "
                             f"got {n_in}, {hidden}, {depth}, {n_quantiles}")
        names = [str(x) for x in names]
        if names and len(names) != n_in:
            raise ValueError(f"ExposureHead: {len(names)} input names for {n_in} inputs")
        self.config = {"n_in": int(n_in), "hidden": int(hidden), "depth": int(depth),
                       "n_quantiles": int(n_quantiles), "names": names,
                       "fit": dict(fit or {})}
        self.mlp = silu_mlp(n_in, hidden, depth, 1)
        k = (torch.linspace(-1.0, 1.0, n_quantiles).repeat(n_in, 1) if knots is None
             else torch.as_tensor(knots, dtype=torch.float64).clone())
        if k.shape != (n_in, n_quantiles):
            raise ValueError(f"ExposureHead: knots of shape {tuple(k.shape)}, expected "
                             f"({n_in}, {n_quantiles})")
        self.register_buffer("knots", k.to(torch.float64))

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> ExposureHead:
        return cls(cfg["n_in"], cfg["hidden"], cfg["depth"], cfg["n_quantiles"],
                   names=cfg.get("names", ()), fit=cfg.get("fit"))

    @classmethod
    def from_state(cls, state: Any) -> Any:
        head = super().from_state(state)
        knots = head.knots.numpy()
        if not (np.isfinite(knots).all() and (np.diff(knots, axis=1) > 0).all()):
            raise ValueError("exposure head: its quantile knots are not finite and strictly "
                             "increasing per input (a corrupt head)")
        return head

    def levels(self) -> np.ndarray:
        """The normal scores ``Phi^-1((k + 0.5) / n)`` of the knots (n,)."""
        from scipy.special import ndtri

        n = self.config["n_quantiles"]
        return ndtri((np.arange(n) + 0.5) / n)

    def normal_scores(self, x: np.ndarray) -> np.ndarray:
        """(B, n_in) float64 inputs -> their normal scores: linear between the knots, constant
        (the outermost level) beyond them."""
        x = np.asarray(x, dtype=np.float64)
        knots, lv = self.knots.numpy(), self.levels()
        return np.stack([np.interp(x[:, j], knots[j], lv) for j in range(x.shape[1])], 1)

    def logit(self, u: torch.Tensor) -> torch.Tensor:
        """The logit (B,) of normal scores ``u`` (B, n_in), in the head's dtype."""
        dt = next(self.mlp.parameters()).dtype
        return self.mlp(u.to(dt))[:, 0]


def exposure_inputs(head: ExposureHead | None, columns: Mapping[str, Any],
                    invariants: Sequence[str], mass: Any) -> tuple[np.ndarray, list[str]]:
    """The head's inputs ``(x (n, n_in) float64, names)``: the latent's ``"gram"`` features
    (:func:`lgae_hep.density.invariant_features` of what :func:`lgae_hep.inference.
    latent_columns` returns), then ``log(m / GeV)``. ``ValueError`` when the latent does not
    give ``head``'s inputs (a head fitted on another model); ``head=None`` checks nothing."""
    from lgae_hep.density import invariant_features

    feats = invariant_features(columns, invariants, EXPOSURE_FEATURES)
    names = [*feats, "log_mass"]
    if head is not None and (names != (head.config["names"] or names)
                             or len(names) != head.config["n_in"]):
        raise ValueError(f"the exposure head takes the inputs "
                         f"{head.config['names'] or head.config['n_in']}; this latent gives "
                         f"{names} (a head fitted on another model)")
    m = np.asarray(mass, dtype=np.float64).reshape(-1)
    logm = np.where(m > 0, np.log(np.where(m > 0, m, 1.0)), np.nan)  # NaN m: not > 0
    return np.stack([*(np.asarray(v, dtype=np.float64) for v in feats.values()), logm], 1), names


def exposure_scores(head: ExposureHead, columns: Mapping[str, Any], invariants: Sequence[str],
                    mass: Any) -> np.ndarray:
    """The ``exposure`` score (n,) float64: the head's logit of "synthetic anomaly". NaN where
    an input is NaN (e.g. an unresolved mass)."""
    x, _ = exposure_inputs(head, columns, invariants, mass)
    bad = ~np.isfinite(x).all(1)
    u = head.normal_scores(np.where(np.isfinite(x), x, 0.0))
    with torch.no_grad():
        s = head.logit(torch.from_numpy(u)).double().numpy()
    s[bad] = np.nan
    return s


def exposure_errors(head: ExposureHead, columns: Mapping[str, Any], invariants: Sequence[str],
                    mass: Any, rel: float, mass_rel: Any = 0.0) -> np.ndarray:
    """An absolute error bound (n,) of :func:`exposure_scores` when every latent component
    carries an error of at most ``rel`` times the jet's largest latent component ``A``
    (:func:`lgae_hep.precision.latent_rtol`) and the mass a relative error ``mass_rel`` (a
    number or one per jet).

    A latent input then moves by at most its :func:`lgae_hep.density.invariant_error`, and
    ``log m`` by ``mass_rel``. Each normal score is monotone in its input, so it moves by at most
    ``max(T(x + e) - T(x), T(x) - T(x - e))``, exactly. The logit moves by at most
    ``2 sum_j |d logit / d u_j| du_j``, the gradient by autograd in float64 at the jet's own
    inputs, the factor 2 for the curvature over the error interval (as
    :func:`lgae_hep.scoring.aux_head.aux_head_errors`).
    """
    from lgae_hep.density import invariant_error, largest_component

    x, names = exposure_inputs(head, columns, invariants, mass)
    a = largest_component(columns)
    e = np.stack([*(invariant_error(f, a, rel) for f in names[:-1]),
                  np.broadcast_to(np.asarray(mass_rel, dtype=np.float64), (len(x),))], 1)
    xf = np.where(np.isfinite(x), x, 0.0)
    u = head.normal_scores(xf)
    du = np.maximum(head.normal_scores(xf + e) - u, u - head.normal_scores(xf - e))
    ut = torch.from_numpy(u).requires_grad_(True)
    (g,) = torch.autograd.grad(head.logit(ut).sum(), ut)
    out = 2.0 * (g.abs().double().numpy() * du).sum(1)
    out[~np.isfinite(x).all(1)] = np.nan
    return out
