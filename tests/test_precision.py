"""lgae_hep.precision: the numbers behind every cross-path tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lgae_hep import precision


@pytest.mark.parametrize("dtype, np_dtype", [(torch.float32, np.float32), (np.float32, np.float32),
                                             (np.dtype("float32"), np.float32),
                                             ("float32", np.float32), (torch.float64, np.float64),
                                             (np.float64, np.float64), ("float64", np.float64)])
def test_unit_roundoff_is_half_the_gap_above_one(dtype, np_dtype):
    # the machine's own epsilon (gap between 1 and the next number), not a copied table
    assert precision.unit_roundoff(dtype) == float(np.spacing(np_dtype(1))) / 2


def test_bounds_follow_from_the_amplifications():
    for d in ("float32", "float64"):
        u = precision.unit_roundoff(d)
        assert precision.score_rtol(d) == precision.SCORE_AMPLIFICATION * u
        assert precision.path_rtol(d) == 2 * precision.score_rtol(d)
        assert precision.score_atol(d) == 2 * precision.OUTPUT_AMPLIFICATION * u
        assert precision.path_atol(d) == 2 * precision.score_atol(d)
        assert precision.score_atol(d, "chamfer") == 0.0
    assert precision.path_rtol("float32") == pytest.approx(1.95e-3, rel=1e-2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="float32 or float64"):
        precision.unit_roundoff(torch.float16)
    with pytest.raises(ValueError, match="chamfer"):
        precision.score_atol("float32", "emd")
