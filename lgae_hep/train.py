"""Training of LGAE / GNNAE autoencoders on background jets: :func:`fit` and its named steps.

What :func:`fit` does
---------------------
* Inputs: :class:`lgae_hep.data.JetTensors`, ``(p4, mask[, scalars])`` tensors/arrays (GeV,
  ``(E, px, py, pz)``) or awkward jets (converted with :func:`lgae_hep.data.to_tensors`). Jets
  flagged invalid by the project-wide bad-input policy are **dropped** with one warning that
  counts them. An empty sample or one with no real particle at all is a ``ValueError``.
* Train / validation split (seeded) unless a validation sample is given; Adam;
  ``ReduceLROnPlateau`` (default) or cosine annealing; gradient-norm clipping; early stopping
  on the validation loss; CUDA when available (``device="auto"``); float32 by default (the
  model's ``dtype`` config entry).
* The data is prepared once: padded ``p4`` + ``mask`` (+ scalars) tensors in the model's dtype,
  moved to the device before the first epoch. A batch is an ``index_select`` of those tensors
  with a slice of the epoch's seeded permutation (:func:`epoch_indices`): no loader, no
  per-batch conversion or copy from the host. Losses are summed on the device and read by the
  host every ``sync_every`` batches (each batch on CPU, where that is free).
* Validation: after every ``val_every``-th epoch, on a fixed seeded subset of the validation
  sample (``val_size``); the default ``"auto"`` sizes it to cost <= 10 % of the training
  between two validations (:data:`VAL_BUDGET`; ``benchmarks/fit_loop.py`` measures it), so the
  reported validation loss is the mean over those jets (``FitResult.val_jets``).
* Loss (per jet, then averaged over the batch): ``"chamfer"`` -- the masked Chamfer distance of
  :func:`lgae_hep.losses.chamfer`, on the 4-vectors in TeV for the LGAE and on the relative
  coordinates ``(eta_rel, phi_rel, pT_rel)`` the network sees for the GNNAE (as in the paper's
  GNNAE baselines); ``"mse"`` -- order-preserving squared error (:func:`lgae_hep.losses.mse`),
  only meaningful for models whose output keeps the input order (``mix`` aggregation, GNNAE-PL).
  :func:`jet_losses` evaluates the same per-jet loss, the natural anomaly score of the model.
  The inputs and losses live in :mod:`lgae_hep.objectives`, the run environment (DDP, output
  folder, disk space, schedules) in :mod:`lgae_hep.fit_runtime`; this module is the fit itself
  and its steps (the command line is ``lgae-hep train``, :mod:`lgae_hep.cli.train`).
* Files in ``out_dir`` (written by rank 0 only): ``last.pt`` after every epoch and ``best.pt``
  on every improvement (atomic writes, :mod:`lgae_hep.checkpoint`), ``metrics.csv`` and
  ``metrics.json`` (one row per epoch: losses, learning rate, jets/s, seconds). ``out_dir`` is
  probed for writability before any training starts.
* ``resume=True`` continues from ``last.pt`` with the model, optimizer, scheduler and RNG
  states and the early-stopping bookkeeping, so a killed run loses at most the epoch in
  progress. Sampling is seeded per epoch (``seed``, ``epoch``), so on a deterministic CPU setup a
  resumed run ends with the same parameters as an uninterrupted one.
* A non-finite loss or gradient never silently continues: the epoch is rolled back to the last
  good state (start of the epoch), the learning rate is halved and the epoch retried; after
  ``max_nonfinite_retries`` such roll-backs training stops with a ``FloatingPointError``.
* DDP: when started by ``torchrun`` (``WORLD_SIZE > 1``) the process group is initialised (gloo
  on CPU, nccl on CUDA), the model is wrapped in ``DistributedDataParallel``, each process
  trains on every ``world``-th jet of the epoch's common permutation (the order
  ``DistributedSampler`` gives; ``batch_size`` is per process) and validates on its share of the
  validation subset, losses are averaged over processes and only rank 0 writes files; every
  rank returns the same :class:`FitResult`.
* Auxiliary objective (optional, ``aux_weight > 0`` with ``aux_targets``; issue 21.3): a small
  MLP (:class:`lgae_hep.objectives.AuxHead`) on the latent's Lorentz invariants
  (:func:`lgae_hep.objectives.latent_invariants`) predicts per-jet targets (e.g. the jet's own
  log m, tau21, tau32, log D2: :func:`lgae_hep.objectives.substructure_targets`), standardised
  once with the mean and standard deviation of the kept training jets; the training objective
  is ``reconstruction + aux_weight * aux`` (per-jet squared error in standardised units,
  averaged over the finite targets). The targets follow their jets through the invalid-jet
  drop and the train / validation split. The validation loss, early stopping and ``best.pt``
  stay on the reconstruction loss alone (comparable with runs without the head); the history
  gains ``train_aux_loss``. The head is a training-time module: it is not part of the model
  (forward outputs, ``state_dict`` and model file are unchanged) and is stored beside it in
  ``extra["aux_head"]`` of ``last.pt`` / ``best.pt`` (:meth:`AuxHead.from_state` rebuilds it),
  its parameters in the optimiser state, so ``resume=True`` continues it. With the default
  ``aux_weight=0`` no head is built and training is bitwise that of a run without the option.
  Not supported under DDP (a ``ValueError``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from . import determinism
from .checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_state_dict_checked,
    save_checkpoint,
    set_rng_state,
    unwrap_model,
    write_metrics,
)
from .data import DEFAULT_NUM_PARTICLES
from .fit_runtime import (
    all_reduce_sum,
    check_disk_space,
    check_positive,
    dist_setup,
    make_scheduler,
    probe_out_dir,
)
from .models import build_model
from .nn.io import parse_dtype
from .objectives import (
    LOSSES,
    AuxHead,
    aux_loss,
    forward_model,
    jet_losses,
    latent_invariants,
    model_dtype,
    per_jet_loss,
    prepare_data,
)

__all__ = ["LOSSES", "SCHEDULERS", "STEP_OVER_FORWARD", "VAL_BUDGET", "VAL_MIN_JETS",
           "FitResult", "epoch_indices", "fit", "jet_losses", "prepare_data", "val_jets",
           "val_subset"]

logger = logging.getLogger("lgae_hep.train")

SCHEDULERS = ("plateau", "cosine", "none")


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    model : torch.nn.Module
        The model with the **best** (lowest validation loss) weights, in eval mode.
    best_epoch : int
        Epoch (0-based) of the best validation loss.
    best_val_loss : float
    epochs_run : int
        Epochs completed in total (including those before a resume).
    history : list of dict
        Per-epoch metrics (as in ``metrics.json``).
    out_dir : Path
    stopped_early : bool
    seconds : float
        Wall-clock training time of this call.
    resumed_from_epoch : int or None
        Epochs already done when this call resumed, else None.
    val_jets : int
        Validation jets each validation loss is the mean over (``val_size``).
    """

    model: nn.Module
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    history: list[dict[str, Any]]
    out_dir: Path
    stopped_early: bool
    seconds: float
    resumed_from_epoch: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    val_jets: int = 0
    #: the auxiliary head (weights of the best epoch) when trained with ``aux_weight > 0``
    aux_head: nn.Module | None = None

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"




