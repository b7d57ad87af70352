"""Training of LGAE / GNNAE autoencoders on background jets: ``fit`` and ``lgae-hep train``.

What :func:`fit` does
---------------------
* Inputs: :class:`lgae_hep.data.JetTensors`, ``(p4, mask[, scalars])`` tensors/arrays (GeV,
  ``(E, px, py, pz)``) or awkward jets (converted with :func:`lgae_hep.data.to_tensors`). Jets
  flagged invalid by the project-wide bad-input policy are **dropped** with one warning that
  counts them. An empty sample or one with no real particle at all is a ``ValueError``.
* Train / validation split (seeded) unless a validation sample is given; a ``DataLoader`` over
  in-memory tensors; Adam; ``ReduceLROnPlateau`` (default) or cosine annealing; gradient-norm
  clipping; early stopping on the validation loss; CUDA when available (``device="auto"``);
  float32 by default (the model's ``dtype`` config entry).
* Loss (per jet, then averaged over the batch): ``"chamfer"`` -- the masked Chamfer distance of
  :func:`lgae_hep.losses.chamfer`, on the 4-vectors in TeV for the LGAE and on the relative
  coordinates ``(eta_rel, phi_rel, pT_rel)`` the network sees for the GNNAE (as in the paper's
  GNNAE baselines); ``"mse"`` -- order-preserving squared error (:func:`lgae_hep.losses.mse`),
  only meaningful for models whose output keeps the input order (``mix`` aggregation, GNNAE-PL).
  :func:`jet_losses` evaluates the same per-jet loss, the natural anomaly score of the model.
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
  on CPU, nccl on CUDA), the model is wrapped in ``DistributedDataParallel``, batches come from a
  ``DistributedSampler`` (``batch_size`` is per process), losses are averaged over processes and
  only rank 0 writes files; every rank returns the same :class:`FitResult`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, RandomSampler, Subset, TensorDataset
from torch.utils.data.distributed import DistributedSampler
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
from .data import DEFAULT_NUM_PARTICLES, to_tensors
from .losses import chamfer, mse, pairwise_sqdist
from .models import build_model
from .nn.io import parse_dtype

__all__ = ["LOSSES", "SCHEDULERS", "FitResult", "fit", "jet_losses", "prepare_data"]

logger = logging.getLogger("lgae_hep.train")

LOSSES = ("chamfer", "mse")
SCHEDULERS = ("plateau", "cosine", "none")


# ------------------------------------------------------------------------------------ data
def _to_torch(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise ValueError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def prepare_data(
    data: Any,
    num_particles: int,
    *,
    name: str = "train",
    dtype: torch.dtype = torch.float32,
    warn: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Bring a training sample to ``(p4, mask, scalars)`` CPU tensors with invalid jets dropped.

    Parameters
    ----------
    data : JetTensors, tuple or awkward array
        ``JetTensors`` (its ``valid`` flags are honoured), ``(p4, mask)`` or
        ``(p4, mask, scalars)`` tensors / numpy arrays, or awkward jets of Lorentz vectors with
        any outer structure (converted with ``to_tensors(..., on_invalid="flag")``).
    num_particles : int
        Particle slots of the model: inputs are truncated (they are pT-sorted) or zero-padded.
    name : str
        Used in messages ("train", "val").
    dtype : torch.dtype
        Floating dtype of the returned ``p4`` / ``scalars``.
    warn : bool
        Emit the one warning counting dropped invalid jets.

    Returns
    -------
    p4 (B, num_particles, 4), mask (B, num_particles), scalars (B, num_particles, S) or None.

    Raises
    ------
    ValueError
        Wrong types or shapes, no jets, or no real particle in the whole sample.
    """
    valid = None
    if hasattr(data, "p4") and hasattr(data, "mask") and hasattr(data, "valid"):
        p4, mask, scalars, valid = data.p4, data.mask, data.scalars, data.valid
    elif isinstance(data, tuple | list) and len(data) in (2, 3) and not hasattr(data, "layout"):
        p4, mask = data[0], data[1]
        scalars = data[2] if len(data) == 3 else None
    elif isinstance(data, ak.Array):
        jt = to_tensors(data, num_particles, backend="torch", on_invalid="flag")
        p4, mask, scalars, valid = jt.p4, jt.mask, jt.scalars, jt.valid
    else:
        raise ValueError(
            f"{name} data must be JetTensors, a (p4, mask[, scalars]) tuple or an awkward "
            f"array of jets, got {type(data).__name__}"
        )
    p4 = _to_torch(p4, f"{name} p4")
    mask = _to_torch(mask, f"{name} mask")
    if p4.ndim != 3 or p4.shape[-1] != 4 or not p4.is_floating_point():
        raise ValueError(
            f"{name} p4 must be a float array of shape (B, N, 4) in (E, px, py, pz) GeV, "
            f"got {tuple(p4.shape)} {p4.dtype}"
        )
    if mask.dtype != torch.bool or tuple(mask.shape) != tuple(p4.shape[:2]):
        raise ValueError(
            f"{name} mask must be bool of shape {tuple(p4.shape[:2])}, "
            f"got {tuple(mask.shape)} {mask.dtype}"
        )
    if scalars is not None:
        scalars = _to_torch(scalars, f"{name} scalars")
        if scalars.ndim != 3 or tuple(scalars.shape[:2]) != tuple(p4.shape[:2]):
            raise ValueError(
                f"{name} scalars must have shape (B, N, S) with (B, N) = {tuple(p4.shape[:2])}, "
                f"got {tuple(scalars.shape)}"
            )
    if p4.shape[0] == 0:
        raise ValueError(f"{name} sample is empty (0 jets): nothing to train on")
    # bad-input policy: drop flagged jets (and jets with non-finite real particles)
    keep = torch.ones(p4.shape[0], dtype=torch.bool)
    if valid is not None:
        keep &= _to_torch(valid, f"{name} valid").to(torch.bool).reshape(-1)
    finite = torch.isfinite(p4).all(-1) | ~mask
    keep &= finite.all(-1)
    n_bad = int((~keep).sum())
    if n_bad:
        if warn:
            warnings.warn(
                f"{name}: dropped {n_bad} of {p4.shape[0]} jets flagged invalid (non-finite, "
                "negative-energy or unphysical momenta; project-wide bad-input policy)",
                RuntimeWarning,
                stacklevel=3,
            )
        p4, mask = p4[keep], mask[keep]
        scalars = scalars[keep] if scalars is not None else None
    if p4.shape[0] == 0:
        raise ValueError(f"{name} sample has no valid jets ({n_bad} jets were flagged invalid)")
    n = p4.shape[1]
    if n > num_particles:  # inputs are pT-sorted: keep the hardest
        p4, mask = p4[:, :num_particles], mask[:, :num_particles]
        scalars = scalars[:, :num_particles] if scalars is not None else None
    elif n < num_particles:
        pad = num_particles - n
        p4 = nn.functional.pad(p4, (0, 0, 0, pad))
        mask = nn.functional.pad(mask, (0, pad), value=False)
        scalars = nn.functional.pad(scalars, (0, 0, 0, pad)) if scalars is not None else None
    if not bool(mask.any()):
        raise ValueError(
            f"{name} sample has {p4.shape[0]} jets but no real particle (all padding): "
            "nothing to train on"
        )
    p4 = torch.where(mask.unsqueeze(-1), p4, torch.zeros((), dtype=p4.dtype)).to(dtype)
    if scalars is not None:
        scalars = torch.where(mask.unsqueeze(-1), scalars, torch.zeros((), dtype=scalars.dtype))
        scalars = scalars.to(dtype)
    return p4.contiguous(), mask.contiguous(), scalars


