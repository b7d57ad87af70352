"""Fit the ``exposure`` head of a trained LGAE (:mod:`lgae_hep.scoring.exposure`).

>>> head = fit_exposure_head(model, p4, mask, seed=0)      # doctest: +SKIP
>>> attach_exposure_head(model, head)                       # doctest: +SKIP
>>> lgae_hep.score(jets, model, metric="exposure")          # doctest: +SKIP

The encoder is frozen: the head is fitted on the latent that scoring computes (the scoring
engine's :func:`lgae_hep.scoring.engine.forward_batches`, each jet in its rest frame and the
latent boosted back, float64), of QCD jets and of their synthetic anomalies
(:func:`lgae_hep.contrastive.exposure_views`). About 20 s on one CPU core for 20,000 jets and
the bundled `lgae-mix` network (measured: 17-18 s).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lgae_hep.contrastive import exposure_views
from lgae_hep.nn.io import jet_mass
from lgae_hep.scoring.engine import forward_batches
from lgae_hep.scoring.exposure import ExposureHead, exposure_inputs
from lgae_hep.scoring.latent import latent_columns

__all__ = ["attach_exposure_head", "distance_correlation", "exposure_features",
           "fit_exposure_head", "flat_mass_weights"]

#: the ``mass_weighting`` choices of :func:`fit_exposure_head`
MASS_WEIGHTINGS = ("none", "flat")


def attach_exposure_head(model: Any, head: ExposureHead | None) -> None:
    """Give ``model`` its exposure head (``None`` removes it): a plain attribute, not a
    submodule, so the model's ``state_dict`` stays the network's; :func:`lgae_hep.checkpoint.
    save_checkpoint` stores it in the file's ``extra["exposure_head"]``."""
    if head is not None and not isinstance(head, ExposureHead):
        raise TypeError(f"expected an ExposureHead, got {type(head).__name__}")
    if head is None:
        if "exposure_head" in vars(model):
            object.__delattr__(model, "exposure_head")
        return
    object.__setattr__(model, "exposure_head", head.double().eval())


def exposure_features(model: Any, head: ExposureHead | None, p4: torch.Tensor,
                      mask: torch.Tensor, batch_size: int = 256) -> tuple[np.ndarray, list[str]]:
    """The exposure head's inputs ``(x (n, F) float64, names)`` for jets ``p4`` (n, N, 4),
    ``mask`` (n, N), as the scoring engine forms them (NaN rows: a jet without a resolved mass
    or with a non-finite latent). ``head=None``: no check of the names against a head."""
    res = forward_batches(model, p4, mask, batch_size=batch_size, want_latent=True,
                          want_reco=False, encode_only=True)
    cols, inv = latent_columns(res.latent)
    mass, resolved = jet_mass(p4.to(torch.float64), mask)
    m = np.where(resolved.numpy(), mass.numpy(), np.nan)
    x, names = exposure_inputs(head, cols, inv, m)
    x[~res.finite] = np.nan
    return x, names


