"""Classic jet-substructure observables on awkward jets: the yardsticks of an anomaly score.

Every function takes an awkward array ``[...][jet][particle]`` of Lorentz-vector records (any
field convention ``vector`` understands, any number of outer list levels) and returns one value
per jet with the same outer structure. Jets use *all* the particles given (cut to the N hardest
first if that is what a model sees).

* :func:`jet_mass`: invariant mass of the particles' sum (GeV).
* :func:`energy_correlation`: the energy-correlation functions ``e2``, ``e3`` and the ratios
  ``C2 = e3 / e2**2`` and ``D2 = e3 / e2**3`` (Larkoski, Salam, Thaler 2013; Larkoski, Moult,
  Neill 2014) with angular exponent ``beta`` (default 1), in the ``pt_R`` measure of FastJet's
  ``EnergyCorrelator``: momentum fractions ``z_i = pT_i / sum pT`` and distances
  ``R_ij = sqrt(dy^2 + dphi^2)`` in rapidity and azimuth,

      e2 = sum_{i<j} z_i z_j R_ij^beta,
      e3 = sum_{i<j<k} z_i z_j z_k (R_ij R_ik R_jk)^beta.

  Vectorised exactly: with ``A_ij = sqrt(z_i) R_ij^beta sqrt(z_j)`` (zero diagonal),
  ``e2 = (1/2) sqrt(z)^T A sqrt(z)`` and ``e3 = trace(A^3) / 6``, since every term with a
  repeated index vanishes. Checked against FastJet's ``EnergyCorrelator`` in the tests.
* :func:`nsubjettiness`: ``tau_N = sum_i pT_i min_k R_ik^beta / sum_i pT_i R0^beta`` (Thaler,
  Van Tilburg 2011; beta = 1, R0 = 0.8 by default) with exclusive-kT axes: the jet's
  particles reclustered with the kT algorithm into exactly N subjets (FastJet). The ``fastjet``
  package offers no N-subjettiness of its own, so the axes come from FastJet and the sum is
  computed here. A jet with at most N particles has ``tau_N = 0``. :func:`tau21` and
  :func:`tau32` are the ratios (NaN where the denominator is 0).
* :func:`softdrop_mass`: the mass after Soft Drop grooming (Larkoski et al. 2014;
  ``beta = 0``, ``z_cut = 0.1``, R0 = 0.8: modified mass drop), FastJet's own implementation on
  the Cambridge/Aachen reclustering of the jet.

A jet without particles gets 0 for masses and NaN for ratios and tau_N. FastJet comes with
the ``sim`` extra (``pip install lgae-hep[sim]``); only :func:`nsubjettiness` and
:func:`softdrop_mass` need it.
"""

from __future__ import annotations

import warnings
from typing import Any

import awkward as ak
import numpy as np
import vector

from lgae_hep.data.tensors import flatten_outer, restore_outer

vector.register_awkward()

__all__ = [
    "energy_correlation",
    "ratio",
    "jet_mass",
    "nsubjettiness",
    "softdrop_mass",
    "tau21",
    "tau32",
]

#: jet radius of the anti-kT R = 0.8 jets these observables are meant for
JET_R = 0.8
#: radius of the exclusive-kT reclustering for N-subjettiness axes: large enough that no
#: particle of a jet merges with the beam before the N subjets are formed
_KT_AXES_R = 10.0


# ---- jets -> flat padded arrays and back ----------------------------------------------------


def _flatten(jets: Any) -> tuple[ak.Array, tuple[np.ndarray, ...]]:
    """``[...][jet][particle]`` -> ``[jet][particle]`` and the structure to undo it."""
    flat, structure = flatten_outer(jets)
    if not hasattr(flat, "px"):
        raise ValueError("jets must hold Lorentz-vector records (pt/eta/phi/mass, px/py/pz/E, "
                         f"...) that `vector` understands, got {flat.type}")
    return flat, structure


def _components(jets: ak.Array) -> dict[str, np.ndarray]:
    """Flat float64 ``px, py, pz, E`` of all particles, and the particle counts per jet."""
    out = {c: np.asarray(ak.to_numpy(ak.flatten(getattr(jets, c), axis=None)), np.float64)
           for c in ("px", "py", "pz", "E")}
    out["counts"] = np.asarray(ak.to_numpy(ak.num(jets, axis=1)), np.int64)
    return out


