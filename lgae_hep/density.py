"""Latent-density anomaly scores: a Gaussian mixture of QCD jets in a model's latent invariants.

An autoencoder's reconstruction error ranks jets by how hard they are to reconstruct, which is
mostly how *complex* they are (many prongs, much wide-angle radiation), whatever the kind of
jet. A density of background jets in the latent space asks a different question: how *unusual*
is this jet's encoding among QCD jets? :class:`LatentDensity` is that density.

Features
--------
Per jet: ``log m`` (the jet mass in GeV of the kept particles, an explicit input, never
learned by accident) and Lorentz invariants of the latent, each mapped with ``asinh(x / s)``,
``s`` its median absolute value on the fit sample (the invariants are heavy-tailed; ``asinh``
is linear near 0 and logarithmic in the tails, and keeps the sign). Two sets of invariants
(:func:`invariant_features`):

``"norms"``
    the columns :func:`lgae_hep.inference.latent_columns` marks as invariants: the complex
    latent scalars and the complex Minkowski squares ``v . v`` of the latent 4-vectors;
``"gram"``
    the complex scalars and the full Gram matrix of the latent: the Minkowski products
    ``a . b`` of every pair of the real 4-vectors ``Re v_i``, ``Im v_i`` (each transforms as a
    4-vector, since Lorentz matrices are real), named ``"v0_re.v1_im"``. Together with the
    scalars these are all the Lorentz invariants of the latent (up to the sign of the
    pseudoscalar ``det``), including the angles between latent vectors that ``"norms"``
    leaves out; the number grows as the square of the number of latent vectors.

The density is one Gaussian mixture (full covariances, scikit-learn's ``GaussianMixture`` for
the fit, plain numpy for evaluation) on ``(log m, features)``. Its Gaussian marginals are
exact, so three scores come from the same fit:

``"latent-density"``
    ``-log p(z)``: the latent alone (the mass integrated out).
``"latent-density-given-mass"``
    ``-log p(z | m) = -log p(m, z) + log p(m)``: how unusual the latent is *for QCD jets of
    this mass*. Conditioning removes the mass from the score, so a cut on it barely sculpts
    the QCD mass spectrum.
``"latent-density-joint"``
    ``-log p(m, z)``: mass and latent together.

Storage
-------
:meth:`LatentDensity.to_state` gives a plain dict (tensors plus a JSON string) that travels
inside the weights-only model file (``extra["latent_density"]`` of
:func:`lgae_hep.checkpoint.save_checkpoint`), :meth:`LatentDensity.from_state` checks it and
raises ``ValueError`` naming what is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lgae_hep.scoring.registry import score_names

__all__ = [
    "DENSITY_METRICS",
    "FEATURE_SETS",
    "MASS_FEATURE",
    "GaussianMixtureDensity",
    "LatentDensity",
    "fit_latent_density",
    "invariant_error",
    "is_latent_component",
    "largest_component",
    "gram_columns",
    "invariant_features",
]

#: The score families a :class:`LatentDensity` provides (see the module docstring): the
#: ``"density"`` entries of the score registry (:mod:`lgae_hep.scoring.registry`).
DENSITY_METRICS = score_names("density")
#: Name of the log jet mass feature (always the first feature).
MASS_FEATURE = "log_mass"
#: Version of the stored state (:meth:`LatentDensity.to_state`).
STATE_VERSION = 1
#: The invariant feature sets of :func:`invariant_features`.
FEATURE_SETS = ("norms", "gram")
_COMPONENTS = ("E", "px", "py", "pz")


def _real_vectors(columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``"v{i}_{re,im}"`` -> (n, 4) Cartesian real latent 4-vectors found in ``columns``."""
    out = {}
    i = 0
    while f"v{i}_E_re" in columns:
        for part in ("re", "im"):
            out[f"v{i}_{part}"] = np.stack(
                [np.asarray(columns[f"v{i}_{c}_{part}"], dtype=np.float64)
                 for c in _COMPONENTS], 1)
        i += 1
    return out


