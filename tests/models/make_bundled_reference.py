"""Record the bundled models' outputs on seeded jets with the code of a given checkout.

Run from a checkout of the pre-speed-up code (commit 3a1d35c) to regenerate
``data/bundled_reference.npz``::

    git worktree add /tmp/lgae_old 3a1d35c
    LGAE_ROOT=/tmp/lgae_old python tests/models/make_bundled_reference.py

``LGAE_ROOT`` points the ``lgae_hep`` (and ``lgae_hep.models``) imports at that checkout, whatever
is installed.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "data" / "bundled_reference.npz"
CASES = [("lgae-mix", "float32"), ("lgae-mix", "float64"), ("lgae-minmax", "float64")]


def jets(seed: int = 0, b: int = 12, n: int = 30):
    """Jet-like clouds in GeV (pT ~ 1 TeV jets), random multiplicities incl. 1 and 30."""
    import numpy as np

    rng = np.random.default_rng(seed)
    counts = rng.integers(2, n + 1, size=b)
    counts[0], counts[1] = n, 1
    pt = rng.exponential(1.0, size=(b, n)) * (1000.0 / counts[:, None])
    eta = rng.normal(size=(b, n)) * 0.15 + rng.uniform(-2, 2, size=(b, 1))
    phi = rng.normal(size=(b, n)) * 0.15
    mass = rng.uniform(0, 0.5, size=(b, n))
    pz = pt * np.sinh(eta)
    e = np.sqrt(pt**2 + pz**2 + mass**2)
    p4 = np.stack([e, pt * np.cos(phi), pt * np.sin(phi), pz], -1)
    mask = np.arange(n)[None, :] < counts[:, None]
    return p4 * mask[..., None], mask


def _use_checkout(root: str) -> None:
    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            for pkg, sub in (("lgae_hep.models", "models"), ("lgae_hep.processors", "processors")):
                if name == pkg:
                    return importlib.util.spec_from_file_location(
                        name, os.path.join(root, sub, "__init__.py"),
                        submodule_search_locations=[os.path.join(root, sub)])
            return None

    sys.meta_path.insert(0, _Finder())
    sys.path.insert(0, root)


def outputs(name: str, dtype: str) -> dict:
    import numpy as np
    import torch

    import lgae_hep

    model = lgae_hep.load_model(name, dtype=dtype)
    p4, mask = jets()
    with torch.no_grad():
        out = model(torch.as_tensor(p4), torch.as_tensor(mask))
    res = {"p4": out.p4.double().numpy(), "mask": out.mask.numpy()}
    for r, z in out.latent.items():
        res[f"latent_{r[0]}_{r[1]}"] = z.cdouble().numpy()
    return {k: np.asarray(v) for k, v in res.items()}


def main() -> None:
    import numpy as np

    root = os.environ.get("LGAE_ROOT")
    if root:
        _use_checkout(root)
    import lgae_hep

    arrays = {}
    for name, dtype in CASES:
        for k, v in outputs(name, dtype).items():
            arrays[f"{name}/{dtype}/{k}"] = v
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} with {lgae_hep.__file__}")


if __name__ == "__main__":
    main()