def _padded(values: np.ndarray, counts: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Flat per-particle values -> (n_jets, max count) with ``fill`` in the padding."""
    width = int(counts.max()) if counts.size else 0
    out = np.full((counts.size, width), fill, dtype=np.float64)
    mask = np.arange(width)[None, :] < counts[:, None]
    out[mask] = values
    return out


def _rapidity(px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray) -> np.ndarray:
    # y = 1/2 ln((E + pz) / (E - pz)); E - pz computed as (pT^2 + m^2) / (E + pz) for accuracy
    with np.errstate(divide="ignore", invalid="ignore"):
        plus = e + pz
        minus = np.where(pz > 0, (px**2 + py**2 + np.maximum(e**2 - px**2 - py**2 - pz**2, 0))
                         / np.where(plus > 0, plus, 1.0), e - pz)
        return 0.5 * np.log(plus / minus)


def _delta_r(y1: np.ndarray, phi1: np.ndarray, y2: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(y1 - y2, dphi)


def _pt_y_phi(flat: ak.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Particle counts per jet and the flat pT, rapidity and azimuth of all particles."""
    c = _components(flat)
    return (c["counts"], np.hypot(c["px"], c["py"]),
            _rapidity(c["px"], c["py"], c["pz"], c["E"]), np.arctan2(c["py"], c["px"]))


def ratio(num: Any, den: Any) -> np.ndarray:
    """``num / den`` elementwise (float64), NaN where ``den`` is not positive: the convention
    of every ratio here (C2, D2, tau21, tau32), so an undefined ratio is never a number."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


# ---- observables -----------------------------------------------------------------------------


def jet_mass(jets: Any) -> ak.Array:
    """Invariant mass (GeV) of the sum of each jet's particles; 0 for an empty jet.

    A slightly negative ``E^2 - p^2`` from rounding gives 0, never NaN.
    """
    flat, structure = _flatten(jets)
    c = _components(flat)
    idx = np.repeat(np.arange(c["counts"].size), c["counts"])
    tot = {k: np.bincount(idx, weights=c[k], minlength=c["counts"].size)
           for k in ("px", "py", "pz", "E")}
    m2 = tot["E"] ** 2 - tot["px"] ** 2 - tot["py"] ** 2 - tot["pz"] ** 2
    return restore_outer(np.sqrt(np.maximum(m2, 0.0)), structure)


def energy_correlation(jets: Any, beta: float = 1.0) -> ak.Array:
    """Energy-correlation functions and ratios per jet: records ``e2, e3, c2, d2``.

    See the module docstring for the definitions (``pt_R`` measure, rapidity-azimuth
    distances). ``c2``/``d2`` are NaN where ``e2 = 0`` (fewer than two particles, or all
    collinear); a two-particle jet has ``e3 = 0``, so ``c2 = d2 = 0``.
    """
    if not (isinstance(beta, int | float) and beta > 0):
        raise ValueError(f"beta must be a positive number, got {beta!r}")
    flat, structure = _flatten(jets)
    counts, pt, y, phi = _pt_y_phi(flat)
    starts = np.concatenate([[0], np.cumsum(counts)])
    e2 = np.zeros(counts.size)
    e3 = np.zeros(counts.size)
    # blocks of jets of similar multiplicity, each padded to its own largest one: the cost
    # ~ block * N^3 and the memory ~ block * N^2 follow the jets, not the largest jet
    order = np.argsort(counts, kind="stable")
    for lo in range(0, counts.size, _ECF_CHUNK):
        sel = order[lo:lo + _ECF_CHUNK]
        idx = np.concatenate([np.arange(starts[j], starts[j + 1]) for j in sel])
        e2[sel], e3[sel] = _ecf_chunk(pt[idx], y[idx], phi[idx], counts[sel], beta)
    out = ak.zip({"e2": e2, "e3": e3, "c2": ratio(e3, e2**2), "d2": ratio(e3, e2**3)})
    return restore_outer(out, structure)


#: jets per block of the energy-correlation computation
_ECF_CHUNK = 512


def _ecf_chunk(pt: np.ndarray, y: np.ndarray, phi: np.ndarray, counts: np.ndarray,
               beta: float) -> tuple[np.ndarray, np.ndarray]:
    """e2, e3 of a block of jets (flat particle arrays, counts per jet)."""
    if counts.size == 0 or counts.max() == 0:
        return np.zeros(counts.size), np.zeros(counts.size)
    pt_p, y_p, phi_p = (_padded(v, counts) for v in (pt, y, phi))
    pt_sum = pt_p.sum(1, keepdims=True)
    z = np.where(pt_sum > 0, pt_p / np.where(pt_sum > 0, pt_sum, 1.0), 0.0)
    r = _delta_r(y_p[:, :, None], phi_p[:, :, None], y_p[:, None, :], phi_p[:, None, :]) ** beta
    sq = np.sqrt(z)
    a = sq[:, :, None] * r * sq[:, None, :]  # padded particles have z = 0: rows/cols vanish
    idx = np.arange(a.shape[1])
    a[:, idx, idx] = 0.0
    e2 = 0.5 * np.einsum("bi,bij,bj->b", sq, a, sq)
    # trace(A^3) = sum_ij (A A)_ij A_ji, with the product in BLAS; A is symmetric
    e3 = np.einsum("bij,bij->b", a @ a, a) / 6.0
    return e2, e3


def _fastjet() -> Any:
    try:
        import fastjet  # the `sim` extra: only N-subjettiness and soft drop need it
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("this observable needs FastJet: pip install 'lgae-hep[sim]' "
                          f"(or pip install fastjet); import failed: {err}") from None
    return fastjet


def _fastjet_input(flat: ak.Array) -> ak.Array:
    c = _components(flat)
    return ak.unflatten(ak.zip({"px": c["px"], "py": c["py"], "pz": c["pz"], "E": c["E"]}),
                        c["counts"])


def nsubjettiness(jets: Any, n: tuple[int, ...] = (1, 2, 3), beta: float = 1.0,
                  r0: float = JET_R) -> ak.Array:
    """N-subjettiness ``tau_N`` per jet for each N in ``n``: records ``tau1, tau2, ...``.

    Exclusive-kT axes (FastJet), ``beta`` (default 1) and characteristic radius ``r0``
    (default 0.8). A jet with at most N particles has ``tau_N = 0``; an empty jet NaN.
    """
    ns = tuple(int(k) for k in n)
    if not ns or any(k < 1 for k in ns):
        raise ValueError(f"n must be positive integers, got {n!r}")
    if not (isinstance(beta, int | float) and beta > 0) or not r0 > 0:
        raise ValueError(f"beta and r0 must be positive, got beta={beta!r}, r0={r0!r}")
    fastjet = _fastjet()
    flat, structure = _flatten(jets)
    counts, pt, y, phi = _pt_y_phi(flat)
    pt_p, y_p, phi_p = (_padded(v, counts) for v in (pt, y, phi))
    d0 = pt_p.sum(1) * r0**beta
    jet_def = fastjet.JetDefinition(fastjet.kt_algorithm, _KT_AXES_R)
    fj_in = _fastjet_input(flat)
    out: dict[str, np.ndarray] = {}
    for k in ns:
        tau = np.zeros(counts.size)
        sel = np.flatnonzero(counts > k)  # jets with at most k particles: tau_k = 0
        if sel.size:
            cs = fastjet.ClusterSequence(fj_in[sel], jet_def)
            with warnings.catch_warnings():
                # the fastjet package compares a JetDefinition with algorithm names and so
                # warns about exclusive jets even for the kT algorithm, where they are exact
                warnings.filterwarnings("ignore", message="dcut and exclusive jets")
                axes = cs.exclusive_jets(n_jets=k)
            ax_px, ax_py = (np.asarray(ak.to_numpy(getattr(axes, f)), np.float64).reshape(-1, k)
                            for f in ("px", "py"))
            ax_pz, ax_e = (np.asarray(ak.to_numpy(axes[f]), np.float64).reshape(-1, k)
                           for f in ("pz", "E"))
            ax_y = _rapidity(ax_px, ax_py, ax_pz, ax_e)
            ax_phi = np.arctan2(ax_py, ax_px)
            dr = _delta_r(y_p[sel][:, :, None], phi_p[sel][:, :, None], ax_y[:, None, :],
                          ax_phi[:, None, :])
            tau[sel] = (pt_p[sel] * dr.min(2) ** beta).sum(1)
        out[f"tau{k}"] = ratio(tau, d0)
    return restore_outer(ak.zip(out), structure)


def tau21(jets: Any, beta: float = 1.0, r0: float = JET_R) -> ak.Array:
    """``tau2 / tau1`` per jet (NaN where ``tau1 = 0``): small for two-prong jets."""
    flat, structure = _flatten(jets)
    t = nsubjettiness(flat, n=(1, 2), beta=beta, r0=r0)
    return restore_outer(ratio(t.tau2, t.tau1), structure)


def tau32(jets: Any, beta: float = 1.0, r0: float = JET_R) -> ak.Array:
    """``tau3 / tau2`` per jet (NaN where ``tau2 = 0``): small for three-prong jets."""
    flat, structure = _flatten(jets)
    t = nsubjettiness(flat, n=(2, 3), beta=beta, r0=r0)
    return restore_outer(ratio(t.tau3, t.tau2), structure)


def softdrop_mass(jets: Any, beta: float = 0.0, zcut: float = 0.1, r0: float = JET_R) -> ak.Array:
    """Soft-drop groomed mass (GeV) per jet: FastJet's Soft Drop on the C/A reclustering
    (``beta = 0``, ``zcut = 0.1``: the modified mass drop tagger, as CMS's ``msoftdrop``).
    0 for an empty jet."""
    if not 0 < zcut < 1 or beta < 0:
        raise ValueError(f"need 0 < zcut < 1 and beta >= 0, got zcut={zcut!r}, beta={beta!r}")
    fastjet = _fastjet()
    flat, structure = _flatten(jets)
    counts = np.asarray(ak.to_numpy(ak.num(flat, axis=1)))
    mass = np.zeros(counts.size)
    sel = np.flatnonzero(counts > 0)
    if sel.size:
        cs = fastjet.ClusterSequence(_fastjet_input(flat)[sel],
                                     fastjet.JetDefinition(fastjet.cambridge_algorithm, r0))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="dcut and exclusive jets")  # see above
            groomed = cs.exclusive_jets_softdrop_grooming(njets=1, beta=float(beta),
                                                          symmetry_cut=float(zcut), R0=float(r0))
        mass[sel] = np.asarray(ak.to_numpy(groomed["msoftdrop"]), np.float64)
    return restore_outer(mass, structure)
