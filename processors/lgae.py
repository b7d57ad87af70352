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
* Scoring goes through :class:`LGAEScorer` (:mod:`lgae_hep.processors.scorer`), a
  ``coffea.ml_tools.numpy_call_wrapper`` on the inference engine of :func:`lgae_hep.score`, so
  the scores are the same numbers; the per-jet columns come from
  :func:`lgae_hep.processors.columns.jet_columns` (also used by ``lgae-hep score``), the
  histograms from :mod:`lgae_hep.processors.hists`, the skims from
  :mod:`lgae_hep.processors.skims`.
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
``hists``: ``score``, ``mass_score``, ``pt_score``, ``msoftdrop_score`` (when the files have
``msoftdrop``) and ``latent`` (see :mod:`lgae_hep.processors.hists`: the score axis is fitted
to the model's QCD quantiles for the metric, widened so that tails stay in range).
:func:`lgae_hep.run.merged_hists` puts all datasets on one ``process`` axis.
``cutflow``: ``events``, ``events_with_jets``, ``jets``, ``jets_selected``, ``jets_empty``
(selected jets without constituents, score 0), ``jets_invalid``, ``jets_scored``,
``jets_outside_domain`` (selected jets far outside the model card's training domain,
:mod:`lgae_hep.domain`; 0 without a domain).
``columns``: :class:`coffea.processor.column_accumulator` per field of
:func:`lgae_hep.processors.columns.jet_columns` (``score``, kinematics, ``jet_idx``: the
join-back key ``events.FatJet[jet_idx]``, event ids, ``latent_<name>``, ...), without
``valid`` and ``outside_domain`` (counted in the cutflow).
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

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from lgae_hep.data import (
    DEFAULT_NUM_PARTICLES,
    constituents_from_events,
    detect_layout,
    resolve_puppi,
)
from lgae_hep.data.dask_adapter import branch_table, on_partitions
from lgae_hep.data.layout import available_names
from lgae_hep.devices import check_device
from lgae_hep.domain import TrainingDomain, check_collection, outside_domain, training_domain
from lgae_hep.inference import DEFAULT_BATCH_SIZE
from lgae_hep.zoo import DEFAULT_MODEL, resolve_metric, resolve_model

from .columns import EVENT_IDS, event_ids, jet_columns
from .hists import fill_hists
from .scorer import LGAEScorer, cached_scorer
from .skims import SKIM_FORMATS, skim_path, write_skim

__all__ = ["BadInputFileError", "LGAEProcessor", "LGAEScorer"]

# coffea's NanoAOD schemas warn, in every worker and for every chunk, about cross-references of
# collections that PFNano files do not have (LowPtElectron, JetSVs, ...). They are irrelevant to
# this processor; silence exactly that message (this module is imported in each worker before
# the events are built, when the processor is unpickled). The same goes for the schema's
# "Branch Photon_mass already exists but its values will be replaced" of PFNano files.
warnings.filterwarnings("ignore", message="Missing cross-reference index", category=RuntimeWarning)
warnings.filterwarnings("ignore", message="Branch .* already exists but its values",
                        category=RuntimeWarning)


class BadInputFileError(OSError, ValueError):
    """An input file lacks what the processor needs (jet collection, PF-candidate table).

    Both an ``OSError`` (coffea's ``Runner(skipbadfiles=True)`` skips such files) and a
    ``ValueError`` (the project's bad-input convention).
    """


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
        collection of another jet radius than the card's (e.g. AK4 ``Jet`` for an AK8
        model) is a ``ValueError`` unless ``force``; another collection of the same radius
        warns when the processor is created (:func:`lgae_hep.domain.check_collection`).
    force : bool
        Score a collection of another jet radius than the model's anyway (it warns).
    metric : str, optional
        Anomaly-score metric (:data:`lgae_hep.zoo.ANOMALY_METRICS`), as in
        :func:`lgae_hep.score` (``None``: the one the model's card recommends, see
        :func:`lgae_hep.zoo.recommended_metric`; the score histogram's binning follows it and
        the model, :func:`lgae_hep.processors.hists.score_edges`).
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
        force: bool = False,
    ) -> None:
        if not isinstance(jets, str) or not jets.isidentifier():
            raise ValueError(f"jets must be a collection name such as 'FatJet', got {jets!r}")
        if not isinstance(max_particles, int | np.integer) or max_particles < 1:
            raise ValueError(f"max_particles must be a positive integer, got {max_particles!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer (jets per network call, "
                             f"e.g. {DEFAULT_BATCH_SIZE}), got {batch_size!r}")
        check_device(device)
        for name, v in (("pt_min", pt_min), ("eta_max", eta_max)):
            if v is not None and not np.isfinite(v):
                raise ValueError(f"{name} must be a finite number or None, got {v!r}")
        if skim is not None and skim not in SKIM_FORMATS:
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
        self.force = bool(force)
        check_collection(jets, training_domain, force=self.force,
                         where=f"LGAEProcessor (model {self.model!r})", stacklevel=2)

    # ------------------------------------------------------------------------------------------
    def scorer(self) -> LGAEScorer:
        """The per-process :class:`LGAEScorer` for these settings (created once per worker)."""
        return cached_scorer(self.model, num_particles=self.max_particles,
                             batch_size=self.batch_size, device=self.device,
                             torch_threads=self.torch_threads, latent=self.latent,
                             metric=self.metric)

    def input_branches(self, available: Any, where: str) -> list[str]:
        """The flat branches this processor reads from inputs that have ``available``: the
        jet layout, the PUPPI weights (:func:`lgae_hep.data.resolve_puppi`) and the event ids.

        Raises
        ------
        BadInputFileError
            No jet layout, or ``puppi=True`` without the weights, in ``where``.
        """
        try:
            layout = detect_layout(available, self.jets, where=where)
            weight = resolve_puppi(available, layout, self.puppi, where=where)
        except ValueError as err:
            raise BadInputFileError(f"{where}: {err}") from err
        names = list(layout.branches())
        if weight is not None:
            names.append(weight)
        return names + [f for f in EVENT_IDS if f in available]

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
        chunk = self.score_chunk(events, filename or "events")
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
            "hists": self._fill_hists(dataset, cols),
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
            assert self.skim_dir is not None
            path = write_skim(skim_path(self.skim_dir, dataset, chunk_key, self.skim), self.skim,
                              self.jets, chunk["event_ids"], chunk["jets"], chunk["result"])
            out["skim_files"] = {str(path)}
        return {dataset: out}

    def score_chunk(self, events: Any, where: str, *, kinematics_dtype: Any = np.float64,
                    index_dtype: Any = np.int64) -> dict[str, Any]:
        """Select, score and flatten one eager chunk (NanoEvents or a flat-branch mapping).

        Returns per-jet numpy ``columns`` (:func:`lgae_hep.processors.columns.jet_columns`:
        ``pt, eta, phi, mass`` as ``kinematics_dtype``, ``jet_idx`` as ``index_dtype``, None
        keeps the stored type; plus ``outside_domain``),
        ``n_per_event`` (selected jets), ``n_events``, ``n_all`` (jets before selection),
        ``event_ids`` and, for the skim writer, ``jets`` and the scorer's ``result``.
        ``lgae-hep score`` and the dask-awkward partitions call it too.
        """
        n_events = len(events[next(iter(events))]) if isinstance(events, Mapping) \
            else len(events)
        consts, jets = self._constituents(events, where)
        n_all = _count_all_jets(events, self.jets)
        result = self.scorer()(consts)
        ids = event_ids(events)
        cols, n_per_event = jet_columns(result, jets, ids, kinematics_dtype=kinematics_dtype,
                                        index_dtype=index_dtype)
        if self.training_domain is not None:
            cols["outside_domain"] = outside_domain(cols["pt"], cols["eta"],
                                                    self.training_domain)
        else:
            cols["outside_domain"] = np.zeros(len(cols["score"]), bool)
        return {"columns": cols, "n_per_event": n_per_event, "n_events": int(n_events),
                "n_all": int(n_all), "event_ids": ids, "jets": jets, "result": result}

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
        names = self.input_branches(available, f"dataset {dataset!r}")

        src = branch_table(events, names, nested)  # [event] records of the flat branches
        table = on_partitions(_dask_partition, src, proc=self, label="lgae-process")
        flat = dak.flatten(table, axis=1)
        score, valid, n_part = flat["score"], flat["valid"], flat["n_constituents"]
        cutflow = {
            "events": dak.num(table, axis=0),
            "events_with_jets": dak.sum(dak.num(table, axis=1) > 0),
            "jets": dak.sum(dak.num(src[f"{self.jets}_pt"], axis=1)),
            "jets_selected": dak.num(flat, axis=0),
            "jets_empty": dak.sum((n_part == 0) & valid),
            "jets_invalid": dak.sum(~valid),
            "jets_scored": dak.sum(np.isfinite(score)),
            "jets_outside_domain": dak.sum(flat["outside_domain"]),
        }
        cols = {f: flat[f] for f in flat.fields if f not in ("valid", "outside_domain")}
        out: dict[str, Any] = {
            "hists": self._fill_hists(dataset, cols, hist_module=hda),
            "cutflow": cutflow,
        }
        if self.latent:
            out["latent_invariants"] = self.scorer().latent_invariants
        if self.columns:
            out["columns"] = cols
        return {dataset: out}

    def _fill_hists(self, dataset: str, cols: Mapping[str, Any],
                    hist_module: Any = hist) -> dict[str, Any]:
        """Histograms of one chunk (:func:`lgae_hep.processors.hists.fill_hists`)."""
        return fill_hists(dataset, cols, metric=self.metric, model=self.model,
                          hist_module=hist_module,
                          latent_invariants=self.scorer().latent_invariants if self.latent
                          else None)

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
    """One eager partition of :meth:`LGAEProcessor._process_dask`: ``[event][jet]`` records of
    the per-jet columns (typetracers: :func:`lgae_hep.data.dask_adapter.on_partitions`)."""
    flat = {f: sub[f] for f in ak.fields(sub)}
    chunk = proc.score_chunk(flat, "dask partition")
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