# ------------------------------------------------------------------------------------ fit
def fit(
    model_or_config: nn.Module | Mapping[str, Any],
    train: Any,
    val: Any = None,
    *,
    epochs: int = 50,
    batch_size: int = 64,
    lr: float = 3e-3,
    patience: int = 10,
    grad_clip: float | None = 1.0,
    out_dir: str | Path = "runs/train",
    resume: bool = False,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    loss: str = "chamfer",
    scheduler: str = "plateau",
    weight_decay: float = 0.0,
    min_delta: float = 0.0,
    max_nonfinite_retries: int = 3,
    num_workers: int = 0,
    epoch_size: int | None = None,
    max_seconds: float | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    extra_info: Mapping[str, Any] | None = None,
    val_every: int = 1,
    val_size: int | str | None = "auto",
    sync_every: int | None = None,
    deterministic: bool = False,
    aux_targets: Any = None,
    aux_weight: float = 0.0,
    aux_hidden: int = 32,
) -> FitResult:
    """Train an autoencoder on background jets (the module docstring describes the behaviour).

    Parameters
    ----------
    model_or_config : torch.nn.Module or dict
        A model (LGAE / GNNAE) or its config (``{"architecture": "lgae" | "gnnae", ...}``).
    train, val : JetTensors, (p4, mask[, scalars]) or awkward jets
        Training sample and optional validation sample (else ``val_fraction`` of ``train``).
    epochs : int
        Maximum number of epochs (in total, counting those done before a resume).
    batch_size : int
        Jets per optimisation step (per process under DDP). The default 64 and ``lr=3e-3``
        reached a given validation loss in the least CPU time of a batch {32, 64, 128, 256} x
        lr {1e-3, 3e-3} grid on CPU (LGAE-Mix, chamfer-dr; ``benchmarks/fit_tradeoff.py``,
        whose docstring records the table): about half the time of 128 / 1e-3, the bundled
        recipe's; 256 / 1e-3 was the slowest. On a GPU, where a step costs about the same
        up to thousands of jets, use far larger batches (and re-measure the learning rate).
    lr : float
        Initial Adam learning rate (see ``batch_size``).
    patience : int
        Stop after this many validations without an improvement > ``min_delta`` (epochs, at
        the default ``val_every=1``).
    grad_clip : float or None
        Max gradient 2-norm (None: no clipping).
    out_dir : str or Path
        Where ``last.pt``, ``best.pt``, ``metrics.csv`` and ``metrics.json`` go.
    resume : bool
        Continue from ``out_dir/last.pt`` (a finished run returns at once); without it an
        ``out_dir`` that already holds ``last.pt`` is an error (nothing is overwritten).
    device : "auto", "cpu", "cuda", ...
        ``"auto"``: CUDA when available.
    dtype : "float32" / "float64", optional
        Overrides the config's dtype when a config is given (models carry their own).
    seed : int
        Seeds the model initialisation, the train/validation split, the validation subset and
        the per-epoch shuffle.
    val_fraction : float
        Fraction of ``train`` held out for validation when ``val`` is None (0 < f < 1).
    loss : {"chamfer", "mse", "chamfer-dr"}
        Training loss (see the module docstring).
    scheduler : {"plateau", "cosine", "none"}
        Learning-rate schedule (plateau: halve after ``max(1, patience // 3)`` flat
        validations; cosine: annealed over ``epochs``, stepped every epoch).
    weight_decay, min_delta : float
        Adam weight decay; minimum validation improvement that resets the patience.
    max_nonfinite_retries : int
        Roll-backs (each halving the learning rate) allowed after non-finite losses.
    num_workers : int
        Accepted for backward compatibility and ignored: batches are index slices of tensors
        already on the device, there is no loader to parallelise.
    epoch_size : int, optional
        Jets per epoch: each epoch trains on this many jets drawn without replacement from a
        seeded per-epoch permutation of the whole training sample (default: all of them).
        Smaller epochs give more frequent validation, checkpoints and learning-rate decisions.
    max_seconds : float, optional
        Wall-clock budget of this call: no new epoch starts once it is spent (the run can be
        continued with ``resume=True``).
    progress : bool
        tqdm bar per epoch with the loss and jets/s (rank 0 only).
    log : callable, optional
        Receives one line per epoch (default: the ``lgae_hep.train`` logger, and the bar).
    extra_info : mapping, optional
        Plain data stored in every checkpoint's ``extra`` (e.g. the data recipe).
    val_every : int
        Validate after every ``val_every``-th epoch (counted from the start of the run) and
        after epoch ``epochs``. Early stopping, the plateau schedule and ``best.pt`` act on
        validated epochs only; ``last.pt`` is written after every epoch (an epoch without
        validation has ``val_loss`` NaN in the history, null in the metrics files). A run
        stopped by ``max_seconds`` between two validations keeps the best validated weights.
    val_size : "auto", int or None
        Validation jets per validation: a fixed seeded subset of the validation sample, the
        same jets every time (so consecutive validations compare like with like). ``"auto"``
        (default) takes as many as cost at most :data:`VAL_BUDGET` (10 %) of the training
        time between two validations, estimated from jet counts with
        :data:`STEP_OVER_FORWARD` (a training step costs that many validation forwards per
        jet), but at least :data:`VAL_MIN_JETS` (so the bound holds for epochs of more than
        ``VAL_MIN_JETS / (VAL_BUDGET * STEP_OVER_FORWARD)`` ~ 3,300 jets); e.g. 1,500 of the
        bundled recipe's 10,000 validation jets for its 5,000-jet epochs. None: all of them.
    sync_every : int, optional
        Batches between host reads of the training loss (the progress bar, the non-finite
        check). Default: 1 on CPU, where a read costs nothing and a non-finite batch stops
        the epoch before its optimiser step; 50 on accelerators, where a read stalls the
        queue (a non-finite batch is then found up to 49 steps late, and the roll-back to the
        start of the epoch discards those steps as it does the others).
    deterministic : bool
        Run the whole training inside :func:`lgae_hep.determinism.deterministic`
        (deterministic cuBLAS/cuDNN kernels, no TF32, an error for ops without a
        deterministic kernel): on a GPU, two runs with the same seed then give the same
        weights. On CPU training is reproducible with the same seed, machine and thread count
        anyway.
    aux_targets : array_like, optional
        Raw per-jet auxiliary targets (n_train, K), row ``i`` for jet ``i`` of ``train`` (before
        any drop; NaN entries are skipped), e.g.
        :func:`lgae_hep.objectives.substructure_targets`. Used only with ``aux_weight > 0``
        (module docstring), ignored otherwise.
    aux_weight : float
        Weight of the auxiliary loss relative to the reconstruction loss (default 0: no head,
        the training is exactly that without the option).
    aux_hidden : int
        Width of the auxiliary head's two hidden layers.

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        Bad arguments, empty / all-padding / all-invalid samples, an unwritable ``out_dir``,
        an existing run without ``resume``, or a checkpoint that does not fit the model.
    FloatingPointError
        When the loss stays non-finite after ``max_nonfinite_retries`` roll-backs.
    """
    with determinism.deterministic(deterministic):
        return _fit(
            model_or_config, train, val, out_dir=out_dir, resume=resume, device=device,
            dtype=dtype, val_fraction=val_fraction, log=log, epochs=epochs,
            batch_size=batch_size, lr=lr, patience=patience, grad_clip=grad_clip, seed=seed,
            loss=loss, scheduler=scheduler, weight_decay=weight_decay, min_delta=min_delta,
            max_nonfinite_retries=max_nonfinite_retries, num_workers=num_workers,
            epoch_size=epoch_size, max_seconds=max_seconds, progress=progress,
            extra_info=dict(extra_info or {}), val_every=val_every, val_size=val_size,
            sync_every=sync_every, aux_targets=aux_targets, aux_weight=aux_weight,
            aux_hidden=aux_hidden,
        )


