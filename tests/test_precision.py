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


def _flat_latent(z) -> np.ndarray:
    """(n_jets, k) float64: every latent component of encode()'s records."""
    import awkward as ak

    cols = [np.asarray(ak.to_numpy(z[f]), dtype=np.float64).reshape(len(z), -1)
            for f in ("scalars_re", "scalars_im", "vectors_re", "vectors_im")]
    return np.concatenate(cols, axis=1)


def test_float32_outputs_are_within_the_claimed_bounds_of_float64(make_jets):
    """The same bundled weights evaluated in float32 and in float64 on 64 jet-like clouds:
    the float32 scores and latents are within the bounds this module claims for one
    evaluation against the exact value (float64 stands in for it; its own error, the same
    bound with float64's u, is added), and the bounds are not vacuous: the worst jet uses
    at least 1e-4 of its bound (measured amplifications are a few hundred to a few
    thousand u against the claimed 2**11 and 2**14, docs/RELIABILITY.md)."""
    import warnings

    import lgae_hep
    from lgae_hep.data import from_tensors

    p4, mask = make_jets(64, 30, seed=5)
    jets = from_tensors(p4.numpy(), mask.numpy())
    m32 = lgae_hep.load_model("lgae-mix", dtype="float32")
    m64 = lgae_hep.load_model("lgae-mix", dtype="float64")
    f32, f64 = "float32", "float64"
    used = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # toy jets outside the card's training domain
        for metric in ("chamfer", "chamfer-dr"):
            s32, s64 = (np.asarray(lgae_hep.score(jets, m, metric=metric, progress=False),
                                   dtype=np.float64) for m in (m32, m64))
            assert np.isfinite(s64).all() and (s64 > 0).all()
            bound = ((precision.score_rtol(f32) + precision.score_rtol(f64)) * np.abs(s64)
                     + precision.score_atol(f32, metric) + precision.score_atol(f64, metric))
            dev = np.abs(s32 - s64)
            assert (dev <= bound).all(), (metric, np.max(dev / bound))
            used[metric] = float(np.max(dev / bound))
        z32, z64 = (_flat_latent(lgae_hep.encode(jets, m, progress=False)) for m in (m32, m64))
    scale = np.abs(z64).max(axis=1, keepdims=True)  # the jet's largest latent component
    bound = (precision.latent_rtol(f32) + precision.latent_rtol(f64)) * scale
    dev = np.abs(z32 - z64)
    assert (dev <= bound).all(), np.max(dev / bound)
    used["latent"] = float(np.max(dev / bound))
    # the two evaluations really ran in two precisions (else the comparison proves nothing),
    # and each bound is within 1e4 of what the worst jet needs
    assert all(1e-4 <= v <= 1.0 for v in used.values()), used


def test_bad_arguments():
    with pytest.raises(ValueError, match="float32 or float64"):
        precision.unit_roundoff(torch.float16)
    with pytest.raises(ValueError, match="chamfer"):
        precision.score_atol("float32", "emd")
