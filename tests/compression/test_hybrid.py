"""Issue 22.3: the hybrid codec's residual stream (lgae_hep.compression.hybrid).

Residuals round-trip to half a quantisation step (plus float64 rounding of ``pred + q delta``:
``|x| u64`` per coordinate), the canonical order is the decoder's (the permutation is the
Hungarian matching, reproduced from the stored data), and residuals that do not belong to
their latents are an error.
"""

from __future__ import annotations

import numpy as np
import pytest

from lgae_hep.compression.hybrid import (
    check_tags,
    decode_residuals,
    encode_residuals,
    latent_tags,
    log_pt_eta_phi,
    match_to_nodes,
)

U64 = np.finfo(np.float64).eps / 2


def _jets(seed: int, b: int = 50, n: int = 10):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, n + 1, b)
    mask = np.arange(n)[None] < counts[:, None]
    orig = np.stack([rng.normal(3, 1, (b, n)), rng.normal(0, 0.3, (b, n)),
                     rng.uniform(-np.pi, np.pi, (b, n))], -1)
    # a prediction: the originals shuffled per jet and smeared (the decoder's node order)
    pred = orig.copy()
    for i in range(b):
        k = int(counts[i])
        pred[i, :k] = orig[i, rng.permutation(k)] + rng.normal(0, 0.02, (k, 3))
    pred[..., 2] = (pred[..., 2] + np.pi) % (2 * np.pi) - np.pi
    return orig, pred, mask


@pytest.mark.parametrize("delta", [2.0 ** -3, 2.0 ** -8, (2.0 ** -6, 2.0 ** -9, 2.0 ** -9)])
def test_residuals_round_trip_to_half_a_step(delta):
    orig, pred, mask = _jets(0)
    q, perm = encode_residuals(orig, pred, mask, delta)
    assert q.dtype == np.int32 and not q[~mask].any()
    rec = decode_residuals(pred, q, mask, delta)
    ordered = np.take_along_axis(orig, np.maximum(perm, 0)[..., None], axis=1)
    step = np.broadcast_to(np.asarray(delta, float), (3,))
    d = rec - ordered
    d[..., 2] = (d[..., 2] + np.pi) % (2 * np.pi) - np.pi
    tol = step / 2 + 8 * U64 * (np.abs(ordered) + np.abs(pred) + np.pi)
    assert np.all(np.abs(d)[mask] <= tol[mask])
    assert np.isnan(rec[~mask]).all()
    # every original used exactly once per jet
    for i in range(len(mask)):
        k = int(mask[i].sum())
        assert sorted(perm[i, :k].tolist()) == list(range(k)) and (perm[i, k:] == -1).all()


def test_matching_recovers_the_shuffle_and_wraps_phi():
    orig, pred, mask = _jets(1)
    perm = match_to_nodes(orig, pred, mask)
    ordered = np.take_along_axis(orig, np.maximum(perm, 0)[..., None], axis=1)
    d = np.abs(ordered - pred)[..., 1:]
    d[..., 1] = np.minimum(d[..., 1], 2 * np.pi - d[..., 1])
    assert np.all(d[mask] < 0.2)  # smearing 0.02: the matched particle is the shuffled one
    # phi across the +-pi seam is close, not 2 pi apart
    o = np.array([[[0.0, 0.0, np.pi - 0.01], [0.0, 1.0, 0.0]]])
    p = np.array([[[0.0, 1.0, 0.0], [0.0, 0.0, -np.pi + 0.01]]])
    assert match_to_nodes(o, p, np.ones((1, 2), bool)).tolist() == [[1, 0]]


def test_log_pt_eta_phi_of_any_decoder_output():
    p4 = np.array([[10.0, 3.0, 4.0, 0.0], [-2.0, 0.0, 0.0, 1.0]])  # E < 0, pt = 0 too
    x = log_pt_eta_phi(p4)
    assert np.isfinite(x).all()
    np.testing.assert_allclose(x[0], [np.log(5.0), 0.0, np.arctan2(4.0, 3.0)])


def test_residuals_that_do_not_match_their_latents_are_an_error():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(20, 18)).astype(np.float32)
    n = rng.integers(1, 30, 20)
    tags = latent_tags(z)
    check_tags(z, tags, n, n)  # consistent: silent
    with pytest.raises(ValueError, match="not made against their latent"):
        check_tags(z, np.roll(tags, 1), n, n)  # residual records shifted by one jet
    with pytest.raises(ValueError, match="not made against their latent"):
        check_tags(z.astype(np.float16).view(np.uint16), tags, n, n)  # another precision
    z2 = z.copy()
    z2[3, 5] = np.nextafter(z2[3, 5], np.float32(np.inf))  # one latent bit
    with pytest.raises(ValueError, match="1 jet\\(s\\) \\(first: jet 3\\)"):
        check_tags(z2, tags, n, n)
    with pytest.raises(ValueError, match="not made against their latent"):
        check_tags(z, tags, n, n + (np.arange(20) == 7))  # other particle counts
    with pytest.raises(ValueError, match="19 residual records for 20 latents"):
        check_tags(z, tags[:19], n, n[:19])