# ------------------------------------------------------------------------------------ loss
def _feature_chamfer(x: torch.Tensor, y: torch.Tensor, mx: torch.Tensor, my: torch.Tensor):
    """Per-jet masked Chamfer distance (sum convention) for features of any dimension."""
    if x.shape[-1] <= 4:
        pad = 4 - x.shape[-1]
        return chamfer(nn.functional.pad(x, (0, pad)), nn.functional.pad(y, (0, pad)), mx, my)
    d = pairwise_sqdist(x, y)
    inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
    pair = mx.unsqueeze(2) & my.unsqueeze(1)
    d = torch.where(pair, d, inf)
    a = torch.where(mx, d.min(2).values, torch.zeros((), dtype=d.dtype, device=d.device)).sum(1)
    b = torch.where(my, d.min(1).values, torch.zeros((), dtype=d.dtype, device=d.device)).sum(1)
    both_empty = ~mx.any(1) & ~my.any(1)
    return torch.where(both_empty, torch.zeros_like(a), a + b)


def _per_jet_loss(
    model: nn.Module, out: Any, p4: torch.Tensor, mask: torch.Tensor, loss: str
) -> torch.Tensor:
    """Per-jet training loss (B,) for a model output (see the module docstring).

    The model says what is compared: ``loss_features(out)`` (e.g. the GNNAE's relative
    coordinates) or, when that is None, the 4-vectors times ``loss_p4_scale``.
    """
    bare = unwrap_model(model)
    features = bare.loss_features(out)
    if features is not None:
        x, y = features
        if loss == "mse":
            d = ((x - y) ** 2).sum(-1) * mask
            return d.sum(1) / mask.sum(1).clamp(min=1)
        return _feature_chamfer(x, y, out.mask, mask)
    s = bare.loss_p4_scale
    if loss == "mse":
        if tuple(out.p4.shape) != tuple(p4.shape):
            raise ValueError(
                f"loss='mse' needs an output with the input's shape {tuple(p4.shape)} "
                f"(order-preserving model), got {tuple(out.p4.shape)}; use loss='chamfer'"
            )
        return mse(out.p4 * s, p4 * s, mask)
    return chamfer(out.p4, p4, out.mask, mask, scale=s)


