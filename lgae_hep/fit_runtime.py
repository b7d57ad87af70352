"""The environment of a training run: distributed setup, the output folder and its disk space,
the learning-rate schedule and argument checks (the steps of :func:`lgae_hep.train.fit` use
these)."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["all_reduce_sum", "check_disk_space", "check_positive", "dist_setup",
           "make_scheduler", "probe_out_dir"]


def dist_setup(device: str | torch.device) -> tuple[int, int, torch.device, bool]:
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


def all_reduce_sum(values: list[float], world: int, device: torch.device) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def probe_out_dir(out_dir: Path) -> None:
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


def check_disk_space(out_dir: Path, model: nn.Module) -> None:
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


def make_scheduler(name: str, opt: torch.optim.Optimizer, epochs: int, patience: int):
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=0.5, patience=max(1, patience // 3)
        )
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    return None


def check_positive(name: str, value: Any, kind: type = int, allow_zero: bool = False) -> None:
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


