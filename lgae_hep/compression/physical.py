"""Physical decoded particles: a repair of the decoder's output that keeps each jet's 4-momentum.

The LGAE decoder's output 4-vectors are not constrained to the forward light cone: for the
bundled ``lgae-mix`` about half of them are spacelike (``E < |p|``) and a quarter have ``E < 0``.
A PF candidate is stored as ``pt, eta, phi, mass``, which holds only ``E >= |p|``; writing an
unphysical output as ``mass = max(m, 0)`` silently changes its energy (a jet of three
``E < 0`` outputs comes back 10x too heavy). :func:`make_physical` instead replaces the
particles of each jet that has an unphysical output by physical ones (``E >= |p|``) **with
the same sum**, so the jet 4-momentum and mass of a decompressed file are those of
:func:`lgae_hep.reconstruct`:

1. **lab** (:data:`REPAIR_LAB`): every particle keeps its 3-momentum. The unphysical ones
   become massless (``E = |p|``); the energy they gain is taken from the other particles'
   excess ``E - |p|`` in proportion to it. Possible when ``sum |p_i| <= E_jet``.
2. **rest frame** (:data:`REPAIR_REST`): otherwise the same in the jet's rest frame (where the
   3-momenta sum to zero), and when even there ``sum |k_i| > m_jet``, every particle becomes
   massless with its rest-frame 3-momentum scaled by ``m_jet / sum |k_i|``; then boosted back.
3. **not repairable** (:data:`REPAIR_IMPOSSIBLE`): a jet whose decoded 4-momentum is itself
   not future timelike (``E <= 0`` or ``m^2 <= 0``) has no decomposition into physical
   particles; its unphysical outputs are written massless with their 3-momentum (the sum then
   differs from the decoder's) and counted apart.

Jets whose outputs are all physical are left as decoded (:data:`REPAIR_NONE`). Everything is
float64; the sum is kept to float64 rounding. The counts (:func:`repair_counts`) go into the
decompressed file's metadata and one :class:`UnphysicalOutputWarning` (:func:`warn_repaired`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "REPAIR_IMPOSSIBLE",
    "REPAIR_LAB",
    "REPAIR_NAMES",
    "REPAIR_NONE",
    "REPAIR_REST",
    "UnphysicalOutputWarning",
    "make_physical",
    "merge_counts",
    "repair_counts",
    "warn_repaired",
]

#: Per-jet repair codes (``<collection>_lgaeRepair`` in decompressed files).
REPAIR_NONE, REPAIR_LAB, REPAIR_REST, REPAIR_IMPOSSIBLE = 0, 1, 2, 3
REPAIR_NAMES = {REPAIR_NONE: "as_decoded", REPAIR_LAB: "repaired_lab",
                REPAIR_REST: "repaired_rest_frame", REPAIR_IMPOSSIBLE: "not_repairable"}


class UnphysicalOutputWarning(UserWarning):
    """Decoded particles outside the light cone were repaired: the jets are not fit for physics."""


def _take_excess(e: np.ndarray, pabs: np.ndarray, bad: np.ndarray, good: np.ndarray,
                 rows: np.ndarray) -> np.ndarray:
    """Energies of ``rows``: bad particles massless, the good ones' excess ``e - |p|`` reduced
    in proportion so that the jet's energy sum is unchanged (needs excess >= deficit)."""
    e, pabs, bad, good = e[rows], pabs[rows], bad[rows], good[rows]
    excess = np.where(good, np.maximum(e - pabs, 0.0), 0.0)
    deficit = np.where(bad, pabs - e, 0.0).sum(1, keepdims=True)
    avail = excess.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        keep = np.where(avail > 0, 1.0 - deficit / avail, 0.0)
    return np.where(bad, pabs, np.where(good, pabs + excess * np.clip(keep, 0.0, 1.0), e))


def _boost(p4: np.ndarray, beta: np.ndarray, gamma: np.ndarray, sign: float) -> np.ndarray:
    """Boost (..., N, 4) by velocity ``sign * beta`` (B, 3): ``-1`` into the frame moving with
    ``beta``, ``+1`` back. ``(gamma - 1) / beta^2`` as ``gamma^2 / (gamma + 1)`` (no 0/0)."""
    e, p = p4[..., 0], p4[..., 1:]
    b = sign * beta[:, None, :]
    g = gamma[:, None]
    bp = (b * p).sum(-1)
    e2 = g * (e + bp)
    p2 = p + ((g * g / (g + 1.0)) * bp + g * e)[..., None] * b
    return np.concatenate([e2[..., None], p2], axis=-1)


