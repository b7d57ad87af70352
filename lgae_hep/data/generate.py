"""JetNet-like jets from first principles: Pythia 8 + FastJet into a PFNano-layout ROOT file.

The generator reproduces the recipe of the JetNet dataset (Kansal et al. 2021) with the tools
available offline: proton-proton collisions at 13 TeV in Pythia 8 (``pythia8mc``), visible
stable final-state particles clustered with the anti-kT algorithm (R = 0.8) in FastJet, jets in a
pT window (default 0.8 < pT < 1.6 TeV) and |eta| < 2.5, each labelled by truth matching.
This module is the generator (Pythia settings, the event loop, worker processes, the public
:func:`generate`); the label vocabulary and the truth matching live in :mod:`.truth`, writing
the file in :mod:`.pfnano`.

Classes and labels (stored as ``FatJet_label``; the mapping is also stored in the file metadata)
-------------------------------------------------------------------------------------------------
===== ======= ====================================================================================
label process hard process and truth matching
===== ======= ====================================================================================
0     g, qcd  ``HardQCD:all``; jet within Delta R < 0.8 of an outgoing hard gluon (the nearest
              hard parton is the match)
1     q, qcd  ``HardQCD:all``; nearest hard parton a light or charm quark (u, d, s, c).
              Jets matched to a b quark (``HardQCD:all`` includes gg/qqbar -> bbbar) are
              **dropped**, as in JetNet's light-quark class; so are unmatched jets.
2     t       ``Top:gg2ttbar``, ``Top:qqbar2ttbar``, W -> q q' forced (``24:onIfAny = 1 2 3 4 5``)
3     w       ``WeakBosonAndParton:qqbar2Wg``, ``qg2Wq``, W -> q q' forced
4     z       ``WeakBosonAndParton:qqbar2gmZg``, ``qg2gmZq`` with ``WeakZ0:gmZmode = 2`` (pure
              Z), Z -> q qbar (d u s c b) forced
===== ======= ====================================================================================

Resonance matching (t, w, z): the jet axis lies within Delta R < 0.8 of the resonance's *last*
copy in the event record (after initial-state recoil, just before it decays) **and** every quark
of its hadronic decay chain (for a top: the b and both quarks of the W; taken as the status-23
decay products) lies within Delta R < 0.8 of the jet axis, i.e. the decay is fully merged. Jets
of those processes that are not matched (the recoiling parton, partially merged decays) are
dropped. ``process="qcd"`` keeps both gluon and quark jets, ``"g"`` / ``"q"`` only one label.

Physics settings (all written into the file metadata)
-----------------------------------------------------
* ``Beams:eCM = 13000``; ISR, FSR, MPI and hadronisation on (``fast=True`` sets
  ``PartonLevel:MPI = off``, roughly halving the CPU time and lowering the soft activity).
* Particles with c*tau > 10 mm are stable (``ParticleDecays:limitTau0 = on``,
  ``ParticleDecays:tau0Max = 10``), as in a detector; the final state is every stable particle
  except neutrinos (|pdgId| 12, 14, 16).
* pT-hat window ``PhaseSpace:pTHatMin = 700``, ``pTHatMax = 2000`` GeV for every process (for
  tt it is the top pT, for W/Z + jet the boson pT): slightly below the jet window, because a jet
  takes most but not all of its parton's pT and ISR recoil pushes partons across the edge. Partons
  below 700 GeV still feed a few jets just above 800 GeV, so the jet pT spectrum within ~50 GeV of
  the lower edge is slightly depleted; widen ``pthat_range`` if that matters to you.
* Particle masses are Pythia's generated masses; each particle's energy is recomputed as
  sqrt(p^2 + m^2) so that the stored (pt, eta, phi, mass) reproduce the clustered 4-vectors. Jet
  kinematics are the E-scheme sum of the stored constituents, so summing ``FatJet.constituents``
  reproduces ``FatJet`` (up to float32 storage). Constituents are sorted by pT, jets by pT.
* ``msoftdrop``: soft-drop mass (beta = 0, z_cut = 0.1, R0 = 0.8, Cambridge/Aachen reclustering
  of the constituents); ``tau1``, ``tau2``, ``tau3`` (N-subjettiness, beta = 1, R0 = 0.8,
  exclusive-kT axes) and ``d2b1`` (D2, beta = 1) of all constituents, computed with
  :mod:`lgae_hep.observables` and written as ``FatJet_tau1..3`` / ``FatJet_d2b1``.

Reproducibility: Pythia's seed of worker ``w`` is derived from ``(seed, w)`` with
:class:`numpy.random.SeedSequence`, workers are separate processes, and their jets are
concatenated in worker order, so a given ``(seed, workers)`` reproduces the file exactly; a
different worker count gives a different (equally valid) sample. Events without a selected jet
are not stored; ``event`` counts every generated event of the worker (1-based) and
``luminosityBlock`` is ``worker + 1``, so ``(luminosityBlock, event)`` is unique in a file.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import vector
from tqdm.auto import tqdm

from lgae_hep import __version__

from ..observables import energy_correlation, nsubjettiness, softdrop_mass
from .pfnano import write_pfnano
from .truth import (
    LABELS,
    PROCESSES,
    RESONANCE_ID,
    EventRecord,
    match_qcd,
    match_resonance,
)

vector.register_awkward()

#: default pT-hat window (GeV) of the hard process
DEFAULT_PTHAT_RANGE: tuple[float, float] = (700.0, 2000.0)
#: anti-kT radius and matching radius
JET_R = 0.8
#: Pythia's Random:seed must lie in [1, 900000000]
_MAX_PYTHIA_SEED = 900_000_000
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
    process : {"qcd", "g", "q", "t", "w", "z"}
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
    lo, hi = _check_range("pthat_range", pthat_range)
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


def worker_seed(seed: int, worker: int) -> int:
    """Pythia ``Random:seed`` of one worker, derived deterministically from ``(seed, worker)``.

    Uses :class:`numpy.random.SeedSequence` so that neighbouring user seeds and worker indices
    give unrelated streams; the result lies in Pythia's allowed range [1, 900000000].
    """
    state = np.random.SeedSequence([int(seed), int(worker)]).generate_state(1, np.uint64)[0]
    return int(state % _MAX_PYTHIA_SEED) + 1


def _check_range(name: str, value: Sequence[float]) -> tuple[float, float]:
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
class _Chunk:
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


def _concat_chunks(chunks: list[_Chunk]) -> _Chunk:
    keys = ("pt", "eta", "phi", "mass", "charge", "pdgId")
    if not chunks:
        empty = np.zeros(0)
        return _Chunk(
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.int32),
            empty,
            np.zeros(0, np.int64),
            {k: np.zeros(0, np.int32 if k in ("charge", "pdgId") else np.float64) for k in keys},
        )
    return _Chunk(
        np.concatenate([c.event for c in chunks]),
        np.concatenate([c.njet for c in chunks]),
        np.concatenate([c.label for c in chunks]),
        np.concatenate([c.msoftdrop for c in chunks]),
        np.concatenate([c.ncons for c in chunks]),
        {k: np.concatenate([c.particles[k] for c in chunks]) for k in keys},
    )


def _truncate_chunk(chunk: _Chunk, n_jets: int) -> _Chunk:
    """Keep the first ``n_jets`` jets (whole events, then the hardest jets of the last one)."""
    if chunk.n_jets <= n_jets:
        return chunk
    cum = np.cumsum(chunk.njet)
    n_ev = int(np.searchsorted(cum, n_jets) + 1)
    njet = chunk.njet[:n_ev].copy()
    njet[-1] -= int(cum[n_ev - 1] - n_jets)
    n_part = int(chunk.ncons[:n_jets].sum())
    return _Chunk(
        chunk.event[:n_ev],
        njet,
        chunk.label[:n_jets],
        chunk.msoftdrop[:n_jets],
        chunk.ncons[:n_jets],
        {k: v[:n_part] for k, v in chunk.particles.items()},
    )


class _Worker:
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

    def next_chunk(self) -> _Chunk:
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
        return _Chunk(
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

    def run(self, n_jets: int, max_events: int, report: Callable[[int], None]) -> _Chunk:
        chunks: list[_Chunk] = []
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
                chunks.append(_truncate_chunk(chunk, take))
                have += take
                report(take)
        return _concat_chunks(chunks)

    def info(self) -> dict[str, Any]:
        info = self.pythia.infoPython()
        return {
            "sigma_gen_mb": float(info.sigmaGen()),
            "sigma_err_mb": float(info.sigmaErr()),
            "n_events": int(self.n_events),
            "pythia_version": f"{self.pythia.parm('Pythia:versionNumber'):.3f}",
        }


# ------------------------------------------------------------------------------------------------
# driver: workers as processes, progress, assembly, output
# ------------------------------------------------------------------------------------------------


def _split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if w < n % parts else 0) for w in range(parts)]


def _run_worker(
    kwargs: dict[str, Any], n_jets: int, max_events: int, report: Callable[[int], None]
) -> tuple[_Chunk, dict[str, Any]]:
    worker = _Worker(**kwargs)
    chunk = worker.run(n_jets, max_events, report)
    return chunk, worker.info()


def _worker_process(
    index: int, kwargs: dict[str, Any], n_jets: int, max_events: int, queue: Any
) -> None:  # pragma: no cover - runs in a child process
    try:
        result = _run_worker(kwargs, n_jets, max_events, lambda n: queue.put(("progress", n)))
        queue.put(("done", index, result))
    except BaseException:
        queue.put(("error", index, traceback.format_exc()))


@dataclass
class GeneratedJets:
    """Output of :func:`generate` with ``return_info=True``.

    Attributes
    ----------
    jets : ak.Array
        ``[event][jet][particle]`` Momentum4D records (pt, eta, phi, mass) with ``charge`` and
        ``pdgId``; constituents sorted by pT, jets by pT.
    jet_fields : dict
        ``[event][jet]`` arrays: ``label`` (int32, see :data:`LABELS`), ``msoftdrop`` (GeV),
        ``tau1``, ``tau2``, ``tau3``, ``d2b1``.
    event_fields : dict
        ``[event]`` arrays: ``run``, ``luminosityBlock`` (worker + 1), ``event``.
    metadata : dict
        Everything needed to reproduce the sample (also stored in the output file).
    """

    jets: ak.Array
    jet_fields: dict[str, ak.Array]
    event_fields: dict[str, np.ndarray]
    metadata: dict[str, Any]


def _assemble(chunks: list[_Chunk]) -> tuple[ak.Array, dict[str, ak.Array]]:
    all_ = _concat_chunks(chunks)
    p = all_.particles
    per_jet = ak.unflatten(
        ak.zip(
            {
                "pt": p["pt"],
                "eta": p["eta"],
                "phi": p["phi"],
                "mass": p["mass"],
                "charge": p["charge"],
                "pdgId": p["pdgId"],
            },
            with_name="Momentum4D",
        ),
        all_.ncons,
    )
    jets = ak.unflatten(per_jet, all_.njet)
    jet_fields = {
        "label": ak.unflatten(all_.label, all_.njet),
        "msoftdrop": ak.unflatten(all_.msoftdrop, all_.njet),
    }
    # the classic substructure observables, as NanoAOD stores them (FatJet_tau1..3; D2 with
    # beta = 1 named like NanoAOD's n2b1), over all constituents of each jet
    tau = nsubjettiness(per_jet, n=(1, 2, 3))
    ecf = energy_correlation(per_jet, beta=1.0)
    for name, values in (("tau1", tau.tau1), ("tau2", tau.tau2), ("tau3", tau.tau3),
                         ("d2b1", ecf.d2)):
        jet_fields[name] = ak.unflatten(np.asarray(ak.to_numpy(values), np.float64), all_.njet)
    return jets, jet_fields


def generate(
    process: str,
    n_jets: int,
    *,
    seed: int = 1,
    workers: int = 1,
    output: str | Path | None = None,
    fast: bool = False,
    pt_range: tuple[float, float] = (800.0, 1600.0),
    eta_max: float = 2.5,
    pthat_range: tuple[float, float] | None = None,
    batch_size: int = 50,
    max_events: int | None = None,
    progress: bool = True,
    return_info: bool = False,
) -> ak.Array | GeneratedJets:
    """Generate labelled jets with Pythia 8 + FastJet (and optionally write a PFNano file).

    Parameters
    ----------
    process : {"qcd", "g", "q", "t", "w", "z"}
        Jet class (see the module docstring for processes, labels and truth matching).
    n_jets : int
        Exact number of jets to return (>= 1). Events are stored whole except the last one
        of each worker, which is cut to its hardest jets when needed.
    seed : int
        User seed (>= 0). Worker ``w`` uses Pythia seed :func:`worker_seed` ``(seed, w)``.
    workers : int
        Number of worker processes (>= 1, at most ``n_jets`` are used); ``n_jets`` is split
        evenly and the results are concatenated in worker order. ``workers=1`` runs in this
        process; more workers are started with the ``spawn`` method.
    output : str or Path, optional
        Write a PFNano-layout ROOT file (TTree ``Events`` with ``FatJet_label`` and
        ``FatJet_msoftdrop``, metadata JSON) via :func:`lgae_hep.data.pfnano.write_pfnano`.
    fast : bool
        Multi-parton interactions off (about twice as fast; less underlying event).
    pt_range : (float, float)
        Jet pT window in GeV (exclusive bounds).
    eta_max : float
        Jet |eta| bound.
    pthat_range : (float, float), optional
        Pythia's pT-hat window in GeV; default (700, 2000), see the module docstring.
    batch_size : int
        Events per ``Pythia.nextBatch`` call and per FastJet call.
    max_events : int, optional
        Give up (``RuntimeError``) after this many events per worker; default
        ``1000 + 200 * jets of that worker``.
    progress : bool
        Show a tqdm progress bar over jets.
    return_info : bool
        Return a :class:`GeneratedJets` (jets, labels, soft-drop masses, metadata) instead of
        only the jets.

    Returns
    -------
    ak.Array or GeneratedJets
        ``[event][jet][particle]`` Momentum4D records with ``charge`` and ``pdgId``.

    Raises
    ------
    ValueError
        For an unknown process or out-of-range arguments.
    RuntimeError
        When a worker fails or cannot find enough jets within ``max_events``.
    """
    if process not in PROCESSES:
        raise ValueError(f"process={process!r} is not known; expected one of {sorted(PROCESSES)}")
    if isinstance(n_jets, bool) or not isinstance(n_jets, int | np.integer) or n_jets < 1:
        raise ValueError(f"n_jets={n_jets!r}: expected an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected an integer >= 0")
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1:
        raise ValueError(f"workers={workers!r}: expected an integer >= 1")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: expected an integer >= 1")
    pt_lo, pt_hi = _check_range("pt_range", pt_range)
    if not (np.isfinite(eta_max) and eta_max > 0):
        raise ValueError(f"eta_max={eta_max!r}: expected a finite number > 0")
    pthat = _check_range("pthat_range", pthat_range or DEFAULT_PTHAT_RANGE)
    workers = min(int(workers), int(n_jets))

    import fastjet  # noqa: F401  (fail early, before starting workers, when not installed)
    import pythia8mc  # noqa: F401


    shares = _split(int(n_jets), workers)
    seeds = [worker_seed(int(seed), w) for w in range(workers)]
    kwargs = [
        {
            "process": process,
            "seed": seeds[w],
            "fast": bool(fast),
            "pt_range": (pt_lo, pt_hi),
            "eta_max": float(eta_max),
            "pthat_range": pthat,
            "batch_size": int(batch_size),
        }
        for w in range(workers)
    ]
    limits = [max_events or 1000 + 200 * n for n in shares]


    start = time.perf_counter()
    bar = tqdm(total=int(n_jets), desc=f"generate {process}", unit="jet", disable=not progress)
    results: list[tuple[_Chunk, dict[str, Any]] | None] = [None] * workers
    try:
        if workers == 1:
            results[0] = _run_worker(kwargs[0], shares[0], limits[0], bar.update)
        else:
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            procs = [
                ctx.Process(
                    target=_worker_process,
                    args=(w, kwargs[w], shares[w], limits[w], queue),
                    daemon=True,
                )
                for w in range(workers)
            ]
            for p in procs:
                p.start()
            pending = workers
            try:
                while pending:
                    try:
                        kind, *payload = queue.get(timeout=2.0)
                    except queue_module.Empty:
                        dead = [
                            w
                            for w, p in enumerate(procs)
                            if results[w] is None and not p.is_alive() and queue.empty()
                        ]
                        if dead:
                            raise RuntimeError(
                                f"generator worker {dead[0]} died with exit code "
                                f"{procs[dead[0]].exitcode} without returning its jets"
                            ) from None
                        continue
                    if kind == "progress":
                        bar.update(payload[0])
                    elif kind == "done":
                        results[payload[0]] = payload[1]
                        pending -= 1
                    else:
                        raise RuntimeError(f"generator worker {payload[0]} failed:\n{payload[1]}")
            finally:
                for p in procs:
                    if p.is_alive() and pending:
                        p.terminate()
                    p.join()
    finally:
        bar.close()
    elapsed = time.perf_counter() - start

    chunks = [r[0] for r in results if r is not None]
    infos = [r[1] for r in results if r is not None]
    jets, jet_fields = _assemble(chunks)
    event_fields = {
        "run": np.ones(len(jets), np.uint32),
        "luminosityBlock": np.concatenate(
            [np.full(c.event.size, w + 1, np.uint32) for w, c in enumerate(chunks)]
        ),
        "event": np.concatenate([c.event for c in chunks]).astype(np.uint64),
    }
    metadata = {
        "generator": "lgae_hep.data.generate",
        "lgae_hep_version": __version__,
        "pythia_version": infos[0]["pythia_version"],
        "fastjet_version": _fastjet_version(),
        "process": process,
        "n_jets": int(n_jets),
        "seed": int(seed),
        "workers": int(workers),
        "worker_seeds": seeds,
        "worker_jets": shares,
        "worker_events": [i["n_events"] for i in infos],
        "sigma_gen_mb": [i["sigma_gen_mb"] for i in infos],
        "fast": bool(fast),
        "settings": pythia_settings(process, fast=bool(fast), pthat_range=pthat),
        "pt_range": [pt_lo, pt_hi],
        "eta_max": float(eta_max),
        "jet_definition": f"anti-kt R={JET_R}, E-scheme, visible stable particles",
        "labels": dict(LABELS),
        "matching": (
            "QCD: nearest status-23 hard parton with DeltaR < 0.8 (b-quark jets dropped); "
            "t/W/Z: DeltaR(jet, last resonance copy) < 0.8 and all decay quarks DeltaR < 0.8"
        ),
        "msoftdrop": "beta=0, z_cut=0.1, R0=0.8, C/A reclustering",
        "tau1..3": "N-subjettiness, beta=1, R0=0.8, exclusive-kT axes (lgae_hep.observables)",
        "d2b1": "energy-correlation ratio D2, beta=1, pt_R measure (lgae_hep.observables)",
        "seconds": round(elapsed, 3),
    }
    if output is not None:

        meta_file = {k: v for k, v in metadata.items() if k != "seconds"}
        write_pfnano(
            output,
            jets,
            jet_fields=jet_fields,
            event_fields=event_fields,
            metadata=meta_file,
        )
    if return_info:
        return GeneratedJets(jets, jet_fields, event_fields, metadata)
    return jets


def _fastjet_version() -> str:
    import fastjet

    return str(getattr(fastjet, "__version__", "unknown"))
