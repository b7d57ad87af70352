"""LGAE with ``output="lightlike"`` (issue 22.1): decoded particles on the light cone of the
time reference by construction, covariance kept, bad configurations refused.

Random weights throughout (statements about the function, never about a trained network),
float64.

Bounds. :func:`light_cone_projection` forms two Minkowski products with the unit time vector
``t`` (``v . t`` and ``s^2``, 4 terms each) and one square root; each is within ``4 u`` of its
exact value relative to the products of the entries' sizes. In the lab (``t = (1, 0, 0, 0)``)
``s = (0, v_x, v_y, v_z)`` exactly and ``E = |p|`` up to the rounding of one 3-term sum of
squares and a square root: ``|E - |p|| <= 4 u |p|``, and ``p^2 = E^2 - |p|^2`` cancels to
within ``2 * 4 u E^2``. After a Lorentz transformation with factor ``gamma`` every entry grows by
up to ``gamma`` and each Minkowski product's rounding by ``gamma^2`` (two 4-vector factors), on
top of the network's own ``path_rtol * gamma^2`` (tests/models/test_references.py): the
projected outputs of the transformed call differ from the transformed outputs by at most
``path_rtol * gamma^4`` relative to the largest entry (the joint covariance of such a model is
tested with the other reference models, tests/models/test_references.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lgae_hep.models import LGAE
from lgae_hep.models.lgae import light_cone_projection

from lgae_hep.checkpoint import model_from_checkpoint
from lgae_hep.precision import path_rtol, unit_roundoff

SMALL = dict(num_particles=8, encoder_channels=(2, 3), decoder_channels=(3, 2))
U64 = torch.float64
RTOL = path_rtol(U64)
U = unit_roundoff(U64)
METRIC = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=U64)


def _model(references=("time",), aggregation="mix", seed=0, output="lightlike",
           **kw) -> LGAE:
    torch.manual_seed(seed)
    return LGAE(aggregation=aggregation, references=list(references), output=output,
                dtype="float64", **{**SMALL, **kw}).eval()


def _msq(p: torch.Tensor) -> torch.Tensor:
    return (p * p * METRIC).sum(-1)


def _rel_dev(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def test_projection_in_the_lab_keeps_the_momentum_and_sets_e_to_its_norm():
    rng = np.random.default_rng(0)
    v = torch.as_tensor(rng.normal(size=(5, 7, 4)) * 30.0)
    v[0, 0] = torch.tensor([-80.0, 1.0, 2.0, -3.0])  # E < 0 and spacelike on input
    t = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=U64).expand(5, 4)
    p = light_cone_projection(v, t)
    torch.testing.assert_close(p[..., 1:], v[..., 1:], rtol=0, atol=0)  # momentum exactly
    norm = torch.linalg.vector_norm(v[..., 1:], dim=-1)
    assert float(((p[..., 0] - norm).abs() / norm).max()) <= 4 * U
    assert bool((p[..., 0] >= 0).all())
    assert float((_msq(p).abs() / p[..., 0] ** 2).max()) <= 8 * U


def test_projection_commutes_with_lorentz_transformations(random_lorentz):
    """Bound: ``32 u gamma^4`` relative to the largest entry. The two paths round, each at most
    once per operation: the transformed inputs ``v L^T`` and ``t L^T`` and the transformed
    output of the other path (4-term sums: 4 u each, 12 u), the normalisation of ``t``, ``v .
    t_hat`` and ``s^2`` (4-term Minkowski sums: 4 u each, 12 u), ``s = v - a t_hat``, the
    square root and the final sum (about 4 u): 28 u, rounded up to 32 u. Each Minkowski sum
    over entries of size ``gamma`` cancels to a result of size 1, which multiplies its error by
    ``gamma^2``, and the products with ``t_hat`` (entries up to ``gamma``) carry it on:
    ``gamma^4`` covers both."""
    rng = np.random.default_rng(1)
    v = torch.as_tensor(rng.normal(size=(4, 6, 4)))
    t = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=U64).expand(4, 4)
    for max_rap in (0.5, 2.0):
        lam = torch.as_tensor(random_lorentz(rng, max_rap))
        got = light_cone_projection(v @ lam.T, t @ lam.T)
        want = light_cone_projection(v, t) @ lam.T
        gamma = float(lam[0, 0])
        assert _rel_dev(got, want) <= 32 * U * gamma ** 4
        # on the light cone of the transformed time direction, future-pointing
        assert float((_msq(got).abs() / (got[..., 0] ** 2)).max()) <= 32 * U * gamma ** 4
        assert bool(((got * (t @ lam.T)[:, None, :] * METRIC).sum(-1) >= 0).all())


def test_projection_has_finite_gradients_at_zero_momentum():
    v = torch.zeros(1, 2, 4, dtype=U64, requires_grad=True)
    t = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=U64)
    light_cone_projection(v, t).sum().backward()
    assert bool(torch.isfinite(v.grad).all())


@pytest.mark.parametrize("references,output", [(["time"], "lightlike"),
                                                (["time", "beam"], "lightlike"),
                                                (["time"], "massive")])
def test_decoded_particles_and_jets_are_physical(references, output, make_jets):
    model = _model(references, seed=len(references), output=output)
    p4, mask = make_jets(6, 8, seed=3)
    with torch.no_grad():
        res = model(p4, mask)
    out = res.p4 * res.mask[..., None]  # the emitted particles (the others are zeroed)
    e = out[res.mask][:, 0]
    assert bool((e > 0).all())
    if output == "lightlike":
        assert float((_msq(out[res.mask]).abs() / e ** 2).max()) <= 8 * U
    else:  # p^2 = m^2 >= 0 (up to the same rounding), and the masses are not all zero
        assert float((-_msq(out[res.mask]) / e ** 2).max()) <= 8 * U
        assert float(_msq(out[res.mask]).max()) > 0
    jet = out.sum(1)  # sums of future light-like vectors: timelike or light-like
    assert bool((_msq(jet) >= -8 * U * jet[:, 0] ** 2).all())


@pytest.mark.parametrize("output", ["lightlike", "massive"])
def test_rotations_keep_the_output_covariant(output, make_jets):
    from lgae_hep.lorentz import lorentz_matrix

    model = _model(["time"], seed=4, output=output)
    p4, mask = make_jets(4, 8, seed=2)
    rot = torch.as_tensor(lorentz_matrix(angle=np.array([0.7, -1.9, 0.4])))
    with torch.no_grad():
        out = model(p4, mask).p4
        out_r = model(p4 @ rot.T, mask).p4  # lab references: rotations keep them
    assert _rel_dev(out_r, out @ rot.T) <= RTOL


def test_bad_output_configurations_are_refused():
    with pytest.raises(ValueError, match="needs references"):
        LGAE(output="lightlike", **SMALL)
    with pytest.raises(ValueError, match="needs references"):
        LGAE(output="lightlike", references=["beam"], **SMALL)
    with pytest.raises(ValueError, match="needs references"):
        LGAE(output="massive", **SMALL)
    with pytest.raises(ValueError, match="output must be one of"):
        LGAE(output="spacelike", references=["time"], **SMALL)


def test_config_records_the_output_only_when_used(tmp_path):
    assert "output" not in LGAE(**SMALL).config
    assert "output" not in LGAE(references=["time"], **SMALL).config
    model = _model()
    assert model.config["output"] == "lightlike"
    rebuilt = LGAE.from_config(model.config)
    assert rebuilt.output == "lightlike"
    path = tmp_path / "m.pt"
    torch.save({"config": model.config, "state_dict": model.state_dict()}, path)
    loaded = model_from_checkpoint(torch.load(path, weights_only=False))
    assert loaded.output == "lightlike"
