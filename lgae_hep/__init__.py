"""lgae-hep: the Lorentz Group Equivariant Autoencoder (LGAE) in the HEP analysis stack.

The public API is re-exported here lazily, so that ``import lgae_hep`` stays cheap (no torch,
no coffea) until a function that needs them is called::

    import lgae_hep
    jets = lgae_hep.read_nanoaod("events.root", jets="FatJet")
    scores = lgae_hep.score(jets)          # anomaly score per jet, same [event][jet] structure
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "read_nanoaod": "lgae_hep.data",
    "read_jetnet": "lgae_hep.data",
    "to_tensors": "lgae_hep.data",
    "from_tensors": "lgae_hep.data",
    "load_model": "lgae_hep.zoo",
    "score": "lgae_hep.api",
    "encode": "lgae_hep.api",
    "reconstruct": "lgae_hep.api",
    "compress": "lgae_hep.compression",
    "decompress": "lgae_hep.compression",
    "recommended_metric": "lgae_hep.zoo",
    "lorentz": "lgae_hep.lorentz",
    "observables": "lgae_hep.observables",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if module.__name__.endswith(name) else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lgae_hep' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