def _fit(model_or_config: nn.Module | Mapping[str, Any], train: Any, val: Any, *,
         out_dir: str | Path, resume: bool, device: str | torch.device,
         dtype: str | torch.dtype | None, val_fraction: float,
         log: Callable[[str], None] | None, aux_targets: Any = None, **options: Any
         ) -> FitResult:
    """:func:`fit` without the determinism context (its keywords, all given)."""
    t_start = time.perf_counter()
    opts = _Options(**options)
    if opts.aux_weight > 0 and aux_targets is None:
        raise ValueError("aux_weight > 0 needs aux_targets (per-jet targets of the train jets)")
    if opts.aux_weight == 0:
        aux_targets = None
    if val is None and not (0.0 < float(val_fraction) < 1.0):
        raise ValueError(f"val_fraction must be in (0, 1) when no val sample is given, "
                         f"got {val_fraction!r}")
    rank, world, dev, dist_here = dist_setup(device)
    out_dir = Path(out_dir)
    torch.manual_seed(opts.seed)
    model = _model_for_fit(model_or_config, dtype)
    if aux_targets is not None and world > 1:
        raise ValueError("the auxiliary objective (aux_weight > 0) is not supported under DDP")
    samples = _fit_samples(model, train, val, val_fraction, opts.seed, aux_targets)
    if rank == 0:  # before anything is written
        probe_out_dir(out_dir)
        check_disk_space(out_dir, model)
    trainer = _Trainer(model, samples, opts, out_dir=out_dir, rank=rank, world=world, dev=dev,
                       emit=log or (lambda msg: logger.info(msg)))
    trainer.restore(resume)
    trainer.to_device()
    trainer.run(t_start)
    trainer.load_best()
    if dist_here:
        dist.destroy_process_group()
    return trainer.result(time.perf_counter() - t_start)


