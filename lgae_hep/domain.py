"""Input checks shared by :func:`lgae_hep.score` and the coffea processor.

Two questions a user cannot see from a score alone:

* **Is the input constituents at all?** ``lgae_hep.score(events.FatJet)`` hands jets (records
  named ``FatJet`` with ``msoftdrop``, ``nConstituents``, ...) where ``[...][jet][particle]``
  constituents are expected; each event would be treated as one "jet" whose "particles" are
  FatJets. :func:`check_constituents` raises a ``ValueError`` that says so and names the fix
  (:func:`lgae_hep.read_nanoaod`).
* **Are the jets inside the model's training domain?** A model trained on AK8 jets with
  800 < pT < 1600 GeV says little about 200 GeV jets or AK4 jets. :func:`training_domain` reads
  the domain from the model card and :func:`warn_outside_domain` warns (one
  :class:`OutsideTrainingDomainWarning` per call) with the number of jets *far* outside it:
  pT below half the lower edge or above twice the upper edge, or ``|eta|`` beyond
  ``eta_max + 0.5``. The factor 2 is deliberate: jets near the edges are fine to score, the
  warning is for jets where the score has no calibration at all.
* **Are they the right kind of jets?** :func:`check_collection`: jets of another radius than
  the card's (AK4 ``Jet`` for an AK8 model) are refused with a ``ValueError`` unless
  ``force=True`` (``--force``); another collection of the same radius only warns.

The card's domain is its ``"training_domain"`` entry (``{"collection": "FatJet",
"pt_range": [lo, hi], "eta_max": x, "jet_radius": 0.8}``) when present; cards of models trained
on :func:`lgae_hep.data.generate` samples without that entry get the generator's defaults
(AK8, 800-1600 GeV, ``|eta| < 2.5``). Models without a card have no known domain: no warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

__all__ = [
    "COLLECTION_RADIUS",
    "OutsideTrainingDomainWarning",
    "TrainingDomain",
    "check_collection",
    "check_constituents",
    "outside_domain",
    "short_type",
    "training_domain",
    "warn_outside_domain",
]

#: Record names / fields that mark jets (not constituents) in NanoAOD-like arrays.
_JET_RECORDS = {"FatJet", "Jet", "SubJet", "GenJet", "GenJetAK8", "CorrT1METJet"}
_JET_FIELDS = {"nConstituents", "msoftdrop", "jetId", "tau1", "rawFactor", "area",
               "btagDeepB", "particleNet_QCD", "subJetIdx1"}

#: Jet radius of the NanoAOD jet collections (anti-kT R); collections not listed: unknown.
COLLECTION_RADIUS = {"FatJet": 0.8, "GenJetAK8": 0.8, "Jet": 0.4, "GenJet": 0.4,
                     "CorrT1METJet": 0.4}

#: Generator defaults of :func:`lgae_hep.data.generate` (the bundled models' training data).
GENERATOR_DOMAIN = {"collection": "FatJet", "pt_range": (800.0, 1600.0), "eta_max": 2.5,
                    "jet_radius": 0.8}


class OutsideTrainingDomainWarning(UserWarning):
    """Jets far outside the pT / eta / jet-type range the model was trained on."""


@dataclass(frozen=True)
class TrainingDomain:
    """Where a model was trained: jet collection, pT range (GeV) and ``|eta|`` bound."""

    collection: str
    pt_range: tuple[float, float]
    eta_max: float
    jet_radius: float | None = None
    source: str = "card"

    def describe(self) -> str:
        """One line, e.g. ``FatJet (R = 0.8), 800 < pT < 1600 GeV, |eta| < 2.5``."""
        r = f" (R = {self.jet_radius:g})" if self.jet_radius else ""
        lo, hi = self.pt_range
        return f"{self.collection}{r}, {lo:g} < pT < {hi:g} GeV, |eta| < {self.eta_max:g}"


def _card(model: Any) -> Mapping[str, Any] | None:
    from lgae_hep import zoo

    if model is None:
        model = zoo.DEFAULT_MODEL
    if not isinstance(model, str) or model not in zoo.bundled_models():
        return None
    return zoo.model_card(model)


def training_domain(model: Any = None) -> TrainingDomain | None:
    """The training domain of a bundled model (``None`` for models without a card).

    Parameters
    ----------
    model : None, str, Path or torch.nn.Module
        ``None`` (the bundled default) or a bundled name; anything else returns ``None``
        unless it carries ``config["training_domain"]``.
    """
    card = _card(model)
    entry = None
    if card is not None:
        entry = card.get("training_domain")
        if entry is None and isinstance(card.get("training"), Mapping):
            entry = dict(GENERATOR_DOMAIN)
            entry["source"] = "generator defaults (card without training_domain)"
    elif not isinstance(model, str | type(None)):
        cfg = getattr(model, "config", None)
        entry = cfg.get("training_domain") if isinstance(cfg, Mapping) else None
    if not isinstance(entry, Mapping):
        return None
    lo, hi = (float(x) for x in entry.get("pt_range", GENERATOR_DOMAIN["pt_range"]))
    return TrainingDomain(
        collection=str(entry.get("collection", "FatJet")),
        pt_range=(lo, hi),
        eta_max=float(entry.get("eta_max", GENERATOR_DOMAIN["eta_max"])),
        jet_radius=entry.get("jet_radius"),
        source=str(entry.get("source", "card")),
    )


def outside_domain(pt: Any, eta: Any, domain: TrainingDomain) -> np.ndarray:
    """Boolean mask of jets *far* outside ``domain`` (see the module docstring)."""
    pt = np.asarray(pt, dtype=np.float64)
    eta = np.asarray(eta, dtype=np.float64)
    lo, hi = domain.pt_range
    with np.errstate(invalid="ignore"):
        return (pt < 0.5 * lo) | (pt > 2.0 * hi) | (np.abs(eta) > domain.eta_max + 0.5)


def check_collection(collection: str | None, domain: TrainingDomain | None, *,
                     force: bool = False, where: str = "lgae_hep.score",
                     stacklevel: int = 3) -> None:
    """Jets of ``collection`` for a model trained on ``domain``: fine if it is the card's
    collection; a ``ValueError`` if its jet radius (:data:`COLLECTION_RADIUS`) differs from the
    card's (AK4 ``Jet`` for an AK8 model) unless ``force``; else one
    :class:`OutsideTrainingDomainWarning`."""
    if domain is None or collection is None or collection == domain.collection:
        return
    radius = COLLECTION_RADIUS.get(collection)
    trained = domain.jet_radius or COLLECTION_RADIUS.get(domain.collection)
    if radius is not None and trained is not None and abs(radius - float(trained)) > 1e-6 \
            and not force:
        raise ValueError(
            f"{where}: {collection!r} jets (R = {radius:g}) are not the jets the model was "
            f"trained on ({domain.describe()}); score {domain.collection!r} jets "
            f"(--collection {domain.collection}), or pass --force (force=True) to score them "
            "anyway, uncalibrated")
    warnings.warn(
        f"{where}: the model was trained on {domain.describe()}; scoring the {collection!r} "
        "collection is outside its training domain (scores are not calibrated)",
        OutsideTrainingDomainWarning, stacklevel=stacklevel + 1)


def warn_outside_domain(pt: Any, eta: Any, domain: TrainingDomain | None, *,
                        collection: str | None = None, where: str = "lgae_hep.score",
                        stacklevel: int = 3) -> int:
    """Warn once about jets far outside ``domain``; returns how many there are. A
    ``collection`` other than the card's warns too (:func:`check_collection` with
    ``force=True``: this function never refuses)."""
    if domain is None:
        return 0
    check_collection(collection, domain, force=True, where=where, stacklevel=stacklevel + 1)
    bad = outside_domain(pt, eta, domain)
    n = int(bad.sum())
    if n:
        warnings.warn(
            f"{where}: {n} of {bad.size} jets are far outside the model's training domain "
            f"({domain.describe()}; 'far' = pT below half / above twice the range or |eta| "
            f"beyond {domain.eta_max + 0.5:g}); their scores are not calibrated",
            OutsideTrainingDomainWarning, stacklevel=stacklevel)
    return n


def _innermost_record(arr: Any) -> Any:
    layout = arr._meta.layout if hasattr(arr, "_meta") else getattr(arr, "layout", None)
    depth = 0
    while layout is not None and not isinstance(layout, ak.contents.RecordArray):
        layout = getattr(layout, "content", None)
        depth += 1
    return layout, depth


def check_constituents(jets: Any, where: str = "lgae_hep.score") -> None:
    """Raise ``ValueError`` if ``jets`` are jets (e.g. ``events.FatJet``), not constituents.

    Works on awkward and dask-awkward arrays (only the type is inspected).
    """
    if not (isinstance(jets, ak.Array) or type(jets).__module__.startswith("dask_awkward")):
        return
    record, _ = _innermost_record(jets)
    if record is None:
        return
    name = record.parameter("__record__")
    jet_like = set(record.fields) & _JET_FIELDS
    if name in _JET_RECORDS or jet_like:
        what = f"records named {name!r}" if name in _JET_RECORDS else \
            f"records with jet fields {sorted(jet_like)}"
        raise ValueError(
            f"{where} expects jet constituents ([...][jet][particle] Lorentz vectors) but got "
            f"jets ({what}, type {short_type(jets)}). Pass the PF-candidate constituents "
            "instead, e.g. lgae_hep.read_nanoaod(events, jets='FatJet') "
            "(events.FatJet.constituents.pf only works on files with FatJet_nConstituents and "
            "a jet-ordered table)"
        )


def short_type(arr: Any, limit: int = 80) -> str:
    """The type of an (dask-)awkward array in at most about ``limit`` characters: a record's
    field list (often kilobytes for NanoAOD collections) becomes ``[...N fields]``."""
    try:
        text = str(arr.type)
    except Exception:  # noqa: BLE001 - a type that does not print: its Python type
        return type(arr).__name__
    if len(text) <= limit:
        return text
    for opener, closer in (("[", "]"), ("{", "}")):
        i = text.find(opener)
        if i >= 0:
            head = text[:i]
            record, _ = _innermost_record(arr)
            n = len(record.fields) if record is not None else "?"
            return f"{head}{opener}...{n} fields{closer}"
    return text[:limit] + "..."


def jet_kinematics(constituents: Any) -> tuple[np.ndarray, np.ndarray]:
    """Flat (pT, eta) per jet of eager ``[...][jet][particle]`` constituents (their sum)."""
    flat = constituents
    while flat.ndim > 2:
        flat = ak.flatten(flat, axis=1)
    if len(flat) == 0:
        return np.zeros(0), np.zeros(0)
    from lgae_hep.data import jet_p4

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        p4 = jet_p4(flat)
        pt = np.asarray(ak.to_numpy(ak.fill_none(p4.pt, np.nan)), dtype=np.float64)
        eta = np.where(pt > 0, np.asarray(ak.to_numpy(ak.fill_none(p4.eta, 0.0)),
                                          dtype=np.float64), 0.0)
    return pt, eta