def make_physical(p4: Any, mask: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Physical particles with each jet's sum of the decoded ones (see the module docstring).

    Parameters
    ----------
    p4 : array (B, N, 4)
        Decoded ``(E, px, py, pz)`` (float64, lab frame).
    mask : bool array (B, N)
        The particles of each jet (the first ``n`` decoder nodes).

    Returns
    -------
    q : np.ndarray (B, N, 4)
        float64; ``q[i] == p4[i]`` for particles of jets left as decoded and outside ``mask``.
    unphysical : np.ndarray (B, N) bool
        The decoded particles that were outside the forward light cone (``E < |p|``).
    repair : np.ndarray (B,) uint8
        :data:`REPAIR_NAMES` code per jet.
    """
    p4 = np.asarray(p4, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    q = p4.copy()
    e = p4[..., 0]
    pabs = np.sqrt((p4[..., 1:] ** 2).sum(-1))
    unphysical = mask & ~(e >= pabs)
    good = mask & ~unphysical
    repair = np.zeros(len(p4), np.uint8)
    need = unphysical.any(1)
    if not need.any():
        return q, unphysical, repair
    tot = (p4 * mask[..., None]).sum(1)
    m2 = tot[:, 0] ** 2 - (tot[:, 1:] ** 2).sum(-1)
    timelike = (tot[:, 0] > 0) & (m2 > 0)
    impossible = need & ~timelike
    lab = need & timelike & ((pabs * mask).sum(1) <= tot[:, 0])
    rest = need & timelike & ~lab
    repair[lab], repair[rest], repair[impossible] = REPAIR_LAB, REPAIR_REST, REPAIR_IMPOSSIBLE

    rows = np.flatnonzero(lab)
    if rows.size:
        q[rows, :, 0] = np.where(mask[rows], _take_excess(e, pabs, unphysical, good, rows),
                                 e[rows])
    rows = np.flatnonzero(impossible)
    if rows.size:
        q[rows, :, 0] = np.where(unphysical[rows], pabs[rows], e[rows])
    rows = np.flatnonzero(rest)
    if rows.size:
        m = np.sqrt(m2[rows])
        beta = tot[rows, 1:] / tot[rows, :1]
        gamma = tot[rows, 0] / m
        mk = mask[rows]
        k4 = _boost(p4[rows], beta, gamma, -1.0)
        kabs = np.sqrt((k4[..., 1:] ** 2).sum(-1))
        sum_k = (kabs * mk).sum(1)
        fits = sum_k <= m
        new = k4.copy()
        idx = np.arange(len(rows))
        sub = idx[fits]
        if sub.size:
            en = _take_excess(k4[..., 0], kabs, unphysical[rows], good[rows], sub)
            new[sub, :, 0] = np.where(mk[sub], en, k4[sub, :, 0])
        sub = idx[~fits]
        if sub.size:  # all massless, 3-momenta scaled: sum zero kept, energies sum to m
            f = (m[sub] / sum_k[sub])[:, None]
            k3 = k4[sub, :, 1:] * f[..., None]
            new[sub, :, 1:] = np.where(mk[sub][..., None], k3, k4[sub, :, 1:])
            new[sub, :, 0] = np.where(mk[sub], kabs[sub] * f, k4[sub, :, 0])
        back = _boost(new, beta, gamma, 1.0)
        q[rows] = np.where(mk[..., None], back, p4[rows])
    return q, unphysical, repair


def repair_counts(unphysical: np.ndarray, repair: np.ndarray, n_particles: int) -> dict[str, int]:
    """Counts for the metadata: decoded particles, those outside the light cone, jets per
    repair code."""
    out = {"decoded_particles": int(n_particles),
           "unphysical_particles": int(np.asarray(unphysical).sum())}
    for code, name in REPAIR_NAMES.items():
        out[f"jets_{name}"] = int((np.asarray(repair) == code).sum())
    return out


def merge_counts(a: Mapping[str, int] | None, b: Mapping[str, int]) -> dict[str, int]:
    """Sum of two :func:`repair_counts` dicts (``a`` may be None)."""
    return {k: int((a or {}).get(k, 0)) + int(v) for k, v in b.items()}


def warn_repaired(what: str, counts: Mapping[str, int], stacklevel: int) -> str | None:
    """One :class:`UnphysicalOutputWarning` when particles were repaired; returns its text."""
    n_bad = int(counts.get("unphysical_particles", 0))
    if not n_bad:
        return None
    n_all = max(int(counts.get("decoded_particles", 0)), 1)
    n_fix = int(counts.get("jets_repaired_lab", 0)) + int(counts.get("jets_repaired_rest_frame",
                                                                      0))
    n_imp = int(counts.get("jets_not_repairable", 0))
    text = (f"{what}: {n_bad} of {n_all} decoded particles ({100.0 * n_bad / n_all:.1f} %) were "
            f"outside the light cone (E < |p|); {n_fix} jet(s) repaired keeping the decoded jet "
            f"4-momentum exactly"
            + (f", {n_imp} jet(s) with a non-timelike decoded 4-momentum written with massless "
               "particles (their sum differs)" if n_imp else "")
            + "; the decoded jets are not fit for physics analyses")
    warnings.warn(text, UnphysicalOutputWarning, stacklevel=stacklevel + 1)
    return text
