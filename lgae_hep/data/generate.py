"""JetNet-like jets from first principles: Pythia 8 + FastJet into a PFNano-layout ROOT file.

The generator reproduces the recipe of the JetNet dataset (Kansal et al. 2021) with the tools
available offline: proton-proton collisions at 13 TeV in Pythia 8 (``pythia8mc``), visible
stable final-state particles clustered with the anti-kT algorithm (R = 0.8) in FastJet, jets in a
pT window (default 0.8 < pT < 1.6 TeV) and |eta| < 2.5, each labelled by truth matching.
This module is the driver (seeds, worker processes, progress, assembly, metadata, output: the
public :func:`generate`); the event physics of one worker (Pythia settings, clustering,
selection) lives in :mod:`.events`, the label vocabulary and the truth matching in
:mod:`.truth`, writing the file in :mod:`.pfnano`.

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
6     hbb     ``HiggsSM:gg2Hg(l:t)``, ``qg2Hq(l:t)``, ``qqbar2Hg(l:t)`` (H + jet), H -> b bbar
              forced: two b prongs at 125 GeV
7     h4q     the same production, H -> W W* -> four quarks forced: four prongs at 125 GeV
              (one W off shell). These two classes are kept out of every choice of the
              anomaly-score study, as stand-ins for signals nobody trained or chose on.
===== ======= ====================================================================================

Resonance matching (t, w, z, hbb, h4q): the jet axis lies within Delta R < 0.8 of the
resonance's *last* copy in the event record (after initial-state recoil, just before it decays)
**and** every quark of its hadronic decay chain (for a top: the b and both quarks of the W;
taken as the status-23 decay products) lies within Delta R < 0.8 of the jet axis, i.e. the decay
is fully merged. Jets of those processes that are not matched (the recoiling parton, partially
merged decays) are dropped.
``process="qcd"`` keeps both gluon and quark jets, ``"g"`` / ``"q"`` only one label.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import vector
from tqdm.auto import tqdm

from lgae_hep import __version__

from ..observables import energy_correlation, nsubjettiness
from .events import (
    DEFAULT_PTHAT_RANGE,
    JET_R,
    JetChunk,
    JetWorker,
    check_range,
    concat_chunks,
    pythia_settings,
    silence_fastjet_banner,
)
from .pfnano import write_pfnano
from .truth import LABELS, PROCESSES

vector.register_awkward()

__all__ = ["DEFAULT_PTHAT_RANGE", "JET_R", "LABELS", "PROCESSES", "GeneratedJets", "generate",
           "pythia_settings", "worker_seed"]

#: Pythia's Random:seed must lie in [1, 900000000]
_MAX_PYTHIA_SEED = 900_000_000
#: the worker class under its former name (``benchmarks/generation.py`` imports it)
_Worker = JetWorker


def worker_seed(seed: int, worker: int) -> int:
    """Pythia ``Random:seed`` of one worker, derived deterministically from ``(seed, worker)``.

    Uses :class:`numpy.random.SeedSequence` so that neighbouring user seeds and worker indices
    give unrelated streams; the result lies in Pythia's allowed range [1, 900000000].
    """
    state = np.random.SeedSequence([int(seed), int(worker)]).generate_state(1, np.uint64)[0]
    return int(state % _MAX_PYTHIA_SEED) + 1


# ------------------------------------------------------------------------------------------------
# driver: workers as processes, progress, assembly, output
# ------------------------------------------------------------------------------------------------


def _split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if w < n % parts else 0) for w in range(parts)]


def _run_worker(
    kwargs: dict[str, Any], n_jets: int, max_events: int, report: Callable[[int], None]
) -> tuple[JetChunk, dict[str, Any]]:
    worker = JetWorker(**kwargs)
    chunk = worker.run(n_jets, max_events, report)
    return chunk, worker.info()


def _worker_process(
    index: int, kwargs: dict[str, Any], n_jets: int, max_events: int, queue: Any
) -> None:  # pragma: no cover - runs in a child process
    try:
        silence_fastjet_banner()  # the banner prints once, from the main process
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


def _assemble(chunks: list[JetChunk]) -> tuple[ak.Array, dict[str, ak.Array]]:
    all_ = concat_chunks(chunks)
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
    process : {"qcd", "g", "q", "t", "w", "z", "hbb", "h4q"}
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
    pt_lo, pt_hi = check_range("pt_range", pt_range)
    if not (np.isfinite(eta_max) and eta_max > 0):
        raise ValueError(f"eta_max={eta_max!r}: expected a finite number > 0")
    pthat = check_range("pthat_range", pthat_range or DEFAULT_PTHAT_RANGE)
    workers = min(int(workers), int(n_jets))

    import fastjet  # noqa: F401  (fail early, before starting workers, when not installed)
    import pythia8mc  # noqa: F401

    if not progress:
        silence_fastjet_banner()  # quiet: no FastJet banner either


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
    results: list[tuple[JetChunk, dict[str, Any]] | None] = [None] * workers
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