# --------------------------------------------------------------------------- fit: the steps
@dataclass(frozen=True)
class _Options:
    """The training settings of :func:`fit`, validated on construction."""

    epochs: int
    batch_size: int
    patience: int
    max_nonfinite_retries: int
    epoch_size: int | None
    max_seconds: float | None
    lr: float
    weight_decay: float
    min_delta: float
    grad_clip: float | None
    seed: int
    loss: str
    scheduler: str
    num_workers: int
    progress: bool
    extra_info: dict[str, Any]
    val_every: int = 1
    val_size: int | str | None = "auto"
    sync_every: int | None = None
    aux_weight: float = 0.0
    aux_hidden: int = 32

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "max_nonfinite_retries", "val_every"):
            check_positive(name, getattr(self, name))
        if self.val_size != "auto" and self.val_size is not None:
            check_positive("val_size", self.val_size)
        if self.sync_every is not None:
            check_positive("sync_every", self.sync_every)
        if self.epoch_size is not None:
            check_positive("epoch_size", self.epoch_size)
        if self.max_seconds is not None:
            check_positive("max_seconds", self.max_seconds, float)
        check_positive("lr", self.lr, float)
        check_positive("weight_decay", self.weight_decay, float, allow_zero=True)
        check_positive("min_delta", self.min_delta, float, allow_zero=True)
        if self.grad_clip is not None:
            check_positive("grad_clip", self.grad_clip, float)
        check_positive("aux_weight", self.aux_weight, float, allow_zero=True)
        check_positive("aux_hidden", self.aux_hidden)
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")


def _model_for_fit(model_or_config: nn.Module | Mapping[str, Any],
                   dtype: str | torch.dtype | None) -> nn.Module:
    """The bare model to train: the given one (cast to ``dtype``) or one built from a config."""
    if isinstance(model_or_config, nn.Module):
        model = unwrap_model(model_or_config)
        if not (isinstance(getattr(model, "config", None), Mapping)
                and hasattr(model, "loss_features")):
            raise ValueError("the model has no .config dict or no loss_features method; fit "
                             "trains lgae-hep models only")
        if dtype is not None and model_dtype(model) != parse_dtype(dtype):
            model = model.to(parse_dtype(dtype))
        return model
    if isinstance(model_or_config, Mapping):
        cfg = dict(model_or_config)
        if dtype is not None:
            cfg["dtype"] = str(parse_dtype(dtype)).replace("torch.", "")
        return build_model(cfg)
    raise ValueError(f"model_or_config must be a model or a config dict, "
                     f"got {type(model_or_config).__name__}")


#: validation may cost at most this fraction of the training time between two validations
#: (``val_size="auto"``)
VAL_BUDGET = 0.1
#: a training step's cost per jet over a validation forward's, which sizes
#: ``val_size="auto"``: 3.8 measured for the bundled lgae-mix recipe (chamfer-dr, batch 128,
#: 2 CPU threads, ``benchmarks/fit_loop.py``); 3 keeps a margin for models and losses whose
#: backward pass is relatively cheaper
STEP_OVER_FORWARD = 3.0
#: the fewest validation jets ``val_size="auto"`` takes (all of them when there are fewer)
VAL_MIN_JETS = 1000


def val_jets(val_size: int | str | None, n_val: int, jets_between: int) -> int:
    """Validation jets per validation for :func:`fit`'s ``val_size`` (see there), given
    ``n_val`` validation jets and ``jets_between`` training jets between two validations."""
    if val_size is None:
        return n_val
    if val_size == "auto":
        budget = round(VAL_BUDGET * STEP_OVER_FORWARD * jets_between)
        return min(n_val, max(VAL_MIN_JETS, budget))
    return min(n_val, int(val_size))


def val_subset(n_val: int, k: int, seed: int) -> torch.Tensor:
    """Indices of the fixed validation subset of ``k`` of ``n_val`` jets: all of them in
    order, or the first ``k`` of a permutation seeded by ``seed`` (sorted)."""
    if k >= n_val:
        return torch.arange(n_val)
    g = torch.Generator().manual_seed(seed * 15_485_863 + 17)
    return torch.randperm(n_val, generator=g)[:k].sort().values


