"""The bundled models give today what the code before the speed-up (commit 3a1d35c) gave.

``data/bundled_reference.npz`` holds the outputs (reconstructed 4-momenta, latent) of the
bundled ``lgae-mix`` and ``lgae-minmax`` on seeded jets, computed with that code
(``tests/models/make_bundled_reference.py``).

Bound: the two codes are two implementations of one network (another order of the sums, other
kernels), each within ``OUTPUT_AMPLIFICATION u`` of the exact output relative to the largest
entry (``lgae_hep/precision.py``: L ~ 10 stages of <= 120-term sums, L n = 1200 rounded up to
2**11), so they differ by at most twice that: ``2 * 2**11 u`` = 2.4e-4 in float32, 4.5e-13 in
float64. ``lgae-minmax`` is compared in float64 (its card's inference dtype): in float32 its
min/max selection flips on near-ties (``lgae_hep/precision.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import lgae_hep
from lgae_hep.precision import OUTPUT_AMPLIFICATION, unit_roundoff

from .make_bundled_reference import CASES, jets

DATA = Path(__file__).resolve().parent / "data" / "bundled_reference.npz"
#: the model files the reference was recorded with, where the bundled one has since been
#: re-trained (issue 21 re-bundled ``lgae-mix``): the file of commit 3a1d35c, kept here so
#: that this stays a check that an old model file gives the same outputs with today's code
RECORDED_FILES = {"lgae-mix": DATA.parent / "lgae-mix-3a1d35c.pt"}


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize(("name", "dtype"), CASES)
def test_bundled_outputs_match_pre_speedup_code(name, dtype):
    with np.load(DATA) as z:
        ref = {k.split("/", 2)[2]: z[k] for k in z.files if k.startswith(f"{name}/{dtype}/")}
    model = lgae_hep.load_model(RECORDED_FILES.get(name, name), dtype=dtype)
    p4, mask = jets()
    with torch.no_grad():
        out = model(torch.as_tensor(p4), torch.as_tensor(mask))
    tol = 2 * OUTPUT_AMPLIFICATION * unit_roundoff(dtype)
    np.testing.assert_array_equal(out.mask.numpy(), ref["mask"])
    assert _rel(out.p4.double().numpy(), ref["p4"]) <= tol
    for r, zl in out.latent.items():
        assert _rel(zl.cdouble().numpy(), ref[f"latent_{r[0]}_{r[1]}"]) <= tol, r
