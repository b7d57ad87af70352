"""coffea processor scoring jets with the LGAE: histograms, cutflow, columns and optional skims.

::

    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema
    from lgae_hep.processors import LGAEProcessor

    runner = processor.Runner(processor.FuturesExecutor(workers=2), schema=PFNanoAODSchema)
    out = runner({"QCD": ["qcd.root"], "Top": ["top.root"]}, LGAEProcessor("lgae-mix"),
                 treename="Events")
    out["QCD"]["hists"]["score"]          # hist.Hist(process, score)
    out["QCD"]["columns"]["score"].value  # numpy, one entry per selected jet, file/entry order

Design
------
* Stateless and picklable: the processor holds only its settings. The model is loaded lazily,
  once per worker process, through :func:`lgae_hep.zoo.load_model` (module-level cache; plain
  ``torch.load(weights_only=True)`` checkpoints, no TorchScript).
* Constituents are grouped by :func:`lgae_hep.data.constituents_from_events` through the
  ``<jets>PFCands`` (PFNano) or ``<jets>PFCand`` (Run-3 NanoAOD) index table, not
  ``events.FatJet.constituents`` (which fails on real PFNano files). Any schema that exposes the
  flat branches works (``PFNanoAODSchema``, ``NanoAODSchema``); all constituents are kept and
  :func:`lgae_hep.data.to_tensors` keeps the N hardest, so the bad-input policy sees every
  particle, exactly as :func:`lgae_hep.score` does.
* Scoring goes through :class:`LGAEScorer`, a ``coffea.ml_tools.numpy_call_wrapper``: the same
  object serves eager/virtual NanoEvents and dask-awkward arrays. It runs the same inference
  engine (:func:`lgae_hep.inference.forward_batches`, fixed-shape batches, and
  :func:`lgae_hep.inference.apply_invalid_policy`) as :func:`lgae_hep.score`, so the scores are
  the same numbers.
* Determinism: the network runs with ``torch_threads`` intra-op threads (default 1) inside each
  task, whatever the executor, and column outputs are ordered by (file, first entry) in
  :meth:`LGAEProcessor.postprocess`, so ``IterativeExecutor``, ``FuturesExecutor`` and
  ``DaskExecutor`` give bitwise identical outputs on CPU.
* Bad input: invalid jets (non-finite or unphysical constituents) get a NaN score, are counted in
  the cutflow (``jets_invalid``) and are not filled into histograms. A file without the jet
  collection or its PF-candidate table raises :class:`BadInputFileError`, an ``OSError`` (so
  coffea's ``skipbadfiles=True`` skips the file) and a ``ValueError`` naming file and branch.

Output (per dataset)
--------------------
``hists``: ``score`` (process, score), ``latent`` (process, invariant, value = asinh of a latent
Lorentz invariant), ``mass_score`` (process, mass, score), ``pt_score`` (process, pt, score),
``msoftdrop_score`` (process, soft-drop mass, score; when the files have ``msoftdrop``). The
score axis is log-spaced for the reconstruction metrics and linear for the latent-density
metrics (``-log p`` can be negative), labelled from
the score registry (:mod:`lgae_hep.scoring.registry`).
:func:`lgae_hep.run.merged_hists` puts all datasets on one ``process`` axis.
``cutflow``: ``events``, ``events_with_jets``, ``jets``, ``jets_selected``, ``jets_empty``
(selected jets without constituents, score 0), ``jets_invalid``, ``jets_scored``,
``jets_outside_domain`` (selected jets far outside the model card's training domain,
:mod:`lgae_hep.domain`; 0 without a domain).
``columns``: :class:`coffea.processor.column_accumulator` per field: ``score``, ``pt``, ``eta``,
``phi``, ``mass``, ``jet_idx`` (the jet's index in its event's original ``<jets>`` collection:
the join-back key, ``events.FatJet[jet_idx]``), ``n_constituents``, ``run``,
``luminosityBlock``, ``event``, ``label`` (when the file has ``<jets>_label``), ``msoftdrop``
(when present) and ``latent_<name>`` for every latent column of
:func:`lgae_hep.inference.latent_columns`.

dask-awkward: :meth:`LGAEProcessor.process` also accepts ``mode="dask"`` NanoEvents
(``coffea.dataset_tools.apply_to_fileset``); the output then holds ``hist.dask`` histograms,
dask-awkward columns and lazy cutflow numbers, computed per partition by the same code
(:func:`lgae_hep.run.run_dask` computes them and returns the ``Runner`` layout, equal to the
``Runner``'s output). Skims are written on the ``Runner`` path only.
``latent_invariants`` (with ``latent=True``): the names (without ``latent_``) of the latent
columns that are Lorentz invariants, in column order (a set of ``(position, name)`` before
:meth:`LGAEProcessor.postprocess`, so that chunks merge).
``files``: set of input files that produced at least one chunk; ``skim_files``: files written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import numpy as np
import torch
from coffea import processor
from coffea.ml_tools.helper import nonserializable_attribute, numpy_call_wrapper

from lgae_hep.data import DEFAULT_NUM_PARTICLES, constituents_from_events, detect_layout, to_tensors
from lgae_hep.data.nanoaod import PUPPI_FIELD, available_names
from lgae_hep.domain import TrainingDomain, outside_domain, training_domain
from lgae_hep.inference import (
    DEFAULT_BATCH_SIZE,
    apply_invalid_policy,
    check_num_particles,
    empty_latent,
    forward_batches,
    latent_columns,
)
from lgae_hep.scoring.registry import check_score
from lgae_hep.zoo import (
    DEFAULT_MODEL,
    load_model,
    model_num_particles,
    resolve_metric,
    resolve_model,
)

__all__ = ["BadInputFileError", "LGAEProcessor", "LGAEScorer"]

# coffea's NanoAOD schemas warn, in every worker and for every chunk, about cross-references of
# collections that PFNano files do not have (LowPtElectron, JetSVs, ...). They are irrelevant to
# this processor; silence exactly that message (this module is imported in each worker before
# the events are built, when the processor is unpickled).
warnings.filterwarnings("ignore", message="Missing cross-reference index", category=RuntimeWarning)

MASS_BINS = (60, 0.0, 300.0)
PT_BINS = (60, 0.0, 3000.0)
#: Latent invariants are histogrammed as asinh(value): linear near 0, logarithmic beyond 1.
#: Bins of 0.08 in asinh: |v| < 1 (the bundled models' typical range) spans ~22 bins, and the
#: axis still reaches |v| ~ 1500 before the overflow.
LATENT_BINS = (200, -8.0, 8.0)


class BadInputFileError(OSError, ValueError):
    """An input file lacks what the processor needs (jet collection, PF-candidate table).

    Both an ``OSError`` (coffea's ``Runner(skipbadfiles=True)`` skips such files) and a
    ``ValueError`` (the project's bad-input convention).
    """


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


class LGAEScorer(nonserializable_attribute, numpy_call_wrapper):
    """``coffea.ml_tools`` wrapper: jets in, per-jet anomaly score and latent columns out.

    Call it on ``[event][jet][particle]`` (or ``[jet][particle]``) Lorentz-vector arrays, eager
    awkward or dask-awkward. It returns a dict of arrays with the input's ``[event][jet]``
    structure: ``score`` and ``latent_<name>`` (see :func:`lgae_hep.inference.latent_columns`;
    :attr:`latent_invariants` names the invariant ones), plus ``valid`` (bool) and
    ``n_particles``.

    The model is a non-serialisable attribute created on first use in each process
    (``_create_model``), through the :func:`lgae_hep.zoo.load_model` cache.

    Parameters
    ----------
    model : str or Path
        Bundled model name or checkpoint path.
    num_particles : int, optional
        Particles per jet expected by the caller; must equal the model's (checked on load).
    batch_size : int
        Jets per network call (fixed shape, as in :func:`lgae_hep.score`).
    device : str, optional
        Torch device; default CPU.
    torch_threads : int or None
        Intra-op threads while the network runs (restored afterwards); ``None`` leaves torch's
        setting alone.
    latent : bool
        Also return the latent columns.
    metric : {None, "chamfer", "chamfer-dr"}
        Anomaly-score metric, as in :func:`lgae_hep.score` (``None``: the model card's).
    """

    def __init__(
        self,
        model: str | Path = DEFAULT_MODEL,
        *,
        num_particles: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        device: str | None = None,
        torch_threads: int | None = 1,
        latent: bool = True,
        metric: str | None = None,
    ) -> None:
        nonserializable_attribute.__init__(self, ["model"])
        numpy_call_wrapper.__init__(self)
        resolve_model(model)  # fail early with the list of bundled models
        self.model_name = str(model)
        self.num_particles = num_particles
        self.batch_size = int(batch_size)
        self.device = device
        self.torch_threads = torch_threads
        self.latent = bool(latent)
        self.metric = resolve_metric(metric, str(model))
        self._invariants: list[str] | None = None

    # -- non-serialisable model ----------------------------------------------------------------
    def _create_model(self) -> Any:
        model = load_model(self.model_name, device=self.device)
        check_num_particles(model, self.num_particles)
        return model

    @property
    def latent_invariants(self) -> list[str]:
        """Names (without ``latent_``) of the latent columns that are Lorentz invariants, in
        column order (:func:`lgae_hep.inference.latent_columns` of the model's latent layout;
        computed once per process with one dry forward pass)."""
        if self._invariants is None:
            self._invariants = latent_columns(empty_latent(self.model, self._n())).invariants
        return list(self._invariants)

    # -- awkward side --------------------------------------------------------------------------
    def prepare_awkward(self, jets: Any) -> tuple[tuple, dict]:
        """Jets -> padded numpy-compatible arrays (works per partition for dask-awkward)."""
        lib = self.get_awkward_lib(jets)
        if lib is None:
            raise ValueError(
                f"LGAEScorer expects an awkward or dask-awkward array of jets, got {type(jets)}"
            )
        n = self._n()
        if lib is ak:
            packed = _tensorize(jets, n)
        else:
            packed = lib.map_partitions(_tensorize, jets, n, label="lgae_tensorize")
        return (), {
            "p4": packed["p4"],
            "mask": packed["mask"],
            "valid": packed["valid"],
            "counts": packed["counts"],
        }

    def _n(self) -> int:
        return int(self.num_particles) if self.num_particles else model_num_particles(self.model)

    def validate_numpy_input(self, p4: np.ndarray, mask: np.ndarray, valid: np.ndarray,
                             counts: np.ndarray) -> None:
        """Shapes must be (B, N, 4), (B, N), (B,), (B,)."""
        b = len(p4)
        if p4.ndim != 3 or p4.shape[-1] != 4 or mask.shape != p4.shape[:2]:
            raise ValueError(f"expected p4 (B, N, 4) and mask (B, N), got {p4.shape}, {mask.shape}")
        if valid.shape != (b,) or counts.shape != (b,):
            raise ValueError(f"expected valid and counts of shape ({b},)")

    def numpy_call(self, p4: np.ndarray, mask: np.ndarray, valid: np.ndarray,
                   counts: np.ndarray) -> dict[str, np.ndarray]:
        """Score padded jets: returns flat per-jet columns (``score``, ``latent_*``, ...)."""
        model = self.model
        b = len(p4)
        valid = np.asarray(valid, dtype=bool)
        counts = np.asarray(counts, dtype=np.int64)
        with _torch_threads(self.torch_threads):
            res = forward_batches(
                model,
                torch.from_numpy(np.ascontiguousarray(p4)),
                torch.from_numpy(np.ascontiguousarray(mask, dtype=bool)),
                batch_size=self.batch_size,
                want_latent=self.latent,
                want_reco=False,
                metric=self.metric,
            )
        if self.latent and b == 0:
            res.latent = empty_latent(model, self._n())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the processor counts invalid jets in its cutflow
            valid = apply_invalid_policy(res, valid, counts, "LGAEScorer")
        out = {"score": res.score, "valid": valid, "n_particles": counts}
        if self.latent and res.latent is not None:
            out.update({f"latent_{k}": v for k, v in latent_columns(res.latent).columns.items()})
        return out

    def postprocess_awkward(self, return_array: Any, jets: Any) -> dict[str, Any]:
        """Put the flat per-jet columns back into the ``[event][jet]`` structure."""
        lib = self.get_awkward_lib(jets)
        if jets.ndim == 2:
            return dict(return_array)
        n_jets = lib.num(jets, axis=1)
        return {k: lib.unflatten(v, n_jets) for k, v in dict(return_array).items()}


def _tensorize(jets: ak.Array, n: int) -> ak.Array:
    """One partition of jets -> record array ``{p4, mask, valid, counts}`` (one per jet).

    Runs :func:`lgae_hep.data.to_tensors` (numpy backend); on a typetracer (dask-awkward's
    metadata pass) it runs on an empty array of the same form and returns a typetracer.
    """
    if ak.backend(jets) == "typetracer":
        empty = ak.typetracer.length_zero_if_typetracer(jets)
        out = _tensorize(empty, n)
        return ak.Array(out.layout.to_typetracer(forget_length=True), behavior=out.behavior)
    flat = jets
    while flat.ndim > 2:
        flat = ak.flatten(flat, axis=1)
    if len(flat) == 0:
        p4 = np.zeros((0, n, 4), np.float64)
        mask = np.zeros((0, n), bool)
        valid = np.zeros(0, bool)
        counts = np.zeros(0, np.int64)
    else:
        # float64 whatever the model's precision: the scoring engine boosts and scores in
        # float64 and casts to the model's dtype only for the network (as lgae_hep.score)
        jt = to_tensors(flat, n, backend="numpy", dtype=np.float64)
        p4, mask, valid, counts = jt.p4, jt.mask, jt.valid, jt.counts
    return ak.zip(
        {
            "p4": ak.from_numpy(p4, regulararray=True),
            "mask": ak.from_numpy(mask, regulararray=True),
            "valid": ak.from_numpy(np.asarray(valid, dtype=bool)),
            "counts": ak.from_numpy(np.asarray(counts, dtype=np.int64)),
        },
        depth_limit=1,
    )


#: One scorer (and so one loaded model) per settings per process.
_SCORERS: dict[tuple, LGAEScorer] = {}


class LGAEProcessor(processor.ProcessorABC):
    """Score the jets of NanoAOD/PFNano events with an LGAE (see the module docstring).

    Parameters
    ----------
    model : str or Path
        Bundled model name (default :data:`lgae_hep.zoo.DEFAULT_MODEL`) or checkpoint path.
        Checked when constructed (the error lists the bundled models), loaded lazily once per
        worker.
    jets : str
        Jet collection (``FatJet``; its ``<jets>PFCands``/``<jets>PFCand`` table is used).
    pt_min, eta_max : float or None
        Jet selection ``pt > pt_min`` (GeV) and ``|eta| < eta_max``.
    mass_range : (float, float), optional
        Jet selection ``lo <= mass < hi`` (GeV).
    max_particles : int
        Particles per jet fed to the model; must equal the model's ``num_particles`` (checked on
        load, ``ValueError`` otherwise). Jets keep their ``max_particles`` hardest particles.
    batch_size : int
        Jets per network call.
    device : str, optional
        Torch device of the workers (default CPU).
    torch_threads : int or None
        Intra-op threads per task (default 1: deterministic and no oversubscription when
        several workers share a machine).
    latent : bool
        Fill latent histograms and columns.
    columns : bool
        Return per-jet column outputs.
    skim : None, "root" or "parquet"
        Also write, per chunk, a file with ``run``, ``luminosityBlock``, ``event`` and the
        selected jets' ``<jets>_pt, _eta, _phi, _mass, _lgaeScore, _lgaeLatent_<name>`` (ROOT:
        TTree ``Events`` via ``mktree``; parquet: one row per event). Input files are never
        touched.
    skim_dir : str or Path, optional
        Where skims go: ``<skim_dir>/<dataset>/<file stem>_<hash>_<start>-<stop>.<ext>``, with
        ``<hash>`` the first 8 hex digits of the SHA-256 of the input file's full path or URL,
        so two inputs with the same file name (``d1/tree_1.root``, ``d2/tree_1.root``) never
        overwrite each other; required with ``skim``. Each skim holds the *selected* jets
        (``n<jets>`` counts them) and ``<jets>_lgaeIdx``, each jet's index in the input
        event's original collection: ``events.FatJet[skim.FatJet_lgaeIdx]`` is the scored jet.
    puppi : bool or None
        PUPPI-weight the constituents (``PFCands_puppiWeight``), as in
        :func:`lgae_hep.read_nanoaod`: ``None`` (default) when the branch exists.
    training_domain : "card", None or lgae_hep.domain.TrainingDomain
        Count (cutflow ``jets_outside_domain``) the selected jets far outside the model's
        training domain (:mod:`lgae_hep.domain`); ``"card"`` reads it from the bundled
        model's card (no domain for models without a card), ``None`` switches it off. A
        collection other than the card's (e.g. AK4 ``Jet`` for an AK8 model) warns when the
        processor is created.
    metric : str, optional
        Anomaly-score metric (:data:`lgae_hep.zoo.ANOMALY_METRICS`), as in
        :func:`lgae_hep.score` (``None``: the one the model's card recommends, see
        :func:`lgae_hep.zoo.recommended_metric`; the score histogram's binning and label follow
        it).
    """

    def __init__(
        self,
        model: str | Path = DEFAULT_MODEL,
        jets: str = "FatJet",
        pt_min: float | None = None,
        eta_max: float | None = None,
        max_particles: int = DEFAULT_NUM_PARTICLES,
        *,
        mass_range: tuple[float, float] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        device: str | None = None,
        torch_threads: int | None = 1,
        latent: bool = True,
        columns: bool = True,
        skim: str | None = None,
        skim_dir: str | Path | None = None,
        metric: str | None = None,
        puppi: bool | None = None,
        training_domain: Any = "card",
    ) -> None:
        if not isinstance(jets, str) or not jets.isidentifier():
            raise ValueError(f"jets must be a collection name such as 'FatJet', got {jets!r}")
        if not isinstance(max_particles, int | np.integer) or max_particles < 1:
            raise ValueError(f"max_particles must be a positive integer, got {max_particles!r}")
        for name, v in (("pt_min", pt_min), ("eta_max", eta_max)):
            if v is not None and not np.isfinite(v):
                raise ValueError(f"{name} must be a finite number or None, got {v!r}")
        if skim not in (None, "root", "parquet"):
            raise ValueError(f"skim must be None, 'root' or 'parquet', got {skim!r}")
        if skim is not None and skim_dir is None:
            raise ValueError("skim needs skim_dir=<output directory>")
        if torch_threads is not None and (not isinstance(torch_threads, int) or torch_threads < 1):
            raise ValueError(
                f"torch_threads must be a positive integer or None, got {torch_threads!r}"
            )
        resolve_model(model)
        self.metric = resolve_metric(metric, str(model))
        self.model = str(model)
        self.jets = jets
        self.pt_min = pt_min
        self.eta_max = eta_max
        self.mass_range = tuple(mass_range) if mass_range is not None else None
        self.max_particles = int(max_particles)
        self.batch_size = int(batch_size)
        self.device = device
        self.torch_threads = torch_threads
        self.latent = bool(latent)
        self.columns = bool(columns)
        self.skim = skim
        self.skim_dir = str(Path(skim_dir).resolve()) if skim_dir is not None else None
        if puppi not in (None, True, False):
            raise ValueError(f"puppi must be None, True or False, got {puppi!r}")
        self.puppi = puppi
        if isinstance(training_domain, str) and training_domain == "card":
            training_domain = _card_domain(self.model)
        if training_domain is not None and not isinstance(training_domain, TrainingDomain):
            raise ValueError("training_domain must be 'card', None or a "
                             f"lgae_hep.domain.TrainingDomain, got {training_domain!r}")
        self.training_domain = training_domain
        if training_domain is not None and jets != training_domain.collection:
            from lgae_hep.domain import OutsideTrainingDomainWarning

            warnings.warn(
                f"LGAEProcessor: model {self.model!r} was trained on "
                f"{training_domain.describe()}; the {jets!r} collection is outside its "
                "training domain (scores are not calibrated)",
                OutsideTrainingDomainWarning, stacklevel=2)

    # ------------------------------------------------------------------------------------------
    def scorer(self) -> LGAEScorer:
        """The per-process :class:`LGAEScorer` for these settings (created once per worker)."""
        key = (self.model, self.max_particles, self.batch_size, self.device,
               self.torch_threads, self.latent, self.metric)
        scorer = _SCORERS.get(key)
        if scorer is None:
            scorer = LGAEScorer(
                self.model,
                num_particles=self.max_particles,
                batch_size=self.batch_size,
                device=self.device,
                torch_threads=self.torch_threads,
                latent=self.latent,
                metric=self.metric,
            )
            _SCORERS[key] = scorer
        return scorer

    def _constituents(self, events: Any, where: str) -> tuple[ak.Array, ak.Array]:
        try:
            return constituents_from_events(
                events,
                self.jets,
                None,  # keep all; to_tensors applies the bad-input policy and keeps N hardest
                pt_min=self.pt_min,
                eta_max=self.eta_max,
                mass_range=self.mass_range,
                with_jets=True,
                puppi=self.puppi,
            )
        except ValueError as err:
            if "not found" in str(err):
                raise BadInputFileError(f"{where}: {err}") from err
            raise

    # ------------------------------------------------------------------------------------------
    def process(self, events: Any) -> dict[str, Any]:
        """Score one chunk of events; returns ``{dataset: {...}}`` (see the module docstring).

        ``events`` may be eager/virtual NanoEvents (``processor.Runner``) or dask-awkward
        NanoEvents (``NanoEventsFactory.from_root(..., mode="dask")`` or
        ``coffea.dataset_tools.apply_to_fileset``): then the output holds dask collections
        (``hist.dask`` histograms, dask-awkward columns, lazy cutflow numbers) to compute with
        ``dask.compute``; :func:`lgae_hep.run.run_dask` does that and returns what the
        ``Runner`` returns.
        """
        if type(events).__module__.startswith("dask_awkward"):
            return self._process_dask(events)
        meta = getattr(events, "metadata", None) or {}
        dataset = str(meta.get("dataset", "dataset"))
        filename = str(meta.get("filename", ""))
        start, stop = int(meta.get("entrystart", 0) or 0), int(meta.get("entrystop", 0) or 0)
        chunk_key = (filename, start, stop)
        chunk = self._score_chunk(events, filename or "events")
        cols, n_per_event = chunk["columns"], chunk["n_per_event"]
        score, valid, n_part = cols["score"], cols["valid"], cols["n_constituents"]
        cutflow = {
            "events": chunk["n_events"],
            "events_with_jets": int((n_per_event > 0).sum()),
            "jets": chunk["n_all"],
            "jets_selected": len(score),
            "jets_empty": int(((n_part == 0) & valid).sum()),
            "jets_invalid": int((~valid).sum()),
            "jets_scored": int(np.isfinite(score).sum()),
            "jets_outside_domain": int(cols["outside_domain"].sum()),
        }
        out: dict[str, Any] = {
            "hists": self._fill_hists(dataset, score, cols, cols),
            "cutflow": cutflow,
            "files": {filename} if filename else set(),
        }
        if self.latent:
            # a set of (position, name) merges across chunks; postprocess makes it a list
            out["latent_invariants"] = set(enumerate(self.scorer().latent_invariants))
        if self.columns:
            out["chunks"] = {chunk_key: {k: v for k, v in cols.items()
                                         if k not in ("valid", "outside_domain")}}
        if self.skim is not None:
            path = self._write_skim(dataset, chunk_key, chunk["event_ids"], chunk["n_events"],
                                    chunk["jets"], chunk["result"])
            out["skim_files"] = {str(path)}
        return {dataset: out}

    def _score_chunk(self, events: Any, where: str) -> dict[str, Any]:
        """Select, score and flatten one eager chunk (NanoEvents or a flat-branch mapping).

        Returns per-jet numpy ``columns`` (``score``, ``valid``, ``n_constituents``, ``pt``,
        ``eta``, ``phi``, ``mass``, ``jet_idx``, ``outside_domain``, the optional jet fields,
        the event ids and the latent columns), ``n_per_event`` (selected jets), ``n_events``,
        ``n_all`` (jets before selection), ``event_ids`` and what the skim writer needs.
        """
        n_events = len(events[next(iter(events))]) if isinstance(events, Mapping) \
            else len(events)
        consts, jets = self._constituents(events, where)
        n_all = _count_all_jets(events, self.jets)
        result = self.scorer()(consts)
        flat = {k: np.asarray(ak.to_numpy(ak.flatten(v, axis=None)))
                for k, v in result.items()}
        jets_flat = ak.flatten(jets, axis=1)
        cols: dict[str, np.ndarray] = {
            "score": flat["score"].astype(np.float64),
            "valid": flat["valid"].astype(bool),
            "n_constituents": flat["n_particles"].astype(np.int64),
        }
        for f in ("pt", "eta", "phi", "mass"):
            cols[f] = np.asarray(ak.to_numpy(jets_flat[f]), dtype=np.float64)
        cols["jet_idx"] = np.asarray(ak.to_numpy(jets_flat["idx"]), dtype=np.int64)
        for f in ("label", "msoftdrop"):
            if f in ak.fields(jets_flat):
                cols[f] = np.asarray(ak.to_numpy(jets_flat[f]))
        n_per_event = np.asarray(ak.to_numpy(ak.num(jets, axis=1)), dtype=np.int64)
        event_ids = {}
        names = set(events) if isinstance(events, Mapping) else set(ak.fields(events))
        for f in ("run", "luminosityBlock", "event"):
            if f in names:
                event_ids[f] = np.asarray(ak.to_numpy(events[f]))
                cols[f] = np.repeat(event_ids[f], n_per_event)
        cols.update({k: v for k, v in flat.items() if k.startswith("latent_")})
        if self.training_domain is not None:
            cols["outside_domain"] = outside_domain(cols["pt"], cols["eta"],
                                                    self.training_domain)
        else:
            cols["outside_domain"] = np.zeros(len(cols["score"]), bool)
        return {"columns": cols, "n_per_event": n_per_event, "n_events": int(n_events),
                "n_all": int(n_all), "event_ids": event_ids, "jets": jets, "result": result}

    # -- dask-awkward --------------------------------------------------------------------------
    def _process_dask(self, events: Any) -> dict[str, Any]:
        """:meth:`process` on dask-awkward NanoEvents: the eager chunk code per partition."""
        import dask_awkward as dak
        import hist.dask as hda

        if self.skim is not None:
            raise ValueError(
                "skim files are written by the processor.Runner path; with dask-awkward events "
                "write the returned columns yourself (e.g. dask_awkward.to_parquet)")
        meta = getattr(events, "metadata", None) or {}
        dataset = str(meta.get("dataset", "dataset"))
        available, nested = available_names(events)
        try:
            layout = detect_layout(available, self.jets, where=f"dataset {dataset!r}")
        except ValueError as err:
            raise BadInputFileError(f"dataset {dataset!r}: {err}") from err
        names = list(layout.branches())
        weight = f"{layout.cands}_{PUPPI_FIELD}"
        if self.puppi is not False and weight in available:
            names.append(weight)
        names += [f for f in ("run", "luminosityBlock", "event") if f in available]

        def get(name: str) -> Any:
            if not nested or "_" not in name:
                return events[name]
            coll, field = name.split("_", 1)
            return events[coll][field]

        sub = dak.zip({n: get(n) for n in names}, depth_limit=1)
        table = dak.map_partitions(_dask_partition, sub, proc=self, label="lgae-process")
        flat = dak.flatten(table, axis=1)
        score, valid, n_part = flat["score"], flat["valid"], flat["n_constituents"]
        cutflow = {
            "events": dak.num(table, axis=0),
            "events_with_jets": dak.sum(dak.num(table, axis=1) > 0),
            "jets": dak.sum(dak.num(get(f"{self.jets}_pt"), axis=1)),
            "jets_selected": dak.num(flat, axis=0),
            "jets_empty": dak.sum((n_part == 0) & valid),
            "jets_invalid": dak.sum(~valid),
            "jets_scored": dak.sum(np.isfinite(score)),
            "jets_outside_domain": dak.sum(flat["outside_domain"]),
        }
        cols = {f: flat[f] for f in flat.fields if f not in ("valid", "outside_domain")}
        out: dict[str, Any] = {
            "hists": self._fill_hists(dataset, score, cols, cols, hist_module=hda),
            "cutflow": cutflow,
        }
        if self.latent:
            out["latent_invariants"] = self.scorer().latent_invariants
        if self.columns:
            out["columns"] = cols
        return {dataset: out}

    def _fill_hists(self, dataset: str, score: Any, kin: Mapping[str, Any],
                    flat: Mapping[str, Any], hist_module: Any = hist) -> dict[str, Any]:
        """Histograms of one chunk (``hist_module=hist.dask`` for dask-awkward columns)."""
        spec = check_score(self.metric)
        bins, label, log = spec.axis, spec.label, spec.log_axis
        score_ax = hist.axis.Regular(*bins, name="score", label=label,
                                     transform=hist.axis.transform.log if log else None)

        def cat() -> Any:
            return hist.axis.StrCategory([], name="process", label="Process", growth=True)

        ok = np.isfinite(score)
        H = hist_module.Hist
        h_score = H(cat(), score_ax, storage=hist.storage.Double())
        h_score.fill(process=dataset, score=score[ok])
        h_mass = H(cat(), hist.axis.Regular(*MASS_BINS, name="mass",
                                            label="Jet mass [GeV]"), score_ax)
        h_mass.fill(process=dataset, mass=kin["mass"][ok], score=score[ok])
        h_pt = H(cat(), hist.axis.Regular(*PT_BINS, name="pt",
                                          label="Jet $p_{T}$ [GeV]"), score_ax)
        h_pt.fill(process=dataset, pt=kin["pt"][ok], score=score[ok])
        hists = {"score": h_score, "mass_score": h_mass, "pt_score": h_pt}
        if "msoftdrop" in kin:
            h_msd = H(cat(), hist.axis.Regular(*MASS_BINS, name="msoftdrop",
                                               label=r"Jet $m_{SD}$ [GeV]"), score_ax)
            h_msd.fill(process=dataset, msoftdrop=kin["msoftdrop"][ok], score=score[ok])
            hists["msoftdrop_score"] = h_msd
        if self.latent:
            h_lat = H(
                cat(),
                hist.axis.StrCategory([], name="invariant", label="Latent invariant",
                                      growth=True),
                hist.axis.Regular(*LATENT_BINS, name="value",
                                  label="asinh(latent invariant)"),
            )
            for name in self.scorer().latent_invariants:
                v = flat[f"latent_{name}"][ok]
                h_lat.fill(process=dataset, invariant=name, value=np.arcsinh(v))
            hists["latent"] = h_lat
        return hists

    def _write_skim(self, dataset: str, chunk_key: tuple, event_ids: Mapping[str, np.ndarray],
                    n_events: int, jets: ak.Array, result: Mapping[str, Any]) -> Path:
        filename, start, stop = chunk_key
        assert self.skim_dir is not None
        outdir = Path(self.skim_dir) / _safe(dataset)
        outdir.mkdir(parents=True, exist_ok=True)
        stem = _safe(Path(filename).stem or "events")
        digest = hashlib.sha256(filename.encode()).hexdigest()[:8]
        ext = "root" if self.skim == "root" else "parquet"
        target = outdir / f"{stem}_{digest}_{start}-{stop}.{ext}"
        branches: dict[str, Any] = {}
        for f in ("run", "luminosityBlock", "event"):
            if f in event_ids:
                branches[f] = event_ids[f]
        jet_rec: dict[str, Any] = {f: ak.values_astype(jets[f], np.float32)
                                   for f in ("pt", "eta", "phi", "mass")}
        jet_rec["lgaeIdx"] = ak.values_astype(jets["idx"], np.int32)
        jet_rec["lgaeScore"] = ak.values_astype(result["score"], np.float32)
        for k, v in result.items():
            if k.startswith("latent_"):
                jet_rec["lgaeLatent_" + k[len("latent_"):]] = ak.values_astype(v, np.float32)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=outdir)
        os.close(fd)
        try:
            if self.skim == "root":
                import uproot

                # TTree (not RNTuple): mktree + extend, jagged branches <jets>_* with n<jets>
                jet_tree = {name: ak.without_parameters(col) for name, col in jet_rec.items()}
                types: dict[str, Any] = {k: v.dtype for k, v in branches.items()}
                data: dict[str, Any] = dict(branches)
                zipped = ak.zip(jet_tree)
                types[self.jets] = zipped.type
                data[self.jets] = zipped
                with uproot.recreate(tmp) as fout:
                    tree = fout.mktree("Events", types, counter_name=lambda c: "n" + c)
                    tree.extend(data)
            else:
                cols = dict(branches)
                for name, col in jet_rec.items():
                    cols[f"{self.jets}_{name}"] = col
                ak.to_parquet(ak.zip(cols, depth_limit=1), tmp)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return target

    # ------------------------------------------------------------------------------------------
    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        """Assemble per-chunk columns in (file, first entry) order into column accumulators and
        turn ``latent_invariants`` into the list of invariant latent column names."""
        for out in accumulator.values():
            if isinstance(out, dict) and isinstance(out.get("latent_invariants"), set):
                out["latent_invariants"] = [name for _, name in sorted(out["latent_invariants"])]
            if not isinstance(out, dict) or "chunks" not in out:
                continue
            chunks = out.pop("chunks")
            keys = sorted(chunks)
            names: list[str] = []
            for k in keys:
                names += [n for n in chunks[k] if n not in names]
            cols = {}
            for name in names:
                parts = [np.asarray(chunks[k][name]) for k in keys if name in chunks[k]]
                cols[name] = processor.column_accumulator(np.concatenate(parts))
            out["columns"] = cols
            out["chunk_order"] = keys
        return accumulator


def _card_domain(model: str) -> TrainingDomain | None:
    try:
        return training_domain(model)
    except Exception:  # noqa: BLE001 - a card without a readable domain: no domain check
        return None


def _dask_partition(sub: ak.Array, proc: LGAEProcessor) -> ak.Array:
    """One partition of :meth:`LGAEProcessor._process_dask`: ``[event][jet]`` records of the
    per-jet columns (typetracer in, typetracer out for dask-awkward's metadata pass)."""
    if ak.backend(sub) == "typetracer":
        empty = ak.typetracer.length_zero_if_typetracer(sub)
        out = _dask_partition(empty, proc)
        return ak.Array(out.layout.to_typetracer(forget_length=True))
    flat = {f: sub[f] for f in ak.fields(sub)}
    chunk = proc._score_chunk(flat, "dask partition")
    cols = {k: ak.from_numpy(np.ascontiguousarray(v)) for k, v in chunk["columns"].items()}
    return ak.unflatten(ak.zip(cols, depth_limit=1), chunk["n_per_event"])


def _count_all_jets(events: Any, jets: str) -> int:
    if isinstance(events, Mapping):
        return int(ak.sum(ak.num(events[f"{jets}_pt"], axis=1)))
    try:
        coll = events[jets]
        pt = coll["pt"] if ak.fields(coll) else events[f"{jets}_pt"]
    except Exception:  # noqa: BLE001 - flat uproot layout
        pt = events[f"{jets}_pt"]
    return int(ak.sum(ak.num(pt, axis=1)))


def _safe(name: str) -> str:
    keep = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in name)
    return keep or uuid.uuid4().hex