def epoch_indices(n: int, epoch: int, seed: int, epoch_size: int | None = None,
                  world: int = 1, rank: int = 0) -> torch.Tensor:
    """The training jets of ``epoch`` in the order they are used (this process's share).

    Seeded by (``seed``, ``epoch``) only, so that a resumed run continues exactly. It is the
    order the former ``DataLoader`` loop drew: with ``epoch_size < n`` the first
    ``epoch_size`` of a seeded permutation of all jets, shuffled by ``RandomSampler``'s
    permutation (one process) or ``DistributedSampler(shuffle=True, drop_last=True)``'s (every
    ``world``-th jet from ``rank`` of a common permutation cut to a multiple of ``world``).
    """
    sub = None
    m = n
    if epoch_size is not None and epoch_size < n:
        g = torch.Generator().manual_seed(seed * 7_919 + epoch)
        sub = torch.randperm(n, generator=g)[:epoch_size]
        m = epoch_size
    if world > 1:
        g = torch.Generator().manual_seed(seed + epoch)
        order = torch.randperm(m, generator=g)[:(m // world) * world][rank::world]
    else:
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(m, generator=g)
    return order if sub is None else sub[order]


@dataclass
class _Samples:
    """Training and validation tensors ``(p4, mask[, scalars])``, on the CPU, in the model's
    dtype, padded to its particle count (what :func:`lgae_hep.objectives.prepare_data`
    returns)."""

    train: tuple[torch.Tensor, ...]
    val: tuple[torch.Tensor, ...]
    #: raw auxiliary targets (n_train, K) of the training jets, row-aligned with ``train``
    aux_train: torch.Tensor | None = None


def _fit_samples(model: nn.Module, train: Any, val: Any, val_fraction: float,
                 seed: int, aux_targets: Any = None) -> _Samples:
    """Prepare the samples for ``model``; a seeded split of ``train`` when ``val`` is None.
    ``aux_targets`` (one row per ``train`` jet) follow their jets through the drop and split."""
    n_part = int(model.config.get("num_particles", DEFAULT_NUM_PARTICLES))
    mdtype = model_dtype(model)
    p4, mask, scal, kept = prepare_data(train, n_part, name="train", dtype=mdtype, model=model,
                                        return_kept=True)
    aux = None
    if aux_targets is not None:
        aux = torch.as_tensor(np.asarray(aux_targets, dtype=np.float64))
        if aux.ndim == 1:
            aux = aux[:, None]
        if aux.ndim != 2 or aux.shape[0] != kept.shape[0] or aux.shape[1] == 0:
            raise ValueError(f"aux_targets must have one row per train jet, shape "
                             f"({kept.shape[0]}, K), got {tuple(aux.shape)}")
        aux = aux[kept]
    if val is None:
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(p4), generator=g)
        n_val = max(1, int(round(len(p4) * float(val_fraction))))
        if n_val >= len(p4):
            raise ValueError(f"train sample of {len(p4)} jets is too small to hold out "
                             f"val_fraction={val_fraction} for validation")
        vi, ti = perm[:n_val], perm[n_val:]
        vp4, vmask, vscal = p4[vi], mask[vi], (scal[vi] if scal is not None else None)
        p4, mask, scal = p4[ti], mask[ti], (scal[ti] if scal is not None else None)
        aux = aux[ti] if aux is not None else None
        if not bool(mask.any()):
            raise ValueError("train sample has no real particle after the validation split")
    else:
        vp4, vmask, vscal = prepare_data(val, n_part, name="val", dtype=mdtype, model=model)
    if (scal is None) != (vscal is None):
        raise ValueError("train and val samples must both have scalars or both have none")
    return _Samples(train=(p4, mask) + ((scal,) if scal is not None else ()),
                    val=(vp4, vmask) + ((vscal,) if vscal is not None else ()), aux_train=aux)


def _history_row(row: dict[str, Any]) -> dict[str, Any]:
    """A ``metrics.json`` row as the run made it: the non-finite numbers that the file holds
    as null back as floats (NaN losses of unvalidated epochs, no best loss yet: inf)."""
    row = dict(row)
    for key, missing in (("train_loss", math.nan), ("val_loss", math.nan),
                         ("best_val_loss", math.inf)):
        if key in row and row[key] is None:
            row[key] = missing
    return row


@dataclass
class _Progress:
    """Where a run stands: the early-stopping bookkeeping that ``last.pt`` carries to a resume."""

    epoch: int = 0  # the next epoch to run (0-based)
    step: int = 0
    best_val: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    retries: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any], out_dir: Path) -> _Progress:
        ex = ckpt.get("extra") or {}
        start = int(ckpt["epoch"]) + 1
        history: list[dict[str, Any]] = []
        hist_path = out_dir / "metrics.json"
        if hist_path.exists():
            history = [_history_row(h) for h in json.loads(hist_path.read_text())
                       if int(h.get("epoch", -1)) < start]
        return cls(
            epoch=start, step=int(ckpt.get("step", 0)),
            best_val=float(ex.get("best_val_loss", math.inf)),
            best_epoch=int(ex.get("best_epoch", -1)), bad_epochs=int(ex.get("bad_epochs", 0)),
            retries=int(ex.get("nonfinite_retries", 0)),
            # a run that stopped early stays finished; one that hit its epoch limit continues
            # when resumed with a larger ``epochs``
            stopped_early=bool(ex.get("stopped_early", False)), history=history,
        )

    def extra(self, epoch: int, done: bool, opts: _Options, world: int) -> dict[str, Any]:
        """The ``extra`` entry of the checkpoints written after ``epoch``."""
        return {
            "epoch": epoch, "step": self.step, "best_val_loss": self.best_val,
            "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
            "nonfinite_retries": self.retries, "done": done,
            "stopped_early": bool(self.stopped_early),
            "loss": opts.loss, "seed": opts.seed, "world_size": world,
            "batch_size": opts.batch_size,
            "metrics": {"history": self.history[-1] if self.history else {}},
            "info": dict(opts.extra_info),
        }


