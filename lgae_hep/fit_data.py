"""What :func:`lgae_hep.train.fit` trains and validates on and returns: its options, the jets
prepared once as tensors, the seeded epoch order, the validation cadence and subset, the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .data import DEFAULT_NUM_PARTICLES
from .fit_runtime import (
    check_positive,
)
from .objectives import (
    LOSSES,
    model_dtype,
    prepare_data,
)

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
    #: the contrastive head (best epoch) when trained with ``contrastive_weight > 0``
    contrastive_head: nn.Module | None = None

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"


@dataclass(frozen=True)
class FitOptions:
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
    contrastive_weight: float = 0.0
    contrastive_temperature: float = 0.1
    mass_weight: float = 0.0
    momentum_weight: float = 0.0
    nae_weight: float = 0.0
    nae_steps: int = 3
    nae_step_size: float = 0.02
    nae_noise: float = 0.005
    nae_gamma: float = 1.0
    nae_keep_mass: bool = False

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
        check_positive("contrastive_weight", self.contrastive_weight, float, allow_zero=True)
        check_positive("contrastive_temperature", self.contrastive_temperature, float)
        check_positive("mass_weight", self.mass_weight, float, allow_zero=True)
        check_positive("momentum_weight", self.momentum_weight, float, allow_zero=True)
        check_positive("nae_weight", self.nae_weight, float, allow_zero=True)
        check_positive("nae_steps", self.nae_steps, allow_zero=True)
        for name in ("nae_step_size", "nae_noise", "nae_gamma"):
            check_positive(name, getattr(self, name), float, allow_zero=True)
        if not isinstance(self.nae_keep_mass, bool):
            raise ValueError(f"nae_keep_mass must be True or False, got {self.nae_keep_mass!r}")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")


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
class FitSamples:
    """Training and validation tensors ``(p4, mask[, scalars])``, on the CPU, in the model's
    dtype, padded to its particle count (what :func:`lgae_hep.objectives.prepare_data`
    returns)."""

    train: tuple[torch.Tensor, ...]
    val: tuple[torch.Tensor, ...]
    #: raw auxiliary targets (n_train, K) of the training jets, row-aligned with ``train``
    aux_train: torch.Tensor | None = None


def fit_samples(model: nn.Module, train: Any, val: Any, val_fraction: float,
                 seed: int, aux_targets: Any = None) -> FitSamples:
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
    return FitSamples(train=(p4, mask) + ((scal,) if scal is not None else ()),
                    val=(vp4, vmask) + ((vscal,) if vscal is not None else ()), aux_train=aux)
