"""The coffea ``ml_tools`` scoring core of :class:`lgae_hep.processors.LGAEProcessor`.

:class:`LGAEScorer` is a ``coffea.ml_tools.numpy_call_wrapper``: the same object serves
eager/virtual NanoEvents and dask-awkward arrays. It runs the inference engine of
:func:`lgae_hep.score` (:func:`lgae_hep.inference.forward_batches`, fixed-shape batches,
:func:`lgae_hep.inference.apply_invalid_policy`), so the scores are the same numbers.
:func:`cached_scorer` keeps one scorer (one loaded model) per settings per process.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch
from coffea.ml_tools.helper import nonserializable_attribute, numpy_call_wrapper

from lgae_hep.data import to_tensors
from lgae_hep.data.dask_adapter import on_partitions
from lgae_hep.inference import (
    DEFAULT_BATCH_SIZE,
    apply_invalid_policy,
    check_num_particles,
    empty_latent,
    forward_batches,
    latent_columns,
)
from lgae_hep.zoo import (
    DEFAULT_MODEL,
    load_model,
    model_num_particles,
    resolve_metric,
    resolve_model,
)

__all__ = ["LGAEScorer", "cached_scorer", "tensorize", "torch_threads"]


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """``n`` torch intra-op threads inside the block (restored after); ``None``: unchanged."""
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
    metric : str, optional
        A registered score (:mod:`lgae_hep.scoring.registry`), as in :func:`lgae_hep.score`
        (``None``: the one the model card recommends).
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
        packed = on_partitions(tensorize, jets, n=self._n(), label="lgae_tensorize")
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
        with torch_threads(self.torch_threads):
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


def tensorize(jets: ak.Array, n: int) -> ak.Array:
    """One partition of jets -> record array ``{p4, mask, valid, counts}`` (one per jet).

    Runs :func:`lgae_hep.data.to_tensors` (numpy backend) on eager arrays; typetracers and
    dask-awkward partitions are handled by :func:`lgae_hep.data.dask_adapter.on_partitions`.
    """
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


def cached_scorer(model: str, *, num_particles: int | None, batch_size: int,
                  device: str | None, torch_threads: int | None, latent: bool,
                  metric: str | None) -> LGAEScorer:
    """The per-process :class:`LGAEScorer` for these settings (created once per worker)."""
    key = (model, num_particles, batch_size, device, torch_threads, latent, metric)
    scorer = _SCORERS.get(key)
    if scorer is None:
        scorer = LGAEScorer(model, num_particles=num_particles, batch_size=batch_size,
                            device=device, torch_threads=torch_threads, latent=latent,
                            metric=metric)
        _SCORERS[key] = scorer
    return scorer
