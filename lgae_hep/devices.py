"""Is a torch device usable here? Checked before any work, with one message that names the
device and the fix (``device="cuda"`` on a machine without CUDA would otherwise fail deep in
torch with ``AssertionError: Torch not compiled with CUDA enabled``).

>>> check_device("cpu")
>>> check_device("banana")
Traceback (most recent call last):
...
ValueError: device 'banana' is not a torch device; use cpu, cuda, cuda:N or mps
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_device"]


def check_device(device: Any, what: str = "device") -> None:
    """Raise ``ValueError`` unless ``device`` (``None``, a string or a ``torch.device``) is
    one this torch build and machine can run on; ``what`` names it in the message (e.g.
    ``"--device"``). ``None`` and ``"auto"`` always pass."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return
    import torch  # lazy: importing lgae_hep.devices costs nothing

    try:
        dev = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{what} {device!r} is not a torch device; use cpu, cuda, cuda:N or "
                         "mps") from None
    name = str(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{what} {name!r}: this torch build or machine has no CUDA GPU; "
                             "use cpu (or install a CUDA build of torch on a GPU machine)")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"{what} {name!r}: only {n} GPU(s) here; use cuda:0 to "
                             f"cuda:{n - 1}")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"{what} {name!r}: MPS is not available here; use cpu")
    elif dev.type != "cpu":
        raise ValueError(f"{what} {name!r}: lgae-hep runs on cpu, cuda or mps")