class _Trainer:
    """One :func:`_fit` call: the model, optimiser, scheduler, loaders and the epoch loop."""

    def __init__(self, model: nn.Module, samples: _Samples, opts: _Options, *, out_dir: Path,
                 rank: int, world: int, dev: torch.device, emit: Callable[[str], None]):
        self.opts, self.samples, self.out_dir = opts, samples, out_dir
        self.rank, self.world, self.dev, self.emit = rank, world, dev, emit
        self.is_main = rank == 0
        self.last_path, self.best_path = out_dir / "last.pt", out_dir / "best.pt"
        self.config = dict(model.config)
        self.model = model.to(dev)
        self.train_model: nn.Module = self.model  # the DDP wrapper under torchrun
        self.aux: AuxHead | None = None
        params = list(self.model.parameters())
        if samples.aux_train is not None:
            self.aux = self._build_aux(samples)
            params += list(self.aux.parameters())
        self.opt = torch.optim.Adam(params, lr=float(opts.lr),
                                    weight_decay=float(opts.weight_decay))
        self.sched = make_scheduler(opts.scheduler, self.opt, opts.epochs, opts.patience)
        self.progress = _Progress()
        self.resumed_from: int | None = None

    # ---- build / restore
    def _build_aux(self, samples: _Samples) -> AuxHead:
        """The auxiliary head: its input width from one forward pass on two training jets, the
        target standardisation from all (kept) training jets, computed once."""
        raw = samples.aux_train
        p4, mask = samples.train[0][:2].to(self.dev), samples.train[1][:2].to(self.dev)
        scal = samples.train[2][:2].to(self.dev) if len(samples.train) == 3 else None
        was = self.model.training
        self.model.eval()
        with torch.no_grad():
            n_in = latent_invariants(forward_model(self.model, p4, mask, scal).latent).shape[1]
        self.model.train(was)
        mean = torch.nanmean(raw, 0)
        std = torch.sqrt(torch.nanmean((raw - mean) ** 2, 0))
        std = torch.where(torch.isfinite(std) & (std > 0), std, torch.ones_like(std))
        mean = torch.where(torch.isfinite(mean), mean, torch.zeros_like(mean))
        names = [f"target{i}" for i in range(raw.shape[1])]
        if raw.shape[1] == 4:
            from .objectives import AUX_TARGETS
            names = list(AUX_TARGETS)
        head = AuxHead(n_in, raw.shape[1], self.opts.aux_hidden, mean=mean.float(),
                       std=std.float(), names=names)
        return head.to(device=self.dev, dtype=model_dtype(self.model))

    def restore(self, resume: bool) -> None:
        """Continue from ``last.pt`` (``resume``); refuse to overwrite a run otherwise."""
        last_path = self.last_path
        if last_path.exists() and not resume:
            raise ValueError(
                f"{last_path} exists: out_dir already holds a training run; pass resume=True "
                "(--resume) to continue it, or choose another out_dir"
            )
        if not resume:
            return
        if not last_path.exists():
            if self.is_main:
                self.emit(f"no {last_path} yet: starting a new run")
            return
        ckpt = load_checkpoint(last_path, map_location="cpu")
        old = dict(ckpt["config"])
        if old != json.loads(json.dumps(self.config)):
            raise CheckpointError(
                f"cannot resume from {last_path}: its model config {old} differs from the "
                f"requested {self.config}"
            )
        load_state_dict_checked(self.model, ckpt["state_dict"], str(last_path))
        aux_state = (ckpt.get("extra") or {}).get("aux_head")
        if (aux_state is None) != (self.aux is None):
            raise CheckpointError(
                f"cannot resume from {last_path}: it was trained "
                f"{'without' if aux_state is None else 'with'} the auxiliary head, the "
                f"requested run {'has' if self.aux is not None else 'has not'} one "
                "(aux_weight)")
        if self.aux is not None:
            head = AuxHead.from_state(aux_state)
            if head.config != self.aux.config:
                raise CheckpointError(f"cannot resume from {last_path}: its auxiliary head "
                                      f"{head.config} differs from the requested "
                                      f"{self.aux.config}")
            load_state_dict_checked(self.aux, aux_state["state_dict"], str(last_path))
        if ckpt.get("optimizer") is not None:
            self.opt.load_state_dict(ckpt["optimizer"])
        if self.sched is not None and ckpt.get("scheduler") is not None:
            self.sched.load_state_dict(ckpt["scheduler"])
        self.progress = _Progress.from_checkpoint(ckpt, self.out_dir)
        if ckpt.get("rng") is not None:
            set_rng_state(ckpt["rng"])
        self.resumed_from = self.progress.epoch
        self.emit(f"resuming from {last_path} after epoch {self.progress.epoch - 1}"
                  + (" (run already finished)" if self.progress.stopped_early else ""))

    # ---- data on the device
    def to_device(self) -> None:
        """Wrap the model for DDP (under torchrun); put the training sample and this
        process's share of the validation subset on the device, once."""
        if self.world > 1:
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.dev.index] if self.dev.type == "cuda" else None)
        opts = self.opts
        self.train_data = tuple(t.to(self.dev) for t in self.samples.train)
        n_train = len(self.samples.train[0])
        self.epoch_jets = min(opts.epoch_size or n_train, n_train)
        n_val = len(self.samples.val[0])
        self.val_jets = val_jets(opts.val_size, n_val, self.epoch_jets * opts.val_every)
        sel = val_subset(n_val, self.val_jets, opts.seed)[self.rank::self.world]
        self.val_data = tuple(t.index_select(0, sel).to(self.dev) for t in self.samples.val)
        if self.aux is not None:  # standardised once, with the head's (stored) mean and std
            head = self.aux
            raw = self.samples.aux_train.to(self.dev)
            self.aux_data = ((raw - head.mean.double()) / head.std.double()).to(head.mean.dtype)
        self.sync_every = opts.sync_every or (1 if self.dev.type == "cpu" else 50)
        if self.is_main:
            every = "every epoch" if opts.val_every == 1 else f"every {opts.val_every} epochs"
            self.emit(f"training on {n_train} jets ({self.epoch_jets} per epoch), validating "
                      f"{every} on {self.val_jets} of {n_val} jets")

    def _batch(self, data: tuple[torch.Tensor, ...], idx: torch.Tensor | slice):
        b = [t[idx] if isinstance(idx, slice) else t.index_select(0, idx) for t in data]
        return b[0], b[1], (b[2] if len(b) == 3 else None)

    # ---- the loop
    def run(self, t_start: float) -> None:
        """Epochs until ``epochs``, early stopping or the time budget."""
        p, opts = self.progress, self.opts
        self.model.train()
        while not p.stopped_early and p.epoch < opts.epochs:
            good = self._snapshot()
            t0 = time.perf_counter()
            tot, cnt, nonfinite = self.run_epoch(p.epoch, t0)
            # the cadence depends on the epoch number only, so a resumed run validates where
            # an uninterrupted one does
            check = (p.epoch + 1) % opts.val_every == 0 or p.epoch + 1 >= opts.epochs
            vloss = math.nan if nonfinite or not check else self.validate()
            if nonfinite or (check and not math.isfinite(vloss)):
                self.roll_back(good, p.epoch, "training" if nonfinite else "validation")
                continue
            self.end_epoch(p.epoch, tot, cnt, vloss if check else None,
                           time.perf_counter() - t0)
            p.epoch += 1
            if p.stopped_early:
                self.emit(f"early stopping: no improvement for {opts.patience} validations "
                          f"(best epoch {p.best_epoch + 1}, val {p.best_val:.5g})")
                break
            if self._time_spent(t_start):
                self.emit(f"time budget of {opts.max_seconds:.0f} s spent after epoch "
                          f"{p.epoch}: stopping (resume=True continues)")
                break
        if self.world > 1:
            dist.barrier()

    def run_epoch(self, epoch: int, t0: float) -> tuple[float, int, bool]:
        """One pass over this epoch's batches: (loss sum, jets, stopped on a non-finite loss).

        The batches are index slices of the tensors on the device; the loss sum stays on the
        device, and the host reads it only every ``sync_every`` batches (and at the end):
        there the progress bar is updated and a non-finite loss or gradient norm on any
        process since the last read stops the epoch, before that batch's optimiser step.
        """
        opts, world, every = self.opts, self.world, self.sync_every
        model, opt = self.model, self.opt
        idx = epoch_indices(len(self.train_data[0]), epoch, opts.seed, opts.epoch_size,
                            world, self.rank).to(self.dev)
        n, bs = len(idx), opts.batch_size
        n_batches = -(-n // bs)
        tot = torch.zeros((), dtype=torch.float64, device=self.dev)
        bad = torch.zeros((), dtype=torch.bool, device=self.dev)
        cnt, shown, nonfinite = 0, 0, False
        show = opts.progress and self.is_main
        bar = tqdm(total=n * world, desc=f"epoch {epoch + 1}/{opts.epochs}", unit="jet",
                   disable=not show, leave=False, file=sys.stderr)
        aux = self.aux
        self.aux_tot = torch.zeros((), dtype=torch.float64, device=self.dev)
        for k in range(n_batches):
            bidx = idx[k * bs:(k + 1) * bs]
            pb, mb, sb = self._batch(self.train_data, bidx)
            nb = min(bs, n - k * bs)
            opt.zero_grad(set_to_none=True)
            out = forward_model(self.train_model, pb, mb, sb)
            lval = per_jet_loss(model, out, pb, mb, opts.loss).mean()
            if aux is None:
                lval.backward()
                ok = torch.isfinite(lval)
                params = model.parameters()
            else:
                laux = aux_loss(aux(out.latent), self.aux_data.index_select(0, bidx)).mean()
                objective = lval + float(opts.aux_weight) * laux
                objective.backward()
                ok = torch.isfinite(objective)
                params = [*model.parameters(), *aux.parameters()]
                self.aux_tot += laux.detach().double() * nb
            if opts.grad_clip is not None:
                ok = ok & torch.isfinite(nn.utils.clip_grad_norm_(params, opts.grad_clip))
            bad = bad | ~ok
            if (k + 1) % every == 0 or k + 1 == n_batches:  # the host reads
                if all_reduce_sum([float(bad)], world, self.dev)[0] > 0:
                    nonfinite = True
                    break
                if show:
                    done = cnt + nb
                    bar.update((done - shown) * world)
                    shown = done
                    mean = float(tot + lval.detach().double() * nb) / done
                    rate = done * world / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix(loss=f"{mean:.4g}", jets_s=f"{rate:.0f}")
            opt.step()
            self.progress.step += 1
            tot += lval.detach().double() * nb
            cnt += nb
        bar.close()
        return float(tot), cnt, nonfinite

    @torch.no_grad()
    def validate(self) -> float:
        """Mean per-jet loss on the validation subset (over all processes); one host read."""
        model = self.model
        model.eval()
        data = self.val_data
        n, bs = len(data[0]), max(self.opts.batch_size, 256)
        tot = torch.zeros((), dtype=torch.float64, device=self.dev)
        for i in range(0, n, bs):
            pb, mb, sb = self._batch(data, slice(i, i + bs))
            per = per_jet_loss(model, forward_model(model, pb, mb, sb), pb, mb, self.opts.loss)
            tot += per.double().sum()
        tot, cnt = all_reduce_sum([float(tot), float(n)], self.world, self.dev)
        model.train()
        return tot / max(cnt, 1.0)

    def _snapshot(self) -> dict[str, Any]:
        """The last good state (start of the epoch), for :meth:`roll_back`."""
        return {"model": copy.deepcopy(self.model.state_dict()),
                "aux": (copy.deepcopy(self.aux.state_dict()) if self.aux is not None
                        else None),
                "opt": copy.deepcopy(self.opt.state_dict()),
                "sched": copy.deepcopy(self.sched.state_dict()) if self.sched is not None
                else None}

    def roll_back(self, good: dict[str, Any], epoch: int, which: str) -> None:
        """After a non-finite loss: restore ``good``, halve the learning rate, warn (the epoch
        is then retried); ``FloatingPointError`` after ``max_nonfinite_retries`` roll-backs."""
        p, limit = self.progress, self.opts.max_nonfinite_retries
        p.retries += 1
        self.model.load_state_dict(good["model"])
        if self.aux is not None:
            self.aux.load_state_dict(good["aux"])
        self.opt.load_state_dict(good["opt"])
        if self.sched is not None:
            self.sched.load_state_dict(good["sched"])
        if p.retries > limit:
            raise FloatingPointError(
                f"non-finite loss in epoch {epoch + 1} after {limit} "
                "roll-backs with halved learning rates; the model was restored to the last "
                f"good state (saved in {self.last_path if self.last_path.exists() else 'memory'})"
                ". Check the input data for extreme values or lower --lr / --grad-clip"
            )
        for gr in self.opt.param_groups:
            gr["lr"] *= 0.5
        warnings.warn(
            f"non-finite {which} loss in epoch {epoch + 1}: rolled back to the start of the "
            f"epoch and halved the learning rate to {self.opt.param_groups[0]['lr']:.3g} "
            f"(retry {p.retries}/{limit})", RuntimeWarning, stacklevel=4,  # fit's line
        )

    def end_epoch(self, epoch: int, tot: float, cnt: int, vloss: float | None,
                  seconds: float) -> None:
        """Bookkeeping after a good epoch: early-stopping counters and the plateau schedule
        (validated epochs, ``vloss`` not None), the other schedules' step, history,
        checkpoints (``best.pt`` on an improvement, ``last.pt``), metrics files, log line."""
        p, opts = self.progress, self.opts
        tloss_sum, tcnt = all_reduce_sum([tot, float(cnt)], self.world, self.dev)
        tloss = tloss_sum / max(tcnt, 1.0)
        lr_now = self.opt.param_groups[0]["lr"]
        improved = vloss is not None and vloss < p.best_val - opts.min_delta
        if improved:
            p.best_val, p.best_epoch, p.bad_epochs = vloss, epoch, 0
        elif vloss is not None:
            p.bad_epochs += 1
        if self.sched is not None:
            if opts.scheduler != "plateau":
                self.sched.step()
            elif vloss is not None:
                self.sched.step(vloss)
        p.history.append({
            "epoch": epoch, "train_loss": tloss,
            "val_loss": math.nan if vloss is None else vloss, "lr": lr_now,
            "best_val_loss": p.best_val, "jets_per_s": tcnt / max(seconds, 1e-9),
            "seconds": seconds, "step": p.step, "improved": bool(improved),
        })
        if self.aux is not None:
            p.history[-1]["train_aux_loss"] = (
                all_reduce_sum([float(self.aux_tot)], self.world, self.dev)[0] / max(tcnt, 1.0))
        p.stopped_early = p.bad_epochs >= opts.patience
        finished = p.stopped_early or epoch + 1 >= opts.epochs
        if self.is_main:
            if improved:
                save_checkpoint(self.best_path, self.model,
                                extra=self._extra(epoch, False), rng_state=False)
            save_checkpoint(self.last_path, self.model, optimizer=self.opt,
                            scheduler=self.sched, extra=self._extra(epoch, finished))
            write_metrics(self.out_dir, p.history)
        val_txt = "-" if vloss is None else f"{vloss:.5g}"
        self.emit(f"epoch {epoch + 1}/{opts.epochs}: train {tloss:.5g}  val {val_txt}  "
                  f"lr {lr_now:.3g}  {tcnt / max(seconds, 1e-9):.0f} jets/s  {seconds:.1f} s"
                  + ("  *" if improved else ""))

    def _extra(self, epoch: int, done: bool) -> dict[str, Any]:
        """A checkpoint's ``extra``: the progress, and the auxiliary head when there is one."""
        extra = self.progress.extra(epoch, done, self.opts, self.world)
        if self.aux is not None:
            extra["aux_head"] = self.aux.to_state()
            extra["aux_weight"] = float(self.opts.aux_weight)
        return extra

    def _time_spent(self, t_start: float) -> bool:
        """``max_seconds`` is spent (on any process)."""
        budget = self.opts.max_seconds
        if budget is None:
            return False
        over = time.perf_counter() - t_start > budget
        return all_reduce_sum([float(over)], self.world, self.dev)[0] > 0

    # ---- the end
    def load_best(self) -> None:
        """Put the best weights (``best.pt``) into the model."""
        if self.best_path.exists():
            best = load_checkpoint(self.best_path)
            load_state_dict_checked(self.model, best["state_dict"], str(self.best_path))
            aux_state = (best.get("extra") or {}).get("aux_head")
            if self.aux is not None and aux_state is not None:
                load_state_dict_checked(self.aux, aux_state["state_dict"], str(self.best_path))

    def result(self, seconds: float) -> FitResult:
        p = self.progress
        self.model.eval()
        return FitResult(
            model=self.model, best_epoch=p.best_epoch, best_val_loss=p.best_val,
            epochs_run=len(p.history), history=p.history, out_dir=self.out_dir,
            stopped_early=p.stopped_early, seconds=seconds,
            resumed_from_epoch=self.resumed_from, config=self.config, val_jets=self.val_jets,
            aux_head=self.aux.eval() if self.aux is not None else None,
        )
