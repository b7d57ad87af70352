"""The hybrid codec (issue 22.3): the LGAE latent plus quantised residuals against the decoder.

A latent alone is lossy at the network's accuracy. The hybrid stores, next to the latent, each
original particle's difference from the decoder's prediction in ``(log pt, eta, phi)``,
quantised with a step ``delta``, so the particles come back to ``delta / 2`` whatever the
network's accuracy; the better the prediction, the smaller the residual integers and the
fewer bytes they take after the general-purpose compressor (LZMA, ZLIB, ...):

* **canonical order**: the decoder emits ``n`` nodes in a fixed order. Each original particle
  is matched to one node by the Hungarian algorithm on the ``(eta, phi)`` distance
  (:func:`match_to_nodes`, ``scipy.optimize.linear_sum_assignment``) and the originals are
  stored in node order: the permutation costs nothing, the decoder reproduces the order.
* **residuals** (:func:`encode_residuals` / :func:`decode_residuals`): integers
  ``round((x - x_pred) / delta)``, ``phi`` wrapped to ``[-pi, pi)``.
* **consistency** (:func:`latent_tags`, :func:`check_tags`): residuals only make sense with the
  latent they were computed against. Each jet's residual record carries the CRC-32 of its
  stored latent bytes; decoding residuals against another latent, or a stream with other
  particle counts, is a ``ValueError``, never silently wrong particles.

The decoder's prediction must be the same at encoding and decoding up to rounding: both decode
the *stored* latent (same precision) with the stored jet momentum; two evaluations differ by
the network's rounding (:mod:`lgae_hep.precision`), far below any useful ``delta``.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = [
    "LOG_PT_FLOOR",
    "check_tags",
    "decode_residuals",
    "encode_residuals",
    "latent_tags",
    "log_pt_eta_phi",
    "match_to_nodes",
]

#: Smallest pT (GeV) of a prediction in log pt (a decoder node with pt = 0 has no log).
LOG_PT_FLOOR = 1e-3


def log_pt_eta_phi(p4: Any) -> np.ndarray:
    """(..., 4) ``(E, px, py, pz)`` -> (..., 3) ``(log pt, eta, phi)`` (pt floored at
    :data:`LOG_PT_FLOOR`; the direction of the 3-momentum, whatever the energy)."""
    p4 = np.asarray(p4, dtype=np.float64)
    pt = np.maximum(np.hypot(p4[..., 1], p4[..., 2]), LOG_PT_FLOOR)
    eta = np.arcsinh(p4[..., 3] / pt)
    phi = np.arctan2(p4[..., 2], p4[..., 1])
    return np.stack([np.log(pt), eta, phi], axis=-1)


def _wrap(dphi: np.ndarray) -> np.ndarray:
    return (dphi + np.pi) % (2 * np.pi) - np.pi


def match_to_nodes(orig: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per jet, the original particle matched to each decoder node (Hungarian on the
    ``(eta, phi)`` distance): ``perm[b, j]`` is the original index of node ``j`` (``-1`` past
    the jet's ``n``). ``orig`` / ``pred``: (B, N, 3) ``(log pt, eta, phi)``; ``mask`` (B, N):
    the first ``n`` of each jet (originals and nodes alike)."""
    b, n_max = mask.shape
    perm = np.full((b, n_max), -1, np.int64)
    counts = mask.sum(1)
    for i in range(b):
        n = int(counts[i])
        if n == 0:
            continue
        d_eta = pred[i, :n, None, 1] - orig[i, None, :n, 1]
        d_phi = _wrap(pred[i, :n, None, 2] - orig[i, None, :n, 2])
        rows, cols = linear_sum_assignment(d_eta ** 2 + d_phi ** 2)
        perm[i, rows] = cols
    return perm


def encode_residuals(orig: np.ndarray, pred: np.ndarray, mask: np.ndarray,
                     delta: float | tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Quantised residuals of the originals in node order: int32 (B, N, 3) (0 past ``n``) and
    the permutation of :func:`match_to_nodes`. ``delta``: one step for ``(log pt, eta, phi)``
    or one per coordinate."""
    step = np.broadcast_to(np.asarray(delta, dtype=np.float64), (3,))
    perm = match_to_nodes(orig, pred, mask)
    ordered = np.take_along_axis(orig, np.maximum(perm, 0)[..., None], axis=1)
    r = ordered - pred
    r[..., 2] = _wrap(r[..., 2])
    q = np.rint(r / step)
    q = np.where(mask[..., None], q, 0)
    if np.abs(q).max(initial=0) >= 2**31:
        raise ValueError(f"residuals too large for int32 at step {tuple(step)}")
    return q.astype(np.int32), perm


def decode_residuals(pred: np.ndarray, q: np.ndarray, mask: np.ndarray,
                     delta: float | tuple[float, float, float]) -> np.ndarray:
    """``(log pt, eta, phi)`` (B, N, 3) of the particles from the prediction and the residual
    integers (phi in ``[-pi, pi)``; NaN past each jet's ``n``)."""
    step = np.broadcast_to(np.asarray(delta, dtype=np.float64), (3,))
    x = pred + np.asarray(q, dtype=np.float64) * step
    x[..., 2] = _wrap(x[..., 2])
    return np.where(mask[..., None], x, np.nan)


def latent_tags(stored_latent: np.ndarray) -> np.ndarray:
    """CRC-32 (uint32) of each jet's stored latent bytes (rows of (B, L) float32 / uint16)."""
    z = np.ascontiguousarray(stored_latent)
    return np.fromiter((zlib.crc32(row.tobytes()) for row in z), dtype=np.uint32, count=len(z))


def check_tags(stored_latent: np.ndarray, tags: np.ndarray, n_latent: np.ndarray,
               n_residual: np.ndarray, where: str = "residual stream") -> None:
    """``ValueError`` unless every jet's residual record was made against its latent (same
    CRC-32, same particle count): residuals of other jets, of another latent precision or
    shifted by a jet are caught."""
    tags = np.asarray(tags, dtype=np.uint32)
    if len(tags) != len(stored_latent) or len(n_residual) != len(n_latent):
        raise ValueError(f"{where}: {len(tags)} residual records for {len(stored_latent)} "
                         "latents; the residuals do not belong to these latents")
    bad = (latent_tags(stored_latent) != tags) | (np.asarray(n_latent) != np.asarray(n_residual))
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(f"{where}: the residuals of {int(bad.sum())} jet(s) (first: jet "
                         f"{first}) were not made against their latent (latent checksum or "
                         "particle count differs); refusing to decode wrong particles")