def _forward(model: nn.Module, p4, mask, scalars):
    return model(p4, mask, scalars) if scalars is not None else model(p4, mask)


def _model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype if not p.is_complex() else torch.float32
    return torch.float32


@torch.no_grad()
def jet_losses(
    model: nn.Module,
    data: Any,
    *,
    loss: str = "chamfer",
    batch_size: int = 1024,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Per-jet loss of a model on a sample (the anomaly score of a trained autoencoder).

    Parameters
    ----------
    model : torch.nn.Module
        A trained LGAE / GNNAE.
    data : JetTensors, tuple or awkward array
        As in :func:`prepare_data`; invalid jets get NaN (with one warning counting them).
    loss : {"chamfer", "mse"}
        The loss the model was trained with.
    batch_size : int
        Jets per forward pass.
    device : optional
        Default: the model's device.
    progress : bool
        tqdm bar.

    Returns
    -------
    numpy.ndarray
        float64 (B,) per-jet loss, in the order of ``data``.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    bare = unwrap_model(model)
    n_part = int(bare.config.get("num_particles", DEFAULT_NUM_PARTICLES))
    dtype = _model_dtype(bare)
    if not (hasattr(data, "valid") or isinstance(data, tuple | list)):
        data = to_tensors(data, n_part, backend="torch", on_invalid="flag")
    if hasattr(data, "valid"):
        tensors = (data.p4, data.mask) + ((data.scalars,) if data.scalars is not None else ())
        valid = _to_torch(data.valid, "valid").to(torch.bool).reshape(-1)
    else:
        tensors = tuple(_to_torch(t, "data") for t in data)
        if len(tensors) not in (2, 3) or tensors[0].ndim != 3:
            raise ValueError("data must be JetTensors, (p4, mask[, scalars]) or awkward jets")
        valid = (torch.isfinite(tensors[0]).all(-1) | ~tensors[1].to(torch.bool)).all(-1)
    tensors = tuple(_to_torch(t, "data") for t in tensors)
    n_jets = int(tensors[0].shape[0])
    n_bad = int((~valid).sum())
    if n_bad:
        warnings.warn(
            f"{n_bad} of {n_jets} jets flagged invalid get a NaN loss "
            "(project-wide bad-input policy)", RuntimeWarning, stacklevel=2,
        )
    out = np.full(n_jets, np.nan)
    if n_jets == n_bad:
        return out
    sel = tuple(t[valid] for t in tensors)
    p4, mask = sel[0].to(dtype), sel[1].to(torch.bool)
    scalars = sel[2].to(dtype) if len(sel) == 3 else None
    if p4.shape[1] > n_part:
        p4, mask = p4[:, :n_part], mask[:, :n_part]
        scalars = scalars[:, :n_part] if scalars is not None else None
    p4 = torch.where(mask.unsqueeze(-1), p4, torch.zeros((), dtype=dtype))
    dev = torch.device(device) if device is not None else next(bare.parameters()).device
    was_training = bare.training
    bare.eval()
    vals = []
    for i in tqdm(range(0, len(p4), batch_size), disable=not progress, desc="scoring",
                  unit="batch"):
        sl = slice(i, i + batch_size)
        pb, mb = p4[sl].to(dev), mask[sl].to(dev)
        sb = scalars[sl].to(dev) if scalars is not None else None
        o = _forward(bare, pb, mb, sb)
        vals.append(_per_jet_loss(bare, o, pb, mb, loss).double().cpu())
    bare.train(was_training)
    out[valid.numpy()] = torch.cat(vals).numpy()
    return out


# ------------------------------------------------------------------------------------ runtime
def _dist_setup(device: str | torch.device) -> tuple[int, int, torch.device, bool]:
    """(rank, world_size, device, initialised_here) under torchrun, else (0, 1, device, False)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    want_cuda = (device == "auto" and torch.cuda.is_available()) or (
        str(device).startswith("cuda")
    )
    if world <= 1:
        dev = torch.device("cuda" if want_cuda else "cpu") if device == "auto" else torch.device(
            device
        )
        return 0, 1, dev, False
    here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
        here = True
    rank = dist.get_rank()
    if want_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    return rank, dist.get_world_size(), dev, here


def _all_reduce_sum(values: list[float], world: int, device: torch.device) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _probe_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write_probe_{os.getpid()}"
        with open(probe, "wb") as fh:
            fh.write(b"x" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()
    except OSError as err:
        raise ValueError(
            f"out_dir {str(out_dir)!r} is not writable ({type(err).__name__}: {err}); "
            "choose another --out before training starts"
        ) from None


def _check_disk_space(out_dir: Path, model: nn.Module) -> None:
    """Fail before the first epoch if the checkpoints cannot fit on the disk.

    A checkpoint holds the weights and Adam's two moments (3 x the parameter bytes) plus
    small metadata; at worst ``last.pt``, ``best.pt`` and the temporary copy of an atomic
    write exist at once.
    """
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    need = 3 * (3 * param_bytes + (1 << 16))
    free = shutil.disk_usage(out_dir).free
    if free < need:
        raise ValueError(
            f"out_dir {str(out_dir)!r} has {free} bytes free, but training writes checkpoints "
            f"of about {need // 3} bytes (last.pt, best.pt and a temporary copy: {need} "
            "bytes); free some space or choose another --out before training starts"
        )


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

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"


def _make_scheduler(name: str, opt: torch.optim.Optimizer, epochs: int, patience: int):
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=0.5, patience=max(1, patience // 3)
        )
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    return None


def _check_positive(name: str, value: Any, kind: type = int, allow_zero: bool = False) -> None:
    ok = isinstance(value, kind) and not isinstance(value, bool) and (
        value >= 0 if allow_zero else value > 0
    )
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
            value
        ) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} "
                         f"{kind.__name__}, got {value!r}")


# ------------------------------------------------------------------------------------ fit
def fit(
    model_or_config: nn.Module | Mapping[str, Any],
    train: Any,
    val: Any = None,
    *,
    deterministic: bool = False,
    **kwargs: Any,
) -> FitResult:
    """Train an autoencoder on background jets; see :func:`_fit` for every keyword.

    ``deterministic=True`` runs the whole training inside :func:`lgae_hep.determinism.
    deterministic` (deterministic cuBLAS/cuDNN kernels, no TF32, an error for ops without a
    deterministic kernel): on a GPU, two runs with the same seed then give the same weights.
    On CPU training is reproducible with the same seed, machine and thread count anyway.
    """
    with determinism.deterministic(deterministic):
        return _fit(model_or_config, train, val, **kwargs)


def _fit(
    model_or_config: nn.Module | Mapping[str, Any],
    train: Any,
    val: Any = None,
    *,
    epochs: int = 50,
    batch_size: int = 256,
    lr: float = 1e-3,
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
) -> FitResult:
    """Train an autoencoder on background jets (module docstring describes the behaviour).

    Parameters
    ----------
    model_or_config : torch.nn.Module or dict
        A model (LGAE / GNNAE) or its config (``{"architecture": "lgae" | "gnnae", ...}``).
    train, val : JetTensors, (p4, mask[, scalars]) or awkward jets
        Training sample and optional validation sample (else ``val_fraction`` of ``train``).
    epochs : int
        Maximum number of epochs (in total, counting those done before a resume).
    batch_size : int
        Jets per optimisation step (per process under DDP).
    lr : float
        Initial Adam learning rate.
    patience : int
        Stop after this many epochs without a validation improvement > ``min_delta``.
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
        Seeds the model initialisation, the train/validation split and the per-epoch shuffle.
    val_fraction : float
        Fraction of ``train`` held out for validation when ``val`` is None (0 < f < 1).
    loss : {"chamfer", "mse"}
        Training loss (see the module docstring).
    scheduler : {"plateau", "cosine", "none"}
        Learning-rate schedule (plateau: halve after ``max(1, patience // 3)`` flat epochs).
    weight_decay, min_delta : float
        Adam weight decay; minimum validation improvement that resets the patience.
    max_nonfinite_retries : int
        Roll-backs (each halving the learning rate) allowed after non-finite losses.
    num_workers : int
        DataLoader workers (0: load in the main process; tensors are in memory anyway).
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
    t_start = time.perf_counter()
    opts = _Options(
        epochs=epochs, batch_size=batch_size, patience=patience,
        max_nonfinite_retries=max_nonfinite_retries, epoch_size=epoch_size,
        max_seconds=max_seconds, lr=lr, weight_decay=weight_decay, min_delta=min_delta,
        grad_clip=grad_clip, seed=seed, loss=loss, scheduler=scheduler, num_workers=num_workers,
        progress=progress, extra_info=dict(extra_info or {}),
    )
    if val is None and not (0.0 < float(val_fraction) < 1.0):
        raise ValueError(f"val_fraction must be in (0, 1) when no val sample is given, "
                         f"got {val_fraction!r}")
    rank, world, dev, dist_here = _dist_setup(device)
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    model = _model_for_fit(model_or_config, dtype)
    samples = _fit_samples(model, train, val, val_fraction, seed)
    if rank == 0:  # before anything is written
        _probe_out_dir(out_dir)
        _check_disk_space(out_dir, model)
    trainer = _Trainer(model, samples, opts, out_dir=out_dir, rank=rank, world=world, dev=dev,
                       emit=log or (lambda msg: logger.info(msg)))
    trainer.restore(resume)
    trainer.make_loaders()
    trainer.run(t_start)
    trainer.load_best()
    if dist_here:
        dist.destroy_process_group()
    return trainer.result(time.perf_counter() - t_start)


# --------------------------------------------------------------------------- fit: the steps
@dataclass(frozen=True)
class _Options:
    """The training settings of :func:`_fit`, validated on construction."""

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

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "max_nonfinite_retries"):
            _check_positive(name, getattr(self, name))
        if self.epoch_size is not None:
            _check_positive("epoch_size", self.epoch_size)
        if self.max_seconds is not None:
            _check_positive("max_seconds", self.max_seconds, float)
        _check_positive("lr", self.lr, float)
        _check_positive("weight_decay", self.weight_decay, float, allow_zero=True)
        _check_positive("min_delta", self.min_delta, float, allow_zero=True)
        if self.grad_clip is not None:
            _check_positive("grad_clip", self.grad_clip, float)
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
        if dtype is not None and _model_dtype(model) != parse_dtype(dtype):
            model = model.to(parse_dtype(dtype))
        return model
    if isinstance(model_or_config, Mapping):
        cfg = dict(model_or_config)
        if dtype is not None:
            cfg["dtype"] = str(parse_dtype(dtype)).replace("torch.", "")
        return build_model(cfg)
    raise ValueError(f"model_or_config must be a model or a config dict, "
                     f"got {type(model_or_config).__name__}")


@dataclass
class _Samples:
    """Training and validation tensors ``(p4, mask[, scalars])``, on the CPU."""

    train: tuple[torch.Tensor, ...]
    val: tuple[torch.Tensor, ...]


def _fit_samples(model: nn.Module, train: Any, val: Any, val_fraction: float,
                 seed: int) -> _Samples:
    """Prepare the samples for ``model``; a seeded split of ``train`` when ``val`` is None."""
    n_part = int(model.config.get("num_particles", DEFAULT_NUM_PARTICLES))
    mdtype = _model_dtype(model)
    p4, mask, scal = prepare_data(train, n_part, name="train", dtype=mdtype)
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
        if not bool(mask.any()):
            raise ValueError("train sample has no real particle after the validation split")
    else:
        vp4, vmask, vscal = prepare_data(val, n_part, name="val", dtype=mdtype)
    if (scal is None) != (vscal is None):
        raise ValueError("train and val samples must both have scalars or both have none")
    return _Samples(train=(p4, mask) + ((scal,) if scal is not None else ()),
                    val=(vp4, vmask) + ((vscal,) if vscal is not None else ()))


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
            history = [h for h in json.loads(hist_path.read_text())
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
        self.opt = torch.optim.Adam(self.model.parameters(), lr=float(opts.lr),
                                    weight_decay=float(opts.weight_decay))
        self.sched = _make_scheduler(opts.scheduler, self.opt, opts.epochs, opts.patience)
        self.progress = _Progress()
        self.resumed_from: int | None = None

    # ---- build / restore
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

    # ---- loaders
    def make_loaders(self) -> None:
        """Wrap the model for DDP (under torchrun) and build the validation loader."""
        if self.world > 1:
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.dev.index] if self.dev.type == "cuda" else None)
        self.dset = TensorDataset(*self.samples.train)
        vset = TensorDataset(*self.samples.val)
        vsampler = (DistributedSampler(vset, num_replicas=self.world, rank=self.rank,
                                       shuffle=False) if self.world > 1 else None)
        self.vloader = DataLoader(vset, batch_size=max(self.opts.batch_size, 256),
                                  sampler=vsampler, shuffle=False)

    def train_loader(self, epoch: int) -> DataLoader:
        """This epoch's loader: a seeded (``seed``, ``epoch``) subset and order of the jets."""
        opts, data = self.opts, self.dset
        if opts.epoch_size is not None and opts.epoch_size < len(data):
            g = torch.Generator().manual_seed(opts.seed * 7_919 + epoch)
            data = Subset(data, torch.randperm(len(data), generator=g)[:opts.epoch_size].tolist())
        if self.world > 1:
            sampler = DistributedSampler(data, num_replicas=self.world, rank=self.rank,
                                         shuffle=True, seed=opts.seed, drop_last=True)
            sampler.set_epoch(epoch)
        else:
            g = torch.Generator().manual_seed(opts.seed * 1_000_003 + epoch)
            sampler = RandomSampler(data, generator=g)
        return DataLoader(data, batch_size=opts.batch_size, sampler=sampler, drop_last=False,
                          num_workers=opts.num_workers)

    def _unpack(self, batch):
        b = [t.to(self.dev, non_blocking=True) for t in batch]
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
            vloss = math.nan if nonfinite else self.validate()
            if nonfinite or not math.isfinite(vloss):
                self.roll_back(good, p.epoch, "training" if nonfinite else "validation")
                continue
            self.end_epoch(p.epoch, tot, cnt, vloss, time.perf_counter() - t0)
            p.epoch += 1
            if p.stopped_early:
                self.emit(f"early stopping: no improvement for {opts.patience} epochs "
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

        Stops at the first batch whose loss or gradient norm is non-finite on any process,
        before the optimiser step.
        """
        opts, world = self.opts, self.world
        model, opt = self.model, self.opt
        tot, cnt, nonfinite = 0.0, 0, False
        loader = self.train_loader(epoch)
        bar = tqdm(total=len(loader.sampler) if world == 1 else len(loader) * opts.batch_size,
                   desc=f"epoch {epoch + 1}/{opts.epochs}", unit="jet",
                   disable=not (opts.progress and self.is_main), leave=False, file=sys.stderr)
        for batch in loader:
            pb, mb, sb = self._unpack(batch)
            opt.zero_grad(set_to_none=True)
            per = _per_jet_loss(model, _forward(self.train_model, pb, mb, sb), pb, mb, opts.loss)
            lval = per.mean()
            lval.backward()
            gnorm = (nn.utils.clip_grad_norm_(model.parameters(), opts.grad_clip)
                     if opts.grad_clip is not None else torch.zeros(()))
            bad = 0.0 if (torch.isfinite(lval) and torch.isfinite(gnorm)) else 1.0
            if _all_reduce_sum([bad], world, self.dev)[0] > 0:
                nonfinite = True
                break
            opt.step()
            self.progress.step += 1
            tot += float(lval.detach()) * len(per)
            cnt += len(per)
            dt = time.perf_counter() - t0
            bar.update(len(per))
            bar.set_postfix(loss=f"{tot / cnt:.4g}", jets_s=f"{cnt * world / max(dt, 1e-9):.0f}")
        bar.close()
        return tot, cnt, nonfinite

    @torch.no_grad()
    def validate(self) -> float:
        """Mean per-jet validation loss (over all processes)."""
        model = self.model
        model.eval()
        tot, cnt = 0.0, 0.0
        for batch in self.vloader:
            pb, mb, sb = self._unpack(batch)
            per = _per_jet_loss(model, _forward(model, pb, mb, sb), pb, mb, self.opts.loss)
            tot += float(per.double().sum())
            cnt += len(per)
        tot, cnt = _all_reduce_sum([tot, cnt], self.world, self.dev)
        model.train()
        return tot / max(cnt, 1.0)

    def _snapshot(self) -> dict[str, Any]:
        """The last good state (start of the epoch), for :meth:`roll_back`."""
        return {"model": copy.deepcopy(self.model.state_dict()),
                "opt": copy.deepcopy(self.opt.state_dict()),
                "sched": copy.deepcopy(self.sched.state_dict()) if self.sched is not None
                else None}

    def roll_back(self, good: dict[str, Any], epoch: int, which: str) -> None:
        """After a non-finite loss: restore ``good``, halve the learning rate, warn (the epoch
        is then retried); ``FloatingPointError`` after ``max_nonfinite_retries`` roll-backs."""
        p, limit = self.progress, self.opts.max_nonfinite_retries
        p.retries += 1
        self.model.load_state_dict(good["model"])
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

    def end_epoch(self, epoch: int, tot: float, cnt: int, vloss: float, seconds: float) -> None:
        """Bookkeeping after a good epoch: early-stopping counters, scheduler step, history,
        checkpoints (``best.pt`` on an improvement, ``last.pt``), metrics files, log line."""
        p, opts = self.progress, self.opts
        tloss_sum, tcnt = _all_reduce_sum([tot, float(cnt)], self.world, self.dev)
        tloss = tloss_sum / max(tcnt, 1.0)
        lr_now = self.opt.param_groups[0]["lr"]
        improved = vloss < p.best_val - opts.min_delta
        if improved:
            p.best_val, p.best_epoch, p.bad_epochs = vloss, epoch, 0
        else:
            p.bad_epochs += 1
        if self.sched is not None:
            if opts.scheduler == "plateau":
                self.sched.step(vloss)
            else:
                self.sched.step()
        p.history.append({
            "epoch": epoch, "train_loss": tloss, "val_loss": vloss, "lr": lr_now,
            "best_val_loss": p.best_val, "jets_per_s": tcnt / max(seconds, 1e-9),
            "seconds": seconds, "step": p.step, "improved": bool(improved),
        })
        p.stopped_early = p.bad_epochs >= opts.patience
        finished = p.stopped_early or epoch + 1 >= opts.epochs
        if self.is_main:
            if improved:
                save_checkpoint(self.best_path, self.model,
                                extra=p.extra(epoch, False, opts, self.world), rng_state=False)
            save_checkpoint(self.last_path, self.model, optimizer=self.opt,
                            scheduler=self.sched, extra=p.extra(epoch, finished, opts, self.world))
            write_metrics(self.out_dir, p.history)
        self.emit(f"epoch {epoch + 1}/{opts.epochs}: train {tloss:.5g}  val {vloss:.5g}  "
                  f"lr {lr_now:.3g}  {tcnt / max(seconds, 1e-9):.0f} jets/s  {seconds:.1f} s"
                  + ("  *" if improved else ""))

    def _time_spent(self, t_start: float) -> bool:
        """``max_seconds`` is spent (on any process)."""
        budget = self.opts.max_seconds
        if budget is None:
            return False
        over = time.perf_counter() - t_start > budget
        return _all_reduce_sum([float(over)], self.world, self.dev)[0] > 0

    # ---- the end
    def load_best(self) -> None:
        """Put the best weights (``best.pt``) into the model."""
        if self.best_path.exists():
            load_state_dict_checked(self.model, load_checkpoint(self.best_path)["state_dict"],
                                    str(self.best_path))

    def result(self, seconds: float) -> FitResult:
        p = self.progress
        self.model.eval()
        return FitResult(
            model=self.model, best_epoch=p.best_epoch, best_val_loss=p.best_val,
            epochs_run=len(p.history), history=p.history, out_dir=self.out_dir,
            stopped_early=p.stopped_early, seconds=seconds,
            resumed_from_epoch=self.resumed_from, config=self.config,
        )
