"""One-line scoring API: ``score``, ``encode``, ``reconstruct`` and ``load_model``.

::

    import lgae_hep
    jets = lgae_hep.read_nanoaod("events.root", jets="FatJet")   # [event][jet][particle]
    s = lgae_hep.score(jets)          # [event][jet] anomaly scores (bundled "lgae-mix" model)
    z = lgae_hep.encode(jets)         # [event][jet] latent records
    rec = lgae_hep.reconstruct(jets)  # [event][jet][particle] Momentum4D reconstructions

Input
-----
Any awkward array whose innermost records are Lorentz vectors that ``vector`` understands
(``pt/eta/phi/mass``, ``px/py/pz/E``, ``E/px/py/pz``, ...), with any number of outer list levels
above ``[jet][particle]`` and jets of any multiplicity. Each jet keeps its N hardest particles by
pT, where N is the number of particles the model was built for (``model.config
["num_particles"]``); softer particles are dropped, fewer are zero-padded with a mask.

Anomaly score
-------------
Three kinds of score, selected with ``metric``. **Reconstruction** scores compare the jet with
the model's reconstruction of it: ``"chamfer"`` (:func:`lgae_hep.losses.chamfer`, squared
Euclidean distance of the Cartesian 4-vectors in GeV, summed over particles; in units of the
jet mass for a mass-normalised model) and ``"chamfer-dr"`` (:func:`lgae_hep.losses.chamfer_dr`,
pT-weighted angular, dimensionless). **Latent-density** scores (:mod:`lgae_hep.density`) are
``-log p`` of the jet's latent Lorentz invariants (and its log mass) under a Gaussian mixture
of QCD jets stored in the model file: ``"latent-density"``, ``"latent-density-given-mass"``
(the mass conditioned out) and ``"latent-density-joint"``; they can be negative. The
**exposure** score ``"exposure"`` (:mod:`lgae_hep.scoring.exposure`) is the logit of a
classifier head stored in the model file, on the latent invariants and log m, that tells QCD
jets from QCD jets given extra hard prongs at their own mass. By default
(``metric=None``) a bundled model uses the score recorded in its card, the one chosen on its
validation sets (:func:`recommended_metric`; ``docs/RESULTS.md``), a model file the score it
records, other models ``"chamfer"``.

It is computed jet by jet:

* a jet with **no particles** scores exactly ``0.0`` (two empty clouds), its latent is zero and
  its reconstruction is an empty list;
* a jet with a non-finite component, negative energy or ``E < |p|`` (the project-wide bad-input
  policy of :mod:`lgae_hep.data.tensors`) scores ``NaN``, its latent is ``NaN`` and its
  reconstruction is ``None``; ONE :class:`InvalidJetWarning` counts such jets per call
  (``on_invalid="raise"`` raises ``ValueError`` instead);
* a jet whose mass is not resolved (``m <= 2^-10 E``: one particle, collinear particles) is
  treated the same way where the mass divides something: a mass-normalised model, or a
  latent-density or exposure score (``log m``);
* every other jet gets a finite score (for finite network outputs).

Batching and determinism
------------------------
The three functions are thin wrappers of the scoring engine :func:`lgae_hep.inference.run_chunks`;
models come from the zoo (:mod:`lgae_hep.zoo`). Jets are converted to float64 tensors
``chunk_size`` jets at a time (bounded memory), the network always sees batches of exactly
``batch_size`` jets, and a Lorentz-equivariant model is evaluated in each jet's rest frame
(:mod:`lgae_hep.scoring.frames`). A jet's default score then stays within 1e-3 of the score's QCD
inter-quartile range across batch sizes, thread counts, CPU instruction sets, input precision
and entry points (measured and tested: ``docs/RELIABILITY.md`` section 5); on the same machine
with the same thread count and batch size it is bitwise reproducible.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from lgae_hep.data import from_tensors
from lgae_hep.data.dask_adapter import is_dask, on_partitions
from lgae_hep.data.tensors import restore_outer
from lgae_hep.devices import check_device
from lgae_hep.domain import (
    check_collection,
    check_constituents,
    jet_kinematics,
    training_domain,
    warn_outside_domain,
)
from lgae_hep.inference import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHUNK_SIZE,
    InvalidJetWarning,
    latent_columns,
    latent_records,
    run_chunks,
)
from lgae_hep.zoo import (
    DEFAULT_MODEL,
    bundled_models,
    card_inference_dtype,
    check_metric,
    load_model,
    model_num_particles,
    recommended_metric,
    resolve_metric,
    resolve_model,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MODEL",
    "InvalidJetWarning",
    "bundled_models",
    "card_inference_dtype",
    "encode",
    "latent_columns",
    "load_model",
    "model_num_particles",
    "recommended_metric",
    "resolve_metric",
    "reconstruct",
    "resolve_model",
    "score",
]


def score(
    jets: Any,
    model: Any = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: Any = None,
    progress: bool | None = None,
    on_invalid: str = "flag",
    num_particles: int | None = None,
    metric: str | None = None,
    collection: str | None = None,
    force: bool = False,
) -> ak.Array:
    """Anomaly score of every jet: the model's default score (the ``score_metric`` its card
    records, chosen on validation jets: :func:`lgae_hep.zoo.recommended_metric`) or ``metric``.

    >>> import lgae_hep  # doctest: +SKIP
    >>> s = lgae_hep.score(lgae_hep.read_nanoaod("nano.root"))  # doctest: +SKIP

    Parameters
    ----------
    jets : ak.Array
        ``[...][jet][particle]`` Lorentz-vector records (any number of outer list levels, any
        multiplicity; see the module docstring).
    model : None, str, Path or torch.nn.Module
        ``None``: the bundled ``"lgae-mix"``; a bundled name or checkpoint path
        (:func:`load_model`); or a model object.
    batch_size : int
        Jets per network call (fixed shape; the last batch is padded with empty jets).
    chunk_size : int
        Jets converted to tensors at a time (memory bound).
    device : str or torch.device, optional
        Where the network runs (default: the model's device, CPU for loaded models).
    progress : bool or None
        tqdm progress bar over jets; ``None`` shows it only for inputs above one chunk.
    on_invalid : {"flag", "raise"}
        Bad-input policy: NaN + one :class:`InvalidJetWarning`, or ``ValueError``.
    num_particles : int, optional
        If given, must equal the model's particle count (guards against scoring with a model
        trained for a different N).
    metric : None or str
        One of :data:`lgae_hep.zoo.ANOMALY_METRICS` (module docstring): ``"chamfer"``,
        ``"chamfer-dr"``, ``"latent-density"``, ``"latent-density-given-mass"``,
        ``"latent-density-joint"`` (the density scores need a model holding a latent density),
        ``"exposure"`` (needs a model holding an exposure head), and ``"<score>-decorrelated"``
        for a score whose mass-decorrelation map the model file holds: the registry
        :data:`lgae_hep.scoring.registry.SCORES`.
        ``None`` (default): the score the model's card (or model file) recommends,
        ``"chamfer"`` for models without one.
    collection : str, optional
        The NanoAOD collection the jets come from (``"FatJet"``, ``"Jet"``, ...), checked
        against a bundled model's card (:func:`lgae_hep.domain.check_collection`): jets of
        another radius (AK4 ``"Jet"`` for an AK8 model) are a ``ValueError`` unless ``force``.
    force : bool
        Score jets of another radius anyway (one ``OutsideTrainingDomainWarning``).

    Returns
    -------
    ak.Array
        float64 scores with the outer structure of ``jets`` (``[...][jet]``): 0.0 for jets
        without particles, NaN for invalid jets, finite otherwise.

    Raises
    ------
    ValueError
        Input that is not an array of Lorentz-vector records, unknown model, ``num_particles``
        different from the model's, bad ``batch_size``/``chunk_size``/``on_invalid``, unknown
        ``metric``, a ``device`` this machine lacks (``"cuda"`` without CUDA), a ``collection``
        of another jet radius than the model's without ``force``, or invalid jets with
        ``on_invalid="raise"``; jets instead of constituents (e.g. ``events.FatJet``), with a
        message naming :func:`lgae_hep.read_nanoaod`. Arguments are checked before any work
        (and before any domain warning).

    Notes
    -----
    A dask-awkward ``jets`` gives a dask-awkward result (the same function per partition via
    ``dask_awkward.map_partitions``; nothing is computed until you call ``.compute()``).
    Bundled models warn (:class:`lgae_hep.domain.OutsideTrainingDomainWarning`) about jets far
    outside their card's training domain, for plain Python lists as for awkward arrays.
    """
    jets = _prepare(jets, "lgae_hep.score", model=model, batch_size=batch_size,
                    chunk_size=chunk_size, device=device, on_invalid=on_invalid, metric=metric)
    if collection is not None and (model is None or isinstance(model, str)):
        check_collection(collection, training_domain(model), force=force,
                         where="lgae_hep.score")
    if is_dask(jets):
        return _map_partitions(score, jets, "lgae-score", model=model, batch_size=batch_size,
                               chunk_size=chunk_size, device=device, on_invalid=on_invalid,
                               num_particles=num_particles, metric=metric)
    _domain_check(jets, model, "lgae_hep.score")
    res, _, _, structure, _ = run_chunks(
        jets,
        model,
        batch_size=batch_size,
        chunk_size=chunk_size,
        device=device,
        progress=progress,
        on_invalid=on_invalid,
        num_particles=num_particles,
        want_latent=False,
        want_reco=False,
        desc="lgae_hep.score",
        metric=metric,
    )
    return restore_outer(res.score, structure)


def encode(
    jets: Any,
    model: Any = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: Any = None,
    progress: bool | None = None,
    on_invalid: str = "flag",
    num_particles: int | None = None,
) -> ak.Array:
    """Latent representation of every jet, as records with the outer structure of ``jets``.

    Layout for LGAE models (latent irreps ``(0, 0)`` with ``tau_s`` channels and ``(1, 1)`` with
    ``tau_v`` channels), float64 fields per jet:

    ``scalars_re``, ``scalars_im`` : (tau_s,)
        Real and imaginary parts of the complex latent Lorentz scalars.
    ``vectors_re``, ``vectors_im`` : (tau_v, 4)
        Real and imaginary parts of the complex latent 4-vectors in Cartesian ``(E, px, py, pz)``
        (each part transforms as a 4-vector, since Lorentz matrices are real).
    ``norms_re``, ``norms_im`` : (tau_v,)
        The Lorentz invariant ``v . v`` (complex Minkowski square, bilinear, computed with
        :func:`lgae_hep.lorentz.invariant_form` in the irrep basis) of each latent 4-vector.
    ``irrep_<k>_<n>_re`` / ``_im`` : (tau, d)
        Any further irrep, canonical basis.

    Non-equivariant models (GNNAE) give one float64 field per latent entry (``jet`` (L,) or
    ``particle`` (N, L)). Jets without particles have a zero latent; invalid jets NaN.

    Parameters and raised errors are those of :func:`score`.

    Returns
    -------
    ak.Array
        ``[...][jet]`` records as above (dask-awkward in, dask-awkward out).
    """
    jets = _prepare(jets, "lgae_hep.encode", model=model, batch_size=batch_size,
                    chunk_size=chunk_size, device=device, on_invalid=on_invalid)
    if is_dask(jets):
        return _map_partitions(encode, jets, "lgae-encode", model=model, batch_size=batch_size,
                               chunk_size=chunk_size, device=device, on_invalid=on_invalid,
                               num_particles=num_particles)
    res, _, _, structure, _ = run_chunks(
        jets,
        model,
        batch_size=batch_size,
        chunk_size=chunk_size,
        device=device,
        progress=progress,
        on_invalid=on_invalid,
        num_particles=num_particles,
        want_latent=True,
        want_reco=False,
        desc="lgae_hep.encode",
    )
    assert res.latent is not None
    return restore_outer(latent_records(res.latent), structure)


def reconstruct(
    jets: Any,
    model: Any = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: Any = None,
    progress: bool | None = None,
    on_invalid: str = "flag",
    num_particles: int | None = None,
) -> ak.Array:
    """Reconstructed jets: Momentum4D particles (``px, py, pz, E`` in GeV), same outer structure.

    Each jet holds the model's output particles selected by the output mask (for the LGAE the
    decoder's N nodes restricted to the input multiplicity, as the model defines it). Jets
    without particles give an empty list; invalid jets give ``None`` (one
    :class:`InvalidJetWarning`). The records work with ``vector`` directly (``.mass``,
    ``.pt``, sums, boosts).

    Parameters and raised errors are those of :func:`score`.

    Returns
    -------
    ak.Array
        ``[...][jet][particle]`` (option type at the jet level only when some jets are invalid).
    """
    jets = _prepare(jets, "lgae_hep.reconstruct", model=model, batch_size=batch_size,
                    chunk_size=chunk_size, device=device, on_invalid=on_invalid)
    res, valid, _, structure, _ = run_chunks(
        jets,
        model,
        batch_size=batch_size,
        chunk_size=chunk_size,
        device=device,
        progress=progress,
        on_invalid=on_invalid,
        num_particles=num_particles,
        want_latent=False,
        want_reco=True,
        desc="lgae_hep.reconstruct",
    )
    assert res.reco_p4 is not None and res.reco_mask is not None
    rec = from_tensors(res.reco_p4.astype(np.float64), res.reco_mask)
    if not valid.all():
        rec = ak.mask(rec, valid)
    return restore_outer(rec, structure)


def _prepare(jets: Any, where: str, *, model: Any, batch_size: Any, chunk_size: Any,
             device: Any, on_invalid: Any, metric: Any = None) -> Any:
    """Check the arguments (before any work or warning) and the input: plain Python lists
    become an ``ak.Array`` (so they get the same checks and warnings), jets instead of
    constituents are a ``ValueError``."""
    for name, v in (("batch_size", batch_size), ("chunk_size", chunk_size)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            default = DEFAULT_BATCH_SIZE if name == "batch_size" else DEFAULT_CHUNK_SIZE
            raise ValueError(f"{where}: {name} must be a positive integer (e.g. the default "
                             f"{name}={default}), got {v!r}")
    if on_invalid not in ("flag", "raise"):
        raise ValueError(f"{where}: on_invalid must be 'flag' (NaN + a warning) or 'raise', "
                         f"got {on_invalid!r}")
    check_device(device, what=f"{where}: device")
    if metric is not None:
        check_metric(metric)
    if isinstance(model, str):
        resolve_model(model)
    if isinstance(jets, list | tuple):
        jets = ak.Array(jets)
    check_constituents(jets, where)
    return jets


def _domain_check(jets: Any, model: Any, where: str) -> None:
    """Warn about jets far outside a bundled model's training domain (lgae_hep.domain)."""
    if not isinstance(jets, ak.Array):
        return
    domain = training_domain(model) if model is None or isinstance(model, str) else None
    if domain is None:
        return
    pt, eta = jet_kinematics(jets)
    keep = np.isfinite(pt) & (pt > 0)  # empty and invalid jets have their own policy
    warn_outside_domain(pt[keep], eta[keep], domain, where=where, stacklevel=4)


def _map_partitions(fn: Any, jets: Any, label: str, **kwargs: Any) -> Any:
    """``fn(partition, progress=False, **kwargs)`` on every partition of a dask-awkward array
    (lazy), through the one dask adapter :func:`lgae_hep.data.dask_adapter.on_partitions`."""
    return on_partitions(fn, jets, label=label, progress=False, **kwargs)