def is_latent_component(name: str) -> bool:
    """A latent component column (a scalar ``s{i}_re/_im`` or a Cartesian 4-vector component
    ``v{i}_{E,px,py,pz}_{re,im}``), not a derived invariant."""
    parts = name.split("_")
    if name.startswith("s") and len(parts) == 2:
        return True
    return name.startswith("v") and len(parts) == 3 and parts[1] in _COMPONENTS


def gram_columns(columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The Gram matrix of the real latent 4-vectors: ``"a.b"`` -> Minkowski product per jet
    (``a`` before or equal to ``b`` in layout order), from the Cartesian latent columns of
    :func:`lgae_hep.inference.latent_columns`."""
    vecs = _real_vectors(columns)
    names = list(vecs)
    out = {}
    for i, a in enumerate(names):
        for b in names[i:]:
            x, y = vecs[a], vecs[b]
            out[f"{a}.{b}"] = x[:, 0] * y[:, 0] - (x[:, 1:] * y[:, 1:]).sum(1)
    return out


def largest_component(columns: Mapping[str, Any]) -> np.ndarray:
    """``A`` (n,): each jet's largest latent component (in absolute value) of ``columns``."""
    comps = [np.abs(np.asarray(v, dtype=np.float64)) for k, v in columns.items()
             if is_latent_component(k)]
    return np.max(np.stack(comps, 1), 1) if comps else np.zeros(0)


def invariant_error(feature: str, a: np.ndarray, rel: float) -> np.ndarray:
    """Error bound (n,) of one latent invariant when every latent component is off by at most
    ``rel * a``: ``rel a`` for a latent scalar, ``2 * 4 rel a^2`` for a Minkowski product or
    square of latent 4-vectors (a sum of 4 products of components)."""
    quadratic = "." in feature or "_norm_" in feature
    return 8.0 * rel * a**2 if quadratic else rel * a


def invariant_features(columns: Mapping[str, Any], invariants: Sequence[str],
                       kind: str = "norms") -> dict[str, np.ndarray]:
    """The invariant features of a latent: ``"norms"`` or ``"gram"`` (module docstring).

    ``columns`` / ``invariants``: what :func:`lgae_hep.inference.latent_columns` returns.
    """
    if kind not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {kind!r}; choose one of {FEATURE_SETS}")
    if kind == "norms":
        return {k: np.asarray(columns[k], dtype=np.float64) for k in invariants}
    out = {k: np.asarray(columns[k], dtype=np.float64) for k in invariants
           if k.startswith("s")}
    gram = gram_columns(columns)
    if not gram:
        raise ValueError("the latent has no Cartesian 4-vector columns (v0_E_re, ...): "
                         "the 'gram' feature set needs an LGAE latent")
    out.update(gram)
    return out


class GaussianMixtureDensity:
    """A Gaussian mixture: ``weights`` (K,), ``means`` (K, D), ``covariances`` (K, D, D).

    Evaluation is plain numpy in float64 (no scikit-learn needed to score);
    :meth:`marginal` keeps a subset of the dimensions (exact for Gaussian mixtures).
    """

    def __init__(self, weights: Any, means: Any, covariances: Any) -> None:
        w = np.asarray(weights, dtype=np.float64)
        mu = np.asarray(means, dtype=np.float64)
        cov = np.asarray(covariances, dtype=np.float64)
        if w.ndim != 1 or mu.ndim != 2 or cov.ndim != 3 or not (
                len(w) == len(mu) == len(cov) and cov.shape[1:] == (mu.shape[1],) * 2):
            raise ValueError(f"inconsistent mixture shapes: weights {w.shape}, means "
                             f"{mu.shape}, covariances {cov.shape}")
        if len(w) == 0 or not (np.isfinite(w).all() and np.isfinite(mu).all()
                               and np.isfinite(cov).all()):
            raise ValueError("mixture parameters must be finite and non-empty")
        if (w <= 0).any() or abs(w.sum() - 1.0) > 1e-6:
            raise ValueError(f"mixture weights must be positive and sum to 1, got sum {w.sum()}")
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise ValueError("mixture covariances must be symmetric positive definite") from None
        self.weights, self.means, self.covariances = w, mu, cov
        self._chol = chol
        self._log_norm = (np.log(w) - np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1)
                          - 0.5 * mu.shape[1] * math.log(2 * math.pi))

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    @classmethod
    def fit(cls, x: np.ndarray, n_components: int, *, seed: int = 0,
            reg_covar: float = 1e-6) -> GaussianMixtureDensity:
        """Maximum-likelihood fit with scikit-learn (k-means initialisation seeded by ``seed``)."""
        from sklearn.mixture import GaussianMixture

        gm = GaussianMixture(n_components, covariance_type="full", random_state=seed,
                             reg_covar=reg_covar, max_iter=500).fit(x)
        return cls(gm.weights_, gm.means_, gm.covariances_)

    def log_pdf(self, x: Any) -> np.ndarray:
        """``log p(x)`` per row of ``x`` (n, D), float64."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected points of shape (n, {self.dim}), got {x.shape}")
        d = x[:, None, :] - self.means[None]  # (n, K, D)
        # solve L y = d for every component: y = L^-1 d, |y|^2 the Mahalanobis distance
        y = np.stack([np.linalg.solve(self._chol[k], d[:, k].T).T
                      for k in range(len(self.weights))], 1)
        log_comp = self._log_norm[None] - 0.5 * (y**2).sum(-1)
        top = log_comp.max(1)
        return top + np.log(np.exp(log_comp - top[:, None]).sum(1))

    def marginal(self, dims: Sequence[int]) -> GaussianMixtureDensity:
        """The mixture of the marginal over ``dims`` (exact)."""
        idx = np.asarray(dims, dtype=np.int64)
        return GaussianMixtureDensity(self.weights, self.means[:, idx],
                                      self.covariances[:, idx][:, :, idx])


def _coordinates(columns: Mapping[str, Any], features: Sequence[str], scales: np.ndarray,
                 mass: Any) -> np.ndarray:
    """``(n, 1 + F)``: ``log m`` and ``asinh(x_f / s_f)`` of each feature (Gram products
    computed from the Cartesian columns when a feature names one); NaN where undefined."""
    if any("." in f for f in features):
        columns = {**columns, **gram_columns(columns)}
    missing = [f for f in features if f not in columns]
    if missing:
        raise ValueError(f"the latent has no column(s) {missing}: this density was fitted "
                         "on another model's latent")
    m = np.asarray(mass, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        logm = np.log(np.where(m > 0, m, np.nan))
    cols = [np.arcsinh(np.asarray(columns[f], dtype=np.float64).reshape(-1) / s)
            for f, s in zip(features, scales, strict=True)]
    return np.stack([logm, *cols], 1)


class LatentDensity:
    """Density of QCD jets in ``(log m, asinh-scaled latent invariants)`` (module docstring).

    Parameters
    ----------
    features : sequence of str
        Latent invariant column names (:func:`lgae_hep.inference.latent_columns`), in order.
    scales : array_like
        The ``s`` of ``asinh(x / s)`` per feature (positive).
    mixture : GaussianMixtureDensity
        The mixture on ``(log m, scaled features)`` (dimension ``1 + len(features)``).
    info : mapping, optional
        Provenance (fit sample, components, seed), stored with the density.
    """

    def __init__(self, features: Sequence[str], scales: Any, mixture: GaussianMixtureDensity,
                 info: Mapping[str, Any] | None = None) -> None:
        self.features = [str(f) for f in features]
        self.scales = np.asarray(scales, dtype=np.float64)
        if self.scales.shape != (len(self.features),) or not (
                np.isfinite(self.scales).all() and (self.scales > 0).all()):
            raise ValueError(f"scales must be {len(self.features)} positive finite numbers, "
                             f"got {self.scales!r}")
        if mixture.dim != 1 + len(self.features):
            raise ValueError(f"the mixture has {mixture.dim} dimensions, expected "
                             f"{1 + len(self.features)} (log m and {len(self.features)} features)")
        self.mixture = mixture
        self._latent_only = mixture.marginal(range(1, mixture.dim))
        self._mass_only = mixture.marginal([0])
        self.info = dict(info or {})

    # ------------------------------------------------------------------ features
    def transform(self, columns: Mapping[str, Any], mass: Any) -> np.ndarray:
        """``(n, 1 + F)`` density coordinates from latent columns and jet masses (GeV).

        Jets with a non-positive or non-finite mass, or a non-finite column, get NaN rows.
        """
        return _coordinates(columns, self.features, self.scales, mass)

    def score(self, coords: np.ndarray, metric: str) -> np.ndarray:
        """The score ``metric`` (one of :data:`DENSITY_METRICS`) of density coordinates
        (:meth:`transform`); NaN for rows with a non-finite coordinate."""
        if metric not in DENSITY_METRICS:
            raise ValueError(f"unknown density metric {metric!r}; choose one of {DENSITY_METRICS}")
        coords = np.asarray(coords, dtype=np.float64)
        out = np.full(len(coords), np.nan)
        ok = np.isfinite(coords).all(1)
        if not ok.any():
            return out
        c = coords[ok]
        if metric == "latent-density":
            out[ok] = -self._latent_only.log_pdf(c[:, 1:])
        elif metric == "latent-density-joint":
            out[ok] = -self.mixture.log_pdf(c)
        else:
            out[ok] = -self.mixture.log_pdf(c) + self._mass_only.log_pdf(c[:, :1])
        return out

    def coordinate_errors(self, columns: Mapping[str, Any], rel: float,
                          extra: Mapping[str, Any] | None = None) -> np.ndarray:
        """Absolute error bound ``(n, 1 + F)`` of :meth:`transform`'s coordinates when every
        latent component carries an error of at most ``rel`` times the jet's largest latent
        component ``A`` (:func:`lgae_hep.precision.latent_rtol`).

        A latent scalar is then off by ``rel A``, a Minkowski product of two latent 4-vectors
        (a sum of 4 products of components) by ``2 * 4 rel A^2``; ``asinh(x / s)`` has slope at
        most ``1 / s``. The log mass is summed in float64 from the same inputs on every path
        (its error, ~1e-15, is counted as 1e-12). ``extra``: absolute error bounds of features
        that are not latent components or their products (feature -> (n,)), e.g. an auxiliary
        head's predictions (:func:`lgae_hep.scoring.aux_head.aux_head_errors`).
        """
        cols = {**columns, **gram_columns(columns)} if any("." in f for f in self.features) \
            else dict(columns)
        a = largest_component(columns)
        out = [np.full(len(a), 1e-12)]
        extra = dict(extra or {})
        for f, sc in zip(self.features, self.scales, strict=True):
            if f in extra:
                out.append(np.asarray(extra[f], dtype=np.float64) / sc)
                continue
            err = invariant_error(f, a, rel)
            if f not in cols:
                raise ValueError(f"the latent has no column {f!r}")
            out.append(err / sc)
        return np.stack(out, 1)

    def score_error_bound(self, coords: np.ndarray, errors: np.ndarray, metric: str,
                          step: float = 1e-5) -> np.ndarray:
        """First-order bound on the change of :meth:`score` when each coordinate moves by at
        most ``errors`` (same shape): ``2 sum_f |ds/dc_f| errors_f``, the gradient by central
        differences of step ``step`` (its own error is O(step^2) relative); the factor 2 covers
        the curvature over the error interval, which is orders of magnitude below the step."""
        coords = np.asarray(coords, dtype=np.float64)
        grad_abs = np.zeros_like(coords)
        for k in range(coords.shape[1]):
            e = np.zeros(coords.shape[1])
            e[k] = step
            grad_abs[:, k] = np.abs(self.score(coords + e, metric)
                                    - self.score(coords - e, metric)) / (2 * step)
        return 2.0 * (grad_abs * np.asarray(errors, dtype=np.float64)).sum(1)

    # ------------------------------------------------------------------ storage
    def to_state(self) -> dict[str, Any]:
        """A plain dict (tensors and a JSON string) for a weights-only model file."""
        return {
            "version": STATE_VERSION,
            "config": json.dumps({"features": self.features, "info": self.info}),
            "scales": torch.from_numpy(self.scales.copy()),
            "weights": torch.from_numpy(self.mixture.weights.copy()),
            "means": torch.from_numpy(self.mixture.means.copy()),
            "covariances": torch.from_numpy(self.mixture.covariances.copy()),
        }

    @classmethod
    def from_state(cls, state: Any) -> LatentDensity:
        """Rebuild from :meth:`to_state`; ``ValueError`` saying what is missing or corrupt."""
        if not isinstance(state, Mapping):
            raise ValueError(f"latent density must be a dict, got {type(state).__name__}")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"latent density version {state.get('version')!r} is not "
                             f"supported (expected {STATE_VERSION})")
        missing = [k for k in ("config", "scales", "weights", "means", "covariances")
                   if k not in state]
        if missing:
            raise ValueError(f"latent density is missing {missing}")
        try:
            config = json.loads(state["config"])
            features = list(config["features"])
        except (TypeError, ValueError, KeyError) as err:
            raise ValueError(f"latent density config is not valid ({err})") from None

        def arr(key: str) -> np.ndarray:
            v = state[key]
            if not isinstance(v, torch.Tensor):
                raise ValueError(f"latent density {key!r} must be a tensor, got "
                                 f"{type(v).__name__}")
            return v.detach().cpu().double().numpy()

        mixture = GaussianMixtureDensity(arr("weights"), arr("means"), arr("covariances"))
        return cls(features, arr("scales"), mixture, config.get("info"))


def fit_latent_density(
    columns: Mapping[str, Any],
    features: Sequence[str],
    mass: Any,
    *,
    n_components: int = 8,
    seed: int = 0,
    info: Mapping[str, Any] | None = None,
) -> LatentDensity:
    """Fit a :class:`LatentDensity` on background (QCD) jets.

    Parameters
    ----------
    columns : mapping
        Latent columns of the fit jets (:func:`lgae_hep.inference.latent_columns`).
    features : sequence of str
        Which columns to use (typically the latent's Lorentz invariants).
    mass : array_like
        Jet masses in GeV of the fit jets.
    n_components : int
        Mixture components.
    seed : int
        Seed of the k-means initialisation (the fit is reproducible).
    info : mapping, optional
        Provenance stored with the density.

    Raises
    ------
    ValueError
        No features, or fewer than ``10 * n_components`` jets with finite coordinates.
    """
    if not features:
        raise ValueError("a latent density needs at least one feature")
    if not (isinstance(n_components, int) and n_components >= 1):
        raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
    scales = []
    for f in features:
        x = np.abs(np.asarray(columns[f], dtype=np.float64))
        x = x[np.isfinite(x)]
        s = float(np.median(x)) if len(x) else 0.0
        scales.append(s if s > 0 else 1.0)
    coords = _coordinates(columns, features, np.asarray(scales), mass)
    coords = coords[np.isfinite(coords).all(1)]
    if len(coords) < 10 * n_components:
        raise ValueError(f"a latent density with {n_components} components needs at least "
                         f"{10 * n_components} jets with finite features, got {len(coords)}")
    mixture = GaussianMixtureDensity.fit(coords, n_components, seed=seed)
    meta = {"n_jets": int(len(coords)), "n_components": n_components, "seed": seed}
    meta.update(info or {})
    return LatentDensity(features, scales, mixture, meta)
