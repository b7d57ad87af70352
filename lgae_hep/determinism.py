"""Ask torch for deterministic kernels (GPU training and scoring), set in code.

On CPU, lgae-hep's results are already bitwise reproducible for a fixed machine, thread count
and batch size (``docs/RELIABILITY.md`` section 5). On a GPU they are not by default: cuBLAS and
cuDNN pick algorithms by shape and may reduce in a nondeterministic order, TF32 tensor cores
round matmul inputs to 10 mantissa bits, and atomics-based kernels (``index_add_``,
``scatter_add_``) accumulate in a varying order. :func:`deterministic` switches all of that off
for the duration of a ``with`` block; :func:`lgae_hep.train.fit` uses it with
``deterministic=True`` (``lgae-hep train --deterministic``).

``CUBLAS_WORKSPACE_CONFIG`` must be set before the process's first cuBLAS call; it is set
here if unset, so enter the block before any CUDA work (or export it in the shell).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["deterministic"]


@contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """Deterministic torch kernels inside the block; the previous settings are restored after.

    Parameters
    ----------
    enabled : bool
        ``False`` makes the block a no-op (convenient for an option that is off by default).

    Inside, an operation without a deterministic implementation raises ``RuntimeError``
    (torch's own message names it) instead of running nondeterministically.
    """
    if not enabled:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
         torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) = saved[2:]
