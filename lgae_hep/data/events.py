"""One generator worker: a Pythia 8 instance, FastJet clustering, truth labels and the jet
selection, batch by batch (the physics of :func:`lgae_hep.data.generate.generate`).

The physics choices (processes, settings, matching, stored observables) are documented in
:mod:`lgae_hep.data.generate`, which runs these workers as processes and writes the file. The
selected jets of a batch travel between processes as a :class:`JetChunk` (flat numpy arrays,
cheap to pickle).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np
import vector

from ..observables import softdrop_mass
from .truth import PROCESSES, RESONANCE_ID, EventRecord, match_qcd, match_resonance

vector.register_awkward()

__all__ = ["DEFAULT_PTHAT_RANGE", "JET_R", "JetChunk", "JetWorker", "check_range",
           "concat_chunks", "pythia_settings", "silence_fastjet_banner", "truncate_chunk"]

_FASTJET_BANNER_DONE = False


def silence_fastjet_banner() -> None:
    """Make this process's first FastJet clustering now, with stdout muted.

    FastJet prints its 13-line banner to the C++ ``std::cout`` (file descriptor 1, past
    Python's ``sys.stdout``) at the first clustering of every process, so a generation with
    2 workers for 4 classes printed it 9 times. :func:`lgae_hep.data.generate.generate` calls
    this in each worker process (and in its own process when it shows no progress), so the
    banner appears at most once, from the main process. Idempotent; a no-op without fastjet.
    """
    global _FASTJET_BANNER_DONE
    if _FASTJET_BANNER_DONE:
        return
    try:
        import fastjet
    except ImportError:
        return
    import os
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            try:
                one = ak.Array([[{"px": 1.0, "py": 0.0, "pz": 0.0, "E": 2.0}]])
                jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, JET_R)
                fastjet.ClusterSequence(one, jet_def).inclusive_jets()
            finally:
                os.dup2(saved, 1)
    finally:
        os.close(saved)
    _FASTJET_BANNER_DONE = True

#: default pT-hat window (GeV) of the hard process
DEFAULT_PTHAT_RANGE: tuple[float, float] = (700.0, 2000.0)

#: anti-kT radius and matching radius
JET_R = 0.8

_NEUTRINOS = (12, 14, 16)


def _process_settings(process: str) -> list[str]:
    if process in ("qcd", "g", "q"):
        return ["HardQCD:all = on"]
    if process == "t":
        return [
            "Top:gg2ttbar = on",
            "Top:qqbar2ttbar = on",
            "24:onMode = off",
            "24:onIfAny = 1 2 3 4 5",
        ]
    if process == "w":
        return [
            "WeakBosonAndParton:qqbar2Wg = on",
            "WeakBosonAndParton:qg2Wq = on",
            "24:onMode = off",
            "24:onIfAny = 1 2 3 4 5",
        ]
    if process == "z":
        return [
            "WeakBosonAndParton:qqbar2gmZg = on",
            "WeakBosonAndParton:qg2gmZq = on",
            "WeakZ0:gmZmode = 2",
            "23:onMode = off",
            "23:onIfAny = 1 2 3 4 5",
        ]
    if process in ("hbb", "h4q"):
        # H + jet through the top loop (the boosted Higgs recoils against the jet); H -> b bbar
        # (two b prongs) or H -> W W* -> four quarks (four prongs, one W off shell)
        decay = (["25:onMode = off", "25:onIfMatch = 5 -5"] if process == "hbb" else
                 ["25:onMode = off", "25:onIfMatch = 24 -24", "24:onMode = off",
                  "24:onIfAny = 1 2 3 4 5"])
        return ["HiggsSM:gg2Hg(l:t) = on", "HiggsSM:qg2Hq(l:t) = on",
                "HiggsSM:qqbar2Hg(l:t) = on", *decay]
    raise ValueError(f"process={process!r} is not known; expected one of {sorted(PROCESSES)}")


def pythia_settings(
    process: str,
    *,
    fast: bool = False,
    pthat_range: tuple[float, float] = DEFAULT_PTHAT_RANGE,
) -> list[str]:
    """Pythia 8 settings (``readString`` lines) of a process, without the random seed.

    Parameters
    ----------
    process : {"qcd", "g", "q", "t", "w", "z", "hbb", "h4q"}
        Jet class to generate (see the module docstring).
    fast : bool
        Switch multi-parton interactions off (``PartonLevel:MPI = off``).
    pthat_range : (float, float)
        ``PhaseSpace:pTHatMin`` / ``pTHatMax`` in GeV.

    Returns
    -------
    list of str
        The settings, in the order they are applied.
    """
    lo, hi = check_range("pthat_range", pthat_range)
    return [
        "Beams:idA = 2212",
        "Beams:idB = 2212",
        "Beams:eCM = 13000.",
        *_process_settings(process),
        f"PhaseSpace:pTHatMin = {lo:g}",
        f"PhaseSpace:pTHatMax = {hi:g}",
        "PartonLevel:ISR = on",
        "PartonLevel:FSR = on",
        f"PartonLevel:MPI = {'off' if fast else 'on'}",
        "HadronLevel:all = on",
        "ParticleDecays:limitTau0 = on",
        "ParticleDecays:tau0Max = 10",
        "Print:quiet = on",
        "Next:numberCount = 0",
    ]


def check_range(name: str, value: Sequence[float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: expected two numbers (low, high) in GeV") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo < hi):
        raise ValueError(f"{name}={value!r}: expected finite 0 <= low < high (GeV)")
    return lo, hi


# ------------------------------------------------------------------------------------------------
# one worker: a Pythia instance, batched generation, vectorised clustering and selection
# ------------------------------------------------------------------------------------------------


@dataclass
class JetChunk:
    """Selected jets of a run of events, flat (numpy) for cheap pickling between processes."""

    event: np.ndarray  # (n_events,) int64, 1-based event number within the worker
    njet: np.ndarray  # (n_events,) jets per stored event
    label: np.ndarray  # (n_jets,)
    msoftdrop: np.ndarray  # (n_jets,)
    ncons: np.ndarray  # (n_jets,)
    particles: dict[str, np.ndarray] = field(default_factory=dict)  # (n_particles,) each

    @property
    def n_jets(self) -> int:
        return int(self.label.size)


def concat_chunks(chunks: list[JetChunk]) -> JetChunk:
    keys = ("pt", "eta", "phi", "mass", "charge", "pdgId")
    if not chunks:
        empty = np.zeros(0)
        return JetChunk(
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.int32),
            empty,
            np.zeros(0, np.int64),
            {k: np.zeros(0, np.int32 if k in ("charge", "pdgId") else np.float64) for k in keys},
        )
    return JetChunk(
        np.concatenate([c.event for c in chunks]),
        np.concatenate([c.njet for c in chunks]),
        np.concatenate([c.label for c in chunks]),
        np.concatenate([c.msoftdrop for c in chunks]),
        np.concatenate([c.ncons for c in chunks]),
        {k: np.concatenate([c.particles[k] for c in chunks]) for k in keys},
    )


def truncate_chunk(chunk: JetChunk, n_jets: int) -> JetChunk:
    """Keep the first ``n_jets`` jets (whole events, then the hardest jets of the last one)."""
    if chunk.n_jets <= n_jets:
        return chunk
    cum = np.cumsum(chunk.njet)
    n_ev = int(np.searchsorted(cum, n_jets) + 1)
    njet = chunk.njet[:n_ev].copy()
    njet[-1] -= int(cum[n_ev - 1] - n_jets)
    n_part = int(chunk.ncons[:n_jets].sum())
    return JetChunk(
        chunk.event[:n_ev],
        njet,
        chunk.label[:n_jets],
        chunk.msoftdrop[:n_jets],
        chunk.ncons[:n_jets],
        {k: v[:n_part] for k, v in chunk.particles.items()},
    )


class JetWorker:
    """One Pythia instance producing selected, labelled jets in batches of events."""

    def __init__(
        self,
        process: str,
        seed: int,
        *,
        fast: bool,
        pt_range: tuple[float, float],
        eta_max: float,
        pthat_range: tuple[float, float],
        batch_size: int,
    ) -> None:
        import fastjet  # the `sim` extra: imported where it is needed, in the worker
        import pythia8mc

        self.process = process
        self.keep = np.array(PROCESSES[process])
        self.pt_range = pt_range
        self.eta_max = eta_max
        self.batch_size = batch_size
        self.settings = [
            *pythia_settings(process, fast=fast, pthat_range=pthat_range),
            "Random:setSeed = on",
            f"Random:seed = {seed}",
        ]
        self.pythia = pythia8mc.Pythia("", False)
        for line in self.settings:
            if not self.pythia.readString(line):
                raise ValueError(f"Pythia rejected the setting {line!r}")
        if not self.pythia.init():
            raise RuntimeError(f"Pythia failed to initialise with settings {self.settings}")
        self._fastjet = fastjet
        self._antikt = fastjet.JetDefinition(fastjet.antikt_algorithm, JET_R)
        self._charge: dict[int, int] = {}
        self.n_events = 0

    def _charges(self, pdg: np.ndarray) -> np.ndarray:
        ids, inverse = np.unique(pdg, return_inverse=True)
        table = np.empty(ids.size, np.int32)
        for k, i in enumerate(ids.tolist()):
            if i not in self._charge:
                self._charge[i] = int(round(self.pythia.particleData.charge(i)))
            table[k] = self._charge[i]
        return table[inverse]

    def next_chunk(self) -> JetChunk:
        """Generate one batch of events and return its selected jets."""
        batch = self.pythia.nextBatch(self.batch_size, "skip")
        first_event = self.n_events + 1
        n_ev = len(batch)
        self.n_events += n_ev
        prt = batch["prt"]

        # --- final state: stable, visible; E recomputed from the generated mass -------------
        absid = abs(prt["id"])
        visible = (prt["status"] > 0) & (absid != 12) & (absid != 14) & (absid != 16)
        fs = prt[visible]
        px, py, pz = fs["p"]["px"], fs["p"]["py"], fs["p"]["pz"]
        energy = np.sqrt(px**2 + py**2 + pz**2 + fs["m"] ** 2)
        inputs = ak.zip({"px": px, "py": py, "pz": pz, "E": energy})

        # --- anti-kT on all events of the batch at once -------------------------------------
        cs = self._fastjet.ClusterSequence(inputs, self._antikt)
        lo, hi = self.pt_range
        jets = cs.inclusive_jets(min_pt=lo)
        cons = cs.constituent_index(min_pt=lo)
        jets = ak.zip(
            {"px": jets["px"], "py": jets["py"], "pz": jets["pz"], "E": jets["E"]},
            with_name="Momentum4D",
        )
        order = ak.argsort(jets.pt, axis=1, ascending=False)
        jets, cons = jets[order], cons[order]
        in_window = (jets.pt > lo) & (jets.pt < hi) & (abs(jets.eta) < self.eta_max)

        # --- truth labels, per event that has a candidate -----------------------------------
        n_cand = ak.to_numpy(ak.sum(in_window, axis=1))
        counts = ak.to_numpy(ak.num(prt, axis=1))
        offsets = np.concatenate([[0], np.cumsum(counts)])
        flat = {
            "id": ak.to_numpy(ak.flatten(prt["id"])),
            "status": ak.to_numpy(ak.flatten(prt["status"])),
            "d1": ak.to_numpy(ak.flatten(prt["daughter1"])),
            "d2": ak.to_numpy(ak.flatten(prt["daughter2"])),
            "px": ak.to_numpy(ak.flatten(prt["p"]["px"])),
            "py": ak.to_numpy(ak.flatten(prt["p"]["py"])),
            "pz": ak.to_numpy(ak.flatten(prt["p"]["pz"])),
        }
        jet_eta = ak.to_numpy(ak.flatten(jets.eta))
        jet_phi = ak.to_numpy(ak.flatten(jets.phi))
        jet_start = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(jets, axis=1)))])
        keep_flat = ak.to_numpy(ak.flatten(in_window)).copy()
        labels_all = np.full(keep_flat.size, -1, np.int32)
        for e in np.flatnonzero(n_cand):
            ev = EventRecord(flat, offsets[e], offsets[e + 1])
            sl = slice(jet_start[e], jet_start[e + 1])
            if self.process in RESONANCE_ID:
                labels_all[sl] = match_resonance(ev, jet_eta[sl], jet_phi[sl], self.process)
            else:
                labels_all[sl] = match_qcd(ev, jet_eta[sl], jet_phi[sl])
        keep_flat &= np.isin(labels_all, self.keep)
        labels_flat = labels_all[keep_flat]

        keep = ak.unflatten(keep_flat, ak.num(jets, axis=1))
        cons = cons[keep]
        njet = ak.to_numpy(ak.num(cons, axis=1))
        stored = njet > 0

        # --- constituents: flat gather, sorted by pT within each jet ------------------------
        fs_counts = ak.to_numpy(ak.num(fs, axis=1))
        fs_offsets = np.concatenate([[0], np.cumsum(fs_counts)])[:-1]
        gidx = cons + fs_offsets  # broadcast the event offset over [event][jet][particle]
        ncons = ak.to_numpy(ak.flatten(ak.num(gidx, axis=2)))
        gidx = ak.to_numpy(ak.flatten(gidx, axis=None)).astype(np.int64)
        fpx = ak.to_numpy(ak.flatten(px))[gidx]
        fpy = ak.to_numpy(ak.flatten(py))[gidx]
        fpz = ak.to_numpy(ak.flatten(pz))[gidx]
        fm = ak.to_numpy(ak.flatten(fs["m"]))[gidx]
        fid = ak.to_numpy(ak.flatten(fs["id"]))[gidx].astype(np.int32)
        fpt = np.hypot(fpx, fpy)
        jet_of = np.repeat(np.arange(ncons.size), ncons)
        sort = np.lexsort((-fpt, jet_of))  # by jet, then pT descending
        fpx, fpy, fpz, fm, fid, fpt = (a[sort] for a in (fpx, fpy, fpz, fm, fid, fpt))
        particles = {
            "pt": fpt,
            "eta": np.arcsinh(fpz / np.where(fpt > 0, fpt, np.inf)) if fpt.size else fpt,
            "phi": np.arctan2(fpy, fpx),
            "mass": fm,
            "charge": self._charges(fid) if fid.size else np.zeros(0, np.int32),
            "pdgId": fid,
        }
        return JetChunk(
            event=(first_event + np.arange(n_ev, dtype=np.int64))[stored],
            njet=njet[stored].astype(np.int64),
            label=labels_flat.astype(np.int32),
            msoftdrop=self._msoftdrop(fpx, fpy, fpz, fm, ncons),
            ncons=ncons.astype(np.int64),
            particles=particles,
        )

    def _msoftdrop(
        self, px: np.ndarray, py: np.ndarray, pz: np.ndarray, m: np.ndarray, ncons: np.ndarray
    ) -> np.ndarray:
        if ncons.size == 0:
            return np.zeros(0)
        e = np.sqrt(px**2 + py**2 + pz**2 + m**2)
        parts = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": e},
                                    with_name="Momentum4D"), ncons)
        return np.asarray(ak.to_numpy(softdrop_mass(parts, r0=JET_R)), dtype=np.float64)

    def run(self, n_jets: int, max_events: int, report: Callable[[int], None]) -> JetChunk:
        chunks: list[JetChunk] = []
        have = 0
        while have < n_jets:
            if self.n_events >= max_events:
                raise RuntimeError(
                    f"only {have} of {n_jets} jets after {self.n_events} events "
                    f"(max_events={max_events}); the selection (process={self.process!r}, "
                    f"pt_range={self.pt_range}, eta_max={self.eta_max}) is too tight or the "
                    "pT-hat window does not cover it"
                )
            chunk = self.next_chunk()
            take = min(chunk.n_jets, n_jets - have)
            if take:
                chunks.append(truncate_chunk(chunk, take))
                have += take
                report(take)
        return concat_chunks(chunks)

    def info(self) -> dict[str, Any]:
        info = self.pythia.infoPython()
        return {
            "sigma_gen_mb": float(info.sigmaGen()),
            "sigma_err_mb": float(info.sigmaErr()),
            "n_events": int(self.n_events),
            "pythia_version": f"{self.pythia.parm('Pythia:versionNumber'):.3f}",
        }
