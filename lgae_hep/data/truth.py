"""Jet classes and truth labels of generated jets: the label vocabulary and the matching of jets
to the generator's hard partons and resonances.

A jet is labelled ``t``, ``W`` or ``Z`` when it contains the hadronically decaying resonance and
all its decay quarks within ``MATCH_DR``; a QCD jet takes the flavour of the nearest outgoing
hard parton (gluon ``g`` or light quark ``q``). These numbers are stored as ``FatJet_label``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LABELS",
    "LABEL_NAMES",
    "MATCH_DR",
    "PROCESSES",
    "RESONANCE_ID",
    "EventRecord",
    "delta_r",
    "match_qcd",
    "match_resonance",
]

#: integer label of each jet class, stored as ``FatJet_label``
LABELS: dict[str, int] = {"g": 0, "q": 1, "t": 2, "w": 3, "z": 4, "hbb": 6, "h4q": 7}
#: Display name of each label (plots, summaries): gluon and quark jets are both QCD.
LABEL_NAMES: dict[int, str] = {0: "QCD", 1: "QCD", 2: "t", 3: "W", 4: "Z", 6: "H->bb",
                               7: "H->4q"}
#: processes accepted by :func:`generate` -> labels that are kept
PROCESSES: dict[str, tuple[int, ...]] = {
    "qcd": (LABELS["g"], LABELS["q"]),
    "g": (LABELS["g"],),
    "q": (LABELS["q"],),
    "t": (LABELS["t"],),
    "w": (LABELS["w"],),
    "z": (LABELS["z"],),
    "hbb": (LABELS["hbb"],),
    "h4q": (LABELS["h4q"],),
}
#: matching radius of jets to partons and resonances (the anti-kT radius)
MATCH_DR = 0.8
#: PDG id of the resonance of each signal process
RESONANCE_ID = {"t": 6, "w": 24, "z": 23, "hbb": 25, "h4q": 25}


def delta_r(eta1: np.ndarray, phi1: np.ndarray, eta2: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """Angular distance sqrt(d_eta^2 + d_phi^2), d_phi wrapped to [-pi, pi)."""
    dphi = (np.asarray(phi1) - np.asarray(phi2) + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(np.asarray(eta1) - np.asarray(eta2), dphi)


class EventRecord:
    """Flat numpy view of one event of a ``nextBatch`` record, for the truth look-up."""

    __slots__ = ("id", "status", "d1", "d2", "px", "py", "pz")

    def __init__(self, flat: dict[str, np.ndarray], start: int, stop: int) -> None:
        for k in self.__slots__:
            setattr(self, k, flat[k][start:stop])

    def daughters(self, i: int) -> list[int]:
        d1, d2 = int(self.d1[i]), int(self.d2[i])
        if d1 <= 0:
            return []
        if d2 <= d1:
            return [d1]
        return list(range(d1, d2 + 1))

    def last_copy(self, i: int) -> int:
        """Follow the same-flavour daughter (recoil copies, FSR off a top) to the decaying copy."""
        for _ in range(10_000):
            same = [d for d in self.daughters(i) if self.id[d] == self.id[i]]
            if len(same) != 1:
                return i
            i = same[0]
        return i  # pragma: no cover - a malformed record; stop rather than loop forever

    def eta_phi(self, i: int | list[int]) -> tuple[np.ndarray, np.ndarray]:
        px, py, pz = self.px[i], self.py[i], self.pz[i]
        pt = np.hypot(px, py)
        return np.arcsinh(pz / np.maximum(pt, 1e-12)), np.arctan2(py, px)

    def decay_quarks(self, i: int) -> list[int] | None:
        """Status-23 quarks of the hadronic decay chain of resonance copy ``i`` (None if not)."""
        quarks: list[int] = []
        for d in self.daughters(i):
            a = abs(int(self.id[d]))
            if 1 <= a <= 5:
                quarks.append(d)
            elif a in (23, 24):
                sub = self.decay_quarks(self.last_copy(d))
                if sub is None:
                    return None
                quarks.extend(sub)
            else:
                return None
        return quarks or None


def match_qcd(ev: EventRecord, jet_eta: np.ndarray, jet_phi: np.ndarray) -> np.ndarray:
    """Label of each jet from the nearest outgoing hard parton (-1 unmatched, 5 = b quark)."""
    hard = np.flatnonzero(ev.status == -23)
    labels = np.full(jet_eta.size, -1, np.int32)
    if hard.size == 0:
        return labels
    p_eta, p_phi = ev.eta_phi(list(hard))
    dr = delta_r(jet_eta[:, None], jet_phi[:, None], p_eta[None, :], p_phi[None, :])
    best = np.argmin(dr, axis=1)
    ok = dr[np.arange(jet_eta.size), best] < MATCH_DR
    pid = np.abs(ev.id[hard[best]])
    lab = np.where(pid == 21, LABELS["g"], np.where(pid <= 4, LABELS["q"], 5))
    labels[ok] = lab[ok]
    return labels


def match_resonance(
    ev: EventRecord, jet_eta: np.ndarray, jet_phi: np.ndarray, process: str
) -> np.ndarray:
    """Label of each jet fully containing a hadronically decaying resonance (-1 otherwise)."""
    pdg = RESONANCE_ID[process]
    labels = np.full(jet_eta.size, -1, np.int32)
    for i in np.flatnonzero((np.abs(ev.id) == pdg) & (ev.status == -22)):
        last = ev.last_copy(int(i))
        quarks = ev.decay_quarks(last)
        if quarks is None:
            continue
        r_eta, r_phi = ev.eta_phi(last)
        q_eta, q_phi = ev.eta_phi(quarks)
        dr_res = delta_r(jet_eta, jet_phi, r_eta, r_phi)
        dr_q = delta_r(jet_eta[:, None], jet_phi[:, None], q_eta[None, :], q_phi[None, :])
        merged = (dr_res < MATCH_DR) & np.all(dr_q < MATCH_DR, axis=1) & (labels < 0)
        labels[merged] = LABELS[process]
    return labels
