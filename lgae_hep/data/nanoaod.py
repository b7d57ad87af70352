"""CMS NanoAOD / PFNano jets: reading jets with their PF constituents (writing: :mod:`.pfnano`).

Layouts
-------
PFNano (``cms-jet/PFNano``, what :func:`lgae_hep.data.write_pfnano` writes)::

    run, luminosityBlock, event
    nFatJet, FatJet_{pt,eta,phi,mass,nConstituents,...}
    nFatJetPFCands, FatJetPFCands_{jetIdx,pFCandsIdx}
    nPFCands, PFCands_{pt,eta,phi,mass,charge,pdgId,...}

Official Run-3 NanoAOD (v12+) stores the same information as ``PFCand_*`` and
``FatJetPFCand_{jetIdx,pfCandIdx}``. :func:`read_nanoaod` and :func:`constituents_from_events`
understand both and group the PF candidates through the index table themselves (coffea's
``events.FatJet.constituents`` needs a ``FatJet_nConstituents`` branch and a jet-ordered table,
which real PFNano files such as the CMS fixture do not have).

This module holds the public readers (:func:`read_nanoaod`, :func:`iter_nanoaod`,
:func:`constituents_from_events`); their parts live beside it: layouts, branch names and the
PUPPI resolver in :mod:`.layout`, the eager grouping in :mod:`.constituents`, the dask-awkward
reader in :mod:`.dask_reader`, sources and the file check in :mod:`.files`, the bad-input
predicate in :mod:`.badinput`. The names others import from here stay importable from here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from .constituents import eager_constituents
from .dask_reader import dask_constituents
from .files import check_input_files, is_path_like, is_url, normalise_sources
from .layout import (
    DEFAULT_JET_FIELDS,
    DEFAULT_PF_FIELDS,
    PUPPI_FIELD,
    NanoLayout,
    available_names,
    detect_layout,
    is_dask,
    resolve_puppi,
)
from .tensors import DEFAULT_NUM_PARTICLES

__all__ = [
    "DEFAULT_JET_FIELDS",
    "DEFAULT_PF_FIELDS",
    "PUPPI_FIELD",
    "NanoLayout",
    "available_names",
    "constituents_from_events",
    "detect_layout",
    "iter_nanoaod",
    "normalise_sources",
    "read_nanoaod",
    "resolve_puppi",
]


def constituents_from_events(
    events: Any,
    jets: str = "FatJet",
    max_particles: int | None = DEFAULT_NUM_PARTICLES,
    *,
    pt_min: float | None = None,
    eta_max: float | None = None,
    mass_range: tuple[float, float] | None = None,
    flat: bool = False,
    with_jets: bool = False,
    pf_fields: Sequence[str] | None = None,
    jet_fields: Sequence[str] | None = None,
    layout: NanoLayout | None = None,
    puppi: bool | None = None,
) -> ak.Array | tuple[ak.Array, ak.Array]:
    """Group PF candidates into jets through the jet-candidate index table.

    Works on already loaded arrays: plain uproot arrays (a record array or dict with flat
    branch names such as ``FatJet_pt``) or coffea NanoEvents (eager or virtual), with PFNano
    (``FatJetPFCands_{jetIdx,pFCandsIdx}``, ``PFCands_*``) or official Run-3 NanoAOD names
    (``FatJetPFCand_{jetIdx,pfCandIdx}``, ``PFCand_*``). It does not use coffea's
    ``FatJet.constituents`` (which needs ``FatJet_nConstituents`` and a jet-ordered table).

    Parameters
    ----------
    events : ak.Array or mapping
        One chunk of events.
    jets : str
        Jet collection name.
    max_particles : int or None
        Keep the N hardest constituents per jet (``None``: all).
    pt_min, eta_max, mass_range : optional
        Jet selection on the jet collection's own kinematics: ``pt > pt_min``,
        ``|eta| < eta_max``, ``mass_range[0] <= mass < mass_range[1]``.
    flat : bool
        Return ``[jet][particle]`` instead of ``[event][jet][particle]``.
    with_jets : bool
        Also return the selected jets as Momentum4D records (``pt, eta, phi, mass``, the
        optional ``jet_fields``, ``nConstituents``, the number of table entries of the jet
        before truncation, and ``idx``, the jet's index in its event's original collection,
        so that results join back to ``events.FatJet`` after a selection), with the same outer
        structure.
    pf_fields, jet_fields : sequence of str, optional
        Extra fields to carry (defaults: ``charge``, ``pdgId`` / :data:`DEFAULT_JET_FIELDS` when
        present).
    layout : NanoLayout, optional
        Pre-computed layout (skips detection).
    puppi : bool or None
        PUPPI-weight the constituents (see :func:`read_nanoaod`; resolved by
        :func:`lgae_hep.data.layout.resolve_puppi`): ``None``
        (default) weights when ``<cands>_puppiWeight`` exists, ``True`` requires it, ``False``
        never weights.

    Returns
    -------
    ak.Array or (ak.Array, ak.Array)
        Constituents as Momentum4D records (``pt, eta, phi, mass`` + carried fields), sorted by
        pT (descending) within each jet; with ``with_jets`` also the jet records.

    Notes
    -----
    Values are passed through as stored: non-finite or unphysical candidates are not repaired
    here but sorted *first* within their jet (so truncation never hides them) and flagged by
    :func:`lgae_hep.data.to_tensors` (``valid=False``; one predicate,
    :mod:`lgae_hep.data.badinput`).

    Raises
    ------
    ValueError
        Missing branches, or an inconsistent index table: ``jetIdx`` / candidate index out of
        range, table columns or candidate columns of different lengths.
    """
    if max_particles is not None and (
        not isinstance(max_particles, int | np.integer) or max_particles < 1
    ):
        raise ValueError(f"max_particles must be a positive integer or None, got {max_particles!r}")
    if is_dask(events):
        return dask_constituents(
            events, jets, max_particles, pt_min=pt_min, eta_max=eta_max,
            mass_range=mass_range, flat=flat, with_jets=with_jets, pf_fields=pf_fields,
            jet_fields=jet_fields, layout=layout, puppi=puppi,
        )
    return eager_constituents(
        events, jets, max_particles, pt_min=pt_min, eta_max=eta_max, mass_range=mass_range,
        flat=flat, with_jets=with_jets, pf_fields=pf_fields, jet_fields=jet_fields,
        layout=layout, puppi=puppi,
    )


def iter_nanoaod(
    source: Any,
    jets: str = "FatJet",
    max_particles: int | None = DEFAULT_NUM_PARTICLES,
    *,
    tree: str = "Events",
    step_size: int | str = "100 MB",
    progress: bool | None = None,
    **kwargs: Any,
) -> Iterator[ak.Array | tuple[ak.Array, ak.Array]]:
    """Stream jets chunk by chunk from ROOT files (bounded memory).

    Reads only the needed branches with ``uproot.iterate`` and yields, per chunk, what
    :func:`constituents_from_events` returns (same keyword arguments: ``pt_min``,
    ``eta_max``, ``mass_range``, ``flat``, ``with_jets``, ``pf_fields``, ``jet_fields``,
    ``puppi``).

    Parameters
    ----------
    source : str, Path, URL, dict or list of them
        ROOT file(s), as for :func:`read_nanoaod`.
    jets, max_particles : see :func:`read_nanoaod`.
    tree : str
        Tree name when not given in the path.
    step_size : int or str
        Entries per chunk, or a memory size such as ``"100 MB"`` (uproot's ``step_size``).
    progress : bool or None
        tqdm progress bar over events; ``None`` shows it only on a terminal.
    """
    from tqdm.auto import tqdm

    files = normalise_sources(source, tree)
    checked, _ = check_input_files(files, jets, pf_fields=kwargs.pop("pf_fields", None),
                                   jet_fields=kwargs.pop("jet_fields", None))
    layout = checked[0].layout
    total = sum(f.num_entries for f in checked)
    expressions = layout.branches()
    weight_branch = resolve_puppi(checked[0].branches, layout, kwargs.get("puppi"),
                                  where=checked[0].path)
    if weight_branch is not None and weight_branch not in expressions:
        expressions.append(weight_branch)
    bar = tqdm(
        total=total,
        unit="evt",
        desc="read_nanoaod",
        disable=None if progress is None else not progress,
    )
    try:
        for chunk in uproot.iterate(
            [{p: t} for p, t in files],
            expressions=expressions,
            step_size=step_size,
            library="ak",
        ):
            bar.update(len(chunk))
            if len(chunk) == 0:
                continue
            yield constituents_from_events(chunk, jets, max_particles, layout=layout, **kwargs)
    finally:
        bar.close()


def read_nanoaod(
    source: Any,
    jets: str = "FatJet",
    max_particles: int | None = DEFAULT_NUM_PARTICLES,
    *,
    pt_min: float | None = None,
    eta_max: float | None = None,
    mass_range: tuple[float, float] | None = None,
    flat: bool = False,
    with_jets: bool = False,
    pf_fields: Sequence[str] | None = None,
    jet_fields: Sequence[str] | None = None,
    tree: str = "Events",
    step_size: int | str = "100 MB",
    progress: bool | None = None,
    puppi: bool | None = None,
) -> ak.Array | tuple[ak.Array, ak.Array]:
    """Read jets and their PF-candidate constituents from NanoAOD / PFNano.

    Parameters
    ----------
    source : path, URL, dict, list of them, NanoEvents or awkward array
        ROOT file(s), streamed with ``uproot.iterate`` (only the needed branches): everything
        ``uproot.open`` accepts, i.e. a local path, a URL (``file:///...``,
        ``root://cmsxrootd.fnal.gov//store/...`` with the ``xrootd`` extra,
        ``https://...``), each optionally with ``":Tree"``, a dict ``{path_or_url: tree}``,
        or a list of these. Or an already opened coffea NanoEvents object (eager, virtual, or
        ``mode="dask"``: then the result is a dask-awkward array), or an awkward record array /
        dict of flat branches (e.g. ``tree.arrays()``).
    jets : str
        Jet collection (``FatJet``; ``Jet`` uses ``JetPFCands``).
    max_particles : int or None
        Keep the N hardest constituents by pT (``None``: keep all).
    pt_min, eta_max, mass_range : optional
        Jet selection on the jet collection's kinematics: ``pt > pt_min``, ``|eta| < eta_max``,
        ``mass_range[0] <= mass < mass_range[1]`` (GeV).
    flat : bool
        Return ``[jet][particle]`` instead of ``[event][jet][particle]``.
    with_jets : bool
        Return ``(constituents, jets)``: the jet records are Momentum4D with ``pt, eta, phi,
        mass``, the ``jet_fields`` (default :data:`DEFAULT_JET_FIELDS`, when present) and
        ``nConstituents`` (table entries per jet before truncation), with the same outer
        structure as the constituents (one jet record per constituent list).
    pf_fields, jet_fields : sequence of str, optional
        Candidate / jet fields to carry besides the kinematics (``None``: ``charge``, ``pdgId``
        / :data:`DEFAULT_JET_FIELDS`, each when present; explicit names must exist).
    tree : str
        Tree name for paths (``"file.root:Tree"`` also works).
    step_size : int or str
        Chunk size for streaming (entries or e.g. ``"100 MB"``).
    progress : bool or None
        tqdm progress bar (``None``: only on a terminal).
    puppi : bool or None
        Weight every constituent 4-vector by ``PFCands_puppiWeight`` (``pt`` and ``mass`` times
        the weight; candidates of weight 0 dropped). ``None`` (default) weights whenever the
        branch exists, ``True`` requires it, ``False`` never weights. Why on by default:
        CMS AK8 jets (``FatJet``) and Run-3 AK4 jets are PUPPI jets, clustered from the
        PUPPI-weighted candidates, while PFNano stores the *unweighted* candidate momenta. The
        weighted constituents are what the jet is made of (their sum reproduces the raw jet pT
        and mass to the storage precision; unweighted sums differ by up to ~15 %, see
        ``tests/data/test_nanoaod.py``), and they remove pileup the way the jet does; the
        bundled models were trained on generator-level jets without pileup, where every weight
        is 1, so weighting is the closer input. Use ``puppi=False`` for CHS jets or to study
        the effect. Files without the branch (e.g. ``lgae-hep generate`` output) are never
        weighted.

    Returns
    -------
    ak.Array or (ak.Array, ak.Array)
        ``[event][jet][particle]`` (or ``[jet][particle]``) Momentum4D records with ``pt, eta,
        phi, mass`` (+ ``charge``, ``pdgId`` when present), sorted by pT, N hardest kept.

    Raises
    ------
    ValueError
        Missing branches (naming the branch and the expected layout), not a ROOT file, missing
        or empty tree, inconsistent index tables.
    FileNotFoundError
        A path that does not exist.

    Examples
    --------
    >>> jets = read_nanoaod("nano.root", max_particles=30)                   # doctest: +SKIP
    >>> consts, fatjets = read_nanoaod("nano.root", flat=True, with_jets=True)  # doctest: +SKIP
    """
    options = dict(
        pt_min=pt_min,
        eta_max=eta_max,
        mass_range=mass_range,
        flat=flat,
        with_jets=with_jets,
        pf_fields=pf_fields,
        jet_fields=jet_fields,
        puppi=puppi,
    )
    if is_dask(source):
        return constituents_from_events(source, jets, max_particles, **options)
    is_file_dict = isinstance(source, Mapping) and bool(source) and all(
        is_path_like(k) and (is_url(str(k)) or str(k).endswith(".root") or Path(k).is_file())
        for k in source
    )
    if not (
        is_path_like(source)
        or is_file_dict
        or (isinstance(source, list | tuple) and source
            and all(is_path_like(s) or isinstance(s, Mapping) for s in source))
    ):
        if isinstance(source, ak.Array | Mapping) or hasattr(source, "fields"):
            if len(source) == 0 if isinstance(source, ak.Array) else False:
                raise ValueError("empty input: the events array has 0 events")
            return constituents_from_events(source, jets, max_particles, **options)
        normalise_sources(source, tree)  # raises the informative ValueError
    chunks = list(
        iter_nanoaod(
            source,
            jets,
            max_particles,
            tree=tree,
            step_size=step_size,
            progress=progress,
            **options,
        )
    )
    if not chunks:  # every chunk empty (cannot happen after check_input_files, kept for safety)
        raise ValueError(f"empty tree: no events read from {source}")
    if with_jets:
        return (ak.concatenate([c[0] for c in chunks]), ak.concatenate([c[1] for c in chunks]))
    return chunks[0] if len(chunks) == 1 else ak.concatenate(chunks)