def distance_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The squared (sample, V-statistic) distance correlation of two 1-d samples ``x``, ``y``
    (n,) (Szekely et al. 2007): 0 for independent samples in the large-n limit, 1 for a linear
    relation; differentiable in both. Fewer than 2 points give 0."""
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"need two (n,) samples, got {tuple(x.shape)}, {tuple(y.shape)}")
    if x.shape[0] < 2:
        return x.sum() * 0.0

    def centred(v: torch.Tensor) -> torch.Tensor:
        d = (v[:, None] - v[None, :]).abs()
        return d - d.mean(0, keepdim=True) - d.mean(1, keepdim=True) + d.mean()

    a, b = centred(x), centred(y)
    vxy, vxx, vyy = (a * b).mean(), (a * a).mean(), (b * b).mean()
    den = torch.sqrt(vxx * vyy)
    return torch.where(den > 0, vxy / torch.where(den > 0, den, 1.0), vxy * 0.0)


def flat_mass_weights(log_mass: np.ndarray, n_bins: int = 20, max_weight: float = 10.0
                      ) -> np.ndarray:
    """Per-jet weights that make the distribution of ``log_mass`` flat ("planing").

    ``n_bins`` equal-width bins span the 0.5 % to 99.5 % quantiles of ``log_mass`` (a jet
    outside counts in the end bin on its side); a jet's weight is inversely proportional to
    its bin's count, so every non-empty bin carries the same total weight, and the weights
    average 1. With a finite ``max_weight``, weights are then capped at ``max_weight`` times
    the mean and renormalised to mean 1, so that a sparse bin in the tail cannot let a few
    jets dominate a fit (its bins then carry less than the others)."""
    x = np.asarray(log_mass, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0 or not np.isfinite(x).all():
        raise ValueError("flat_mass_weights wants a non-empty 1-d array of finite log masses")
    if not (isinstance(n_bins, int) and n_bins >= 1):
        raise ValueError(f"n_bins must be an int >= 1, got {n_bins!r}")
    if not max_weight > 1.0:  # also refuses NaN
        raise ValueError(f"max_weight must be > 1 (or inf), got {max_weight!r}")
    lo, hi = np.quantile(x, [0.005, 0.995])
    if hi > lo:
        b = np.clip(np.floor((x - lo) / (hi - lo) * n_bins), 0, n_bins - 1).astype(np.int64)
    else:  # one mass: one bin
        b = np.zeros(len(x), dtype=np.int64)
    counts = np.bincount(b, minlength=n_bins)
    w = len(x) / (np.count_nonzero(counts) * counts[b])
    if math.isfinite(max_weight):
        w = np.minimum(w, max_weight)
        w = w / w.mean()
    return w


def fit_exposure_head(model: Any, p4: torch.Tensor, mask: torch.Tensor, *, seed: int = 0,
                      epochs: int = 30, hidden: int = 64, depth: int = 2,
                      n_quantiles: int = 200, batch_size: int = 256, lr: float = 1e-3,
                      weight_decay: float = 1e-2, split_prob: float = 0.5,
                      prong_share: tuple[float, float] = (0.15, 0.35),
                      prong_angle: tuple[float, float] = (0.2, 0.6),
                      prong_spread: tuple[float, float] | None = None,
                      disco_weight: float = 0.0, mass_weighting: str = "none",
                      val_fraction: float = 0.1, progress: bool = True) -> ExposureHead:
    """Fit an :class:`~lgae_hep.scoring.exposure.ExposureHead` on QCD jets ``p4`` (n, N, 4) GeV,
    ``mask`` (n, N) and their synthetic anomalies (one view each, drawn with ``seed``).

    The knots are the QCD view's quantiles; the MLP (float64) minimises the binary
    cross-entropy with AdamW for ``epochs`` epochs, and the weights of the epoch with the
    lowest loss on a held-out ``val_fraction`` of the jets (both views of a jet on the same
    side) are kept. Jets whose inputs are not finite (an empty or one-particle jet: no resolved
    mass) are dropped, with a warning that counts them. Deterministic for a given ``seed``,
    thread count and machine; the global torch RNG is not touched.

    ``prong_share`` / ``prong_angle``: the ranges of the synthetic prongs' energy share and
    Delta R (:func:`lgae_hep.contrastive.exposure_views`), recorded in ``config["fit"]``. The
    defaults are the recipe of the bundled ``lgae-mix`` head. ``prong_spread=(lo, hi)`` makes
    every synthetic prong a wide one, a few particles spread by angles of width ``U(lo, hi)``
    (:func:`lgae_hep.contrastive.hard_prongs`' ``spread``), like a real subjet with its own
    mass; ``None`` (the default) keeps one particle per prong, bit for bit as before.

    ``disco_weight`` > 0 adds that multiple of the squared distance correlation (DisCo,
    Kasieczka & Shih 2020) between the logit and ``log m`` of the batch's QCD jets to the
    loss: a penalty on the score's dependence on the mass, so that a cut sculpts the QCD mass
    spectrum less (the held-out epoch is chosen on the same total loss).

    ``mass_weighting="flat"`` weights each jet's two views in the cross-entropy by
    :func:`flat_mass_weights` of the QCD jets' log m (20 bins, weights capped at 10 times the
    mean), so that the head learns the jets of every mass as much as those where QCD is
    dense, instead of mostly the low masses, where most QCD jets are; an anomaly of unknown
    mass may sit anywhere. The DisCo penalty stays unweighted. ``"none"`` (the default) is
    the unweighted fit of before, bit for bit.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if epochs < 1 or batch_size < 1 or not 0.0 < val_fraction < 1.0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1 and 0 < val_fraction < 1; got "
                         f"{epochs}, {batch_size}, {val_fraction}")
    if not (math.isfinite(disco_weight) and disco_weight >= 0.0):
        raise ValueError(f"disco_weight must be finite and >= 0, got {disco_weight!r}")
    if mass_weighting not in MASS_WEIGHTINGS:
        raise ValueError(f"mass_weighting must be one of {MASS_WEIGHTINGS}, got "
                         f"{mass_weighting!r}")
    if p4.ndim != 3 or p4.shape[-1] != 4 or mask.shape != p4.shape[:2]:
        raise ValueError(f"p4 must be (n, N, 4) and mask (n, N); got {tuple(p4.shape)}, "
                         f"{tuple(mask.shape)}")
    n = int(p4.shape[0])
    if n < 20:
        raise ValueError(f"fit_exposure_head needs at least 20 jets, got {n}")
    # two prongs share at most 2 hi of the jet's energy; angles stay inside a hemisphere
    # (a wide prong's spread: the angular width of its particles, well inside the jet)
    ranges = [("prong_share", prong_share, 0.5), ("prong_angle", prong_angle, math.pi / 2)]
    if prong_spread is not None:
        ranges.append(("prong_spread", prong_spread, 0.5))
    for label, (lo, hi), top in ranges:
        if not 0.0 < lo <= hi < top:
            raise ValueError(f"{label} must be (lo, hi) with 0 < lo <= hi < {top:.3g}; got "
                             f"{(lo, hi)!r}")
    gen = torch.Generator().manual_seed(seed)
    pq, mq, pn, mn = exposure_views(p4, mask, gen, split_prob=split_prob,
                                    share=tuple(prong_share), angle=tuple(prong_angle),
                                    spread=None if prong_spread is None
                                    else tuple(prong_spread))
    xq, names = exposure_features(model, None, pq, mq)
    xn, _ = exposure_features(model, None, pn, mn)
    ok = np.isfinite(xq).all(1) & np.isfinite(xn).all(1)
    if not ok.all():
        warnings.warn(f"fit_exposure_head: {int((~ok).sum())} of {n} jet(s) without finite "
                      "head inputs (no resolved mass, or a non-finite latent) were dropped",
                      stacklevel=2)
    if ok.sum() < 20:
        raise ValueError(f"fit_exposure_head: only {int(ok.sum())} jets with finite inputs")
    levels = (np.arange(n_quantiles) + 0.5) / n_quantiles
    knots = np.quantile(xq[ok], levels, axis=0).T  # (F, n_q)
    # strictly increasing per input (a discrete input repeats quantiles)
    step = np.maximum(1e-9 * np.maximum(np.abs(knots).max(1, keepdims=True), 1.0), 1e-300)
    for k in range(1, n_quantiles):
        knots[:, k] = np.maximum(knots[:, k], knots[:, k - 1] + step[:, 0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = ExposureHead(len(names), hidden, depth, n_quantiles, knots=knots, names=names,
                            fit={"seed": seed, "jets": int(ok.sum()), "epochs": epochs,
                                 "lr": lr, "weight_decay": weight_decay,
                                 "split_prob": split_prob, "batch_size": batch_size,
                                 "prong_share": [float(x) for x in prong_share],
                                 "prong_angle": [float(x) for x in prong_angle],
                                 "prong_spread": (None if prong_spread is None
                                                  else [float(x) for x in prong_spread]),
                                 "disco_weight": float(disco_weight),
                                 "mass_weighting": mass_weighting,
                                 "views": "lgae_hep.contrastive.exposure_views"}).double()
    idx = np.flatnonzero(ok)
    perm = torch.randperm(len(idx), generator=gen).numpy()
    n_val = max(1, int(round(val_fraction * len(idx))))
    parts = {"val": idx[perm[:n_val]], "train": idx[perm[n_val:]]}
    # both views of a jet have its mass (the anomalous one is narrowed back to it)
    weight = np.ones(n)
    if mass_weighting == "flat":
        weight[idx] = flat_mass_weights(xq[idx, -1])
    data = {k: (torch.from_numpy(np.concatenate([head.normal_scores(xq[v]),
                                                 head.normal_scores(xn[v])])),
                torch.cat([torch.zeros(len(v)), torch.ones(len(v))]).double(),
                torch.from_numpy(np.concatenate([xq[v, -1], xn[v, -1]])),
                torch.from_numpy(np.concatenate([weight[v], weight[v]])))
            for k, v in parts.items()}
    opt = torch.optim.AdamW(head.mlp.parameters(), lr=lr, weight_decay=weight_decay)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    best, best_state = math.inf, None
    xt, yt, mt, wt = data["train"]
    flat = mass_weighting == "flat"

    def objective(x: torch.Tensor, y: torch.Tensor, logm: torch.Tensor,
                  w: torch.Tensor) -> torch.Tensor:
        z = head.logit(x)
        loss = bce(z, y, weight=w) if flat else bce(z, y)
        if disco_weight > 0.0:
            qcd = y == 0
            loss = loss + disco_weight * distance_correlation(z[qcd], logm[qcd])
        return loss

    bar = tqdm(range(epochs), desc="exposure head", disable=not progress, leave=False)
    for _ in bar:
        head.train()
        for b in torch.randperm(len(xt), generator=gen).split(batch_size):
            loss = objective(xt[b], yt[b], mt[b], wt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        head.eval()
        with torch.no_grad():
            vl = float(objective(*data["val"]))
        bar.set_postfix(val_loss=f"{vl:.4f}")
        if vl < best:
            best = vl
            best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
    head.load_state_dict(best_state)
    head.config["fit"]["best_val_loss"] = best
    return head.eval()
