"""LGAE with reference vectors ("spurions", issue 21.1): covariance, the subgroup they keep,
the engine's frames, permutations and padding, bad input, old files.

Random weights throughout (these are statements about the function, never about a trained
network), float64 unless said otherwise.

Bounds. A float64 evaluation of the network is within the project's budget
``SCORE_AMPLIFICATION u`` of the exact function, two evaluations within ``path_rtol``
(lgae_hep/precision.py). When particles *and* references are transformed by ``L`` with Lorentz
factor ``gamma``, every Cartesian entry grows by up to ``gamma`` while the invariants the
network forms (Minkowski products ``p_ij^2``, ``p_i . r_a``, CG couplings) do not: each
product's rounding is amplified by ``gamma^2`` per pair of 4-vector factors, i.e.
``gamma^(2 (maxdim - 1))`` up to irreps (maxdim - 1, maxdim - 1): the same derivation and bound
as tests/models/test_lgae.py's ``_equivariance_bound`` (a reference vector is one more 4-vector
factor, of norm 1 instead of the particles' ~1 in network units). Rotations have gamma = 1;
a boost along z by rapidity y has entries up to ``e^|y|``, so a Minkowski norm of latent
vectors is conditioned by ``e^(2|y|)`` (tests/api/test_api.py).
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch
import vector
from lgae_hep.models import LGAE

import lgae_hep
from lgae_hep.checkpoint import model_from_checkpoint
from lgae_hep.lorentz import irrep_to_fourvec, lorentz_matrix
from lgae_hep.losses import chamfer
from lgae_hep.precision import path_atol, path_rtol
from lgae_hep.scoring.frames import apply_boosts, rest_frame_boosts
from lgae_hep.zoo import bundled_models, load_model

vector.register_awkward()

SMALL = dict(num_particles=8, encoder_channels=(2, 3), decoder_channels=(3, 2))
U64 = torch.float64
RTOL = path_rtol(U64)
REFS = (["time"], ["beam"], ["time", "beam"])


def _model(references, aggregation="mean", seed=0, **kw) -> LGAE:
    torch.manual_seed(seed)
    return LGAE(aggregation=aggregation, references=references, dtype="float64",
                **{**SMALL, **kw}).eval()


def _rel_dev(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _bound(lam: torch.Tensor, maxdim: int = 2) -> float:
    return RTOL * float(lam[0, 0]) ** (2 * (maxdim - 1))  # module docstring


def _jets(counts, seed=1) -> tuple[ak.Array, torch.Tensor, torch.Tensor]:
    """Jets around random axes (pt/eta/phi/m), as an awkward array and as padded (B, 8, 4)
    tensors in (E, px, py, pz), particles in pT order (the engine's order)."""
    rng = np.random.default_rng(seed)
    counts = np.asarray(counts)
    tot = int(counts.sum())
    pt = np.concatenate([np.sort(rng.exponential(40.0, c) + 1.0)[::-1] for c in counts])
    eta = np.repeat(rng.uniform(-1.5, 1.5, len(counts)), counts) + rng.normal(0, 0.2, tot)
    phi = np.repeat(rng.uniform(-3, 3, len(counts)), counts) + rng.normal(0, 0.2, tot)
    flat = vector.array({"pt": pt, "eta": eta, "phi": phi, "mass": np.full(tot, 0.14)})
    p = np.stack([flat.E, flat.px, flat.py, flat.pz], 1)
    return _from_cartesian(p, counts)


def _from_cartesian(p: np.ndarray, counts) -> tuple[ak.Array, torch.Tensor, torch.Tensor]:
    counts = np.asarray(counts)
    jets = ak.unflatten(ak.zip({"E": p[:, 0], "px": p[:, 1], "py": p[:, 2], "pz": p[:, 3]},
                               with_name="Momentum4D"), counts)
    mask = torch.arange(8)[None, :] < torch.as_tensor(counts)[:, None]
    p4 = torch.zeros(len(counts), 8, 4, dtype=U64)
    p4[mask] = torch.as_tensor(p, dtype=U64)
    return jets, p4, mask


def _transform_jets(jets: ak.Array, lam: np.ndarray):
    p = np.stack([ak.to_numpy(ak.flatten(getattr(jets, c))) for c in ("E", "px", "py", "pz")],
                 1)
    return _from_cartesian(p @ lam.T, ak.to_numpy(ak.num(jets)))


def _score(jets, model, metric) -> np.ndarray:
    return ak.to_numpy(lgae_hep.score(jets, model, metric=metric, progress=False))


def _invariants(jets, model) -> np.ndarray:
    z = lgae_hep.encode(jets, model, progress=False)
    return np.concatenate([ak.to_numpy(z[f]).reshape(len(z), -1)
                           for f in ("scalars_re", "scalars_im", "norms_re", "norms_im")], 1)


# ---------------------------------------------------------------- (1) exact covariance
@pytest.mark.parametrize("references,output", [(r, "free") for r in REFS]
                         + [(["time"], "lightlike"), (["time"], "massive")])
@pytest.mark.parametrize("aggregation,maxdim", [("mean", 2), ("min&max", 2), ("mix", 2),
                                                ("mean", 3)])
def test_joint_transformation_is_covariant(references, output, aggregation, maxdim, make_jets,
                                           random_lorentz):
    model = _model(references, aggregation, seed=len(references) + maxdim, maxdim=maxdim,
                   output=output)
    p4, mask = make_jets(3, 8, seed=1)
    lab = model.ref_lab.expand(3, -1, -1)
    rng = np.random.default_rng(5)
    for max_rap in (1.0, 2.0):
        lam = torch.as_tensor(random_lorentz(rng, max_rap))
        with torch.no_grad():
            out = model(p4, mask)
            out_t = model(p4 @ lam.T, mask, references=lab @ lam.T)
            moved = model(p4 @ lam.T, mask)  # particles only: the lab references stay
        bound = _bound(lam, maxdim)  # 2.4e-11 (maxdim 2) .. 7e-9 (maxdim 3) at rapidity 2
        if output != "free":  # the projection's own gamma^2 (test_lightlike_output.py)
            bound *= float(lam[0, 0]) ** 2
        assert _rel_dev(out_t.p4, out.p4 @ lam.T) <= bound
        assert _rel_dev(out_t.latent[(0, 0)], out.latent[(0, 0)]) <= bound
        v, v_t = (irrep_to_fourvec(o.latent[(1, 1)]) for o in (out, out_t))
        assert _rel_dev(v_t, v @ lam.T.to(v.dtype)) <= bound
        # and the references matter: without them transformed the output is another function
        assert _rel_dev(moved.p4, out.p4 @ lam.T) > 1e6 * bound


# ------------------------------------------------- (2) invariance under the kept subgroup
def test_time_reference_keeps_rotations():
    model = _model(["time"])
    jets, _, _ = _jets([8, 5, 3, 7], seed=2)
    rot = lorentz_matrix(angle=np.array([0.7, -1.9, 0.4]))
    rotated, _, _ = _transform_jets(jets, rot)
    # Cartesian chamfer: rotation invariant; the rotated input carries one float64 rounding
    # per component (|R| = 1), amplified like the network's own rounding: path_rtol
    np.testing.assert_allclose(_score(rotated, model, "chamfer"), _score(jets, model, "chamfer"),
                               rtol=RTOL, atol=0)
    a, b = _invariants(jets, model), _invariants(rotated, model)
    np.testing.assert_allclose(b, a, rtol=RTOL, atol=RTOL * np.abs(a).max())


@pytest.mark.parametrize("references", [["beam"], ["time", "beam"]])
def test_beam_reference_keeps_z_rotations(references):
    model = _model(references, aggregation="mix")  # pT order is kept: mix may be used
    jets, _, _ = _jets([8, 5, 3, 7], seed=3)
    zrot = lorentz_matrix(angle=np.array([0.0, 0.0, 2.3]))
    rotated, _, _ = _transform_jets(jets, zrot)
    for metric in ("chamfer", "chamfer-dr"):  # both invariant under rotations about z
        np.testing.assert_allclose(_score(rotated, model, metric), _score(jets, model, metric),
                                   rtol=RTOL, atol=path_atol(U64))
    a = _invariants(jets, model)
    np.testing.assert_allclose(_invariants(rotated, model), a, rtol=RTOL,
                               atol=RTOL * np.abs(a).max())


def test_beam_vector_keeps_transverse_boosts_not_z_boosts():
    """The 4-vector (0, 0, 0, 1) is fixed by SO+(2, 1): rotations about z and boosts
    *transverse* to z. A boost along z maps it to (sinh y, 0, 0, cosh y): no fixed 4-vector is
    kept by z-boosts (that needs the (t, z)-plane bivector, see lgae_hep.nn.references)."""
    model = _model(["beam"])
    jets, _, _ = _jets([8, 5, 3, 7], seed=3)
    a = _invariants(jets, model)
    y = 0.8
    tol = RTOL * np.exp(2 * y)  # module docstring
    tboost = lorentz_matrix(rapidity=np.array([y * 0.6, y * 0.8, 0.0]),
                            angle=np.array([0, 0, -1.3]))
    b = _invariants(_transform_jets(jets, tboost)[0], model)
    np.testing.assert_allclose(b, a, rtol=tol, atol=tol * np.abs(a).max())
    zboost = lorentz_matrix(rapidity=np.array([0.0, 0.0, y]))
    b = _invariants(_transform_jets(jets, zboost)[0], model)
    assert np.abs(a - b).max() > 1e6 * tol * np.abs(a).max()


# ---------------------------------------------- (3) transformations that move the references
def test_time_reference_sees_boosts():
    jets, _, _ = _jets([8, 5, 3, 7], seed=4)
    boosted, _, _ = _transform_jets(jets, lorentz_matrix(rapidity=np.array([0.0, 0.6, 0.3])))
    tol = RTOL * np.exp(2 * 0.68)
    free, timed = _model([]), _model(["time"])
    a, b = _invariants(jets, free), _invariants(boosted, free)
    np.testing.assert_allclose(b, a, rtol=tol, atol=tol * np.abs(a).max())  # equivariant model
    a, b = _invariants(jets, timed), _invariants(boosted, timed)
    assert np.abs(a - b).max() > 1e6 * tol * np.abs(a).max()  # measured ~1e-1 of the scale


def test_beam_reference_sees_rotations_off_the_beam():
    jets, _, _ = _jets([8, 5, 3, 7], seed=5)
    rotated, _, _ = _transform_jets(jets, lorentz_matrix(angle=np.array([1.0, 0.0, 0.0])))
    free, beam = _model([]), _model(["beam"])
    np.testing.assert_allclose(_score(rotated, free, "chamfer"), _score(jets, free, "chamfer"),
                               rtol=RTOL, atol=0)
    a, b = _score(jets, beam, "chamfer"), _score(rotated, beam, "chamfer")
    assert (np.abs(a - b) / a).max() > 1e6 * RTOL


# ------------------------------------------------ the engine: rest frame with the references
@pytest.mark.parametrize("references", REFS)
def test_engine_score_equals_lab_frame_call(references):
    """``lgae_hep.score`` evaluates the model in each jet's rest frame with the references
    boosted there too: the lab-frame call's function. The lab-frame float64 call carries the
    jet's own gamma (E / m, <= 60 here) in its rounding, as a transformed evaluation does in
    test (1): bound path_rtol gamma^2 relative to the score."""
    model = _model(references, seed=7)
    jets, p4, mask = _jets([8, 5, 3, 7, 2], seed=6)
    to_rest, _ = rest_frame_boosts(p4, mask)
    gamma = float(to_rest[:, 0, 0].max())
    with torch.no_grad():
        out = model(p4, mask)
        direct = chamfer(p4, out.p4, mask, out.mask).numpy()
        # the engine's frame without the references boosted: another function
        naive = model(apply_boosts(to_rest, p4), mask)
        back = torch.linalg.inv(to_rest)
        wrong = chamfer(p4, apply_boosts(back, naive.p4), mask, naive.mask).numpy()
    s = _score(jets, model, "chamfer")
    np.testing.assert_allclose(s, direct, rtol=RTOL * gamma**2, atol=0)
    assert (np.abs(wrong - direct) / direct).max() > 1e-3
    z = lgae_hep.encode(jets, model, progress=False)
    v = irrep_to_fourvec(out.latent[(1, 1)]).real.numpy()
    scale = np.abs(v).max()
    np.testing.assert_allclose(ak.to_numpy(z["vectors_re"]), v, rtol=0,
                               atol=RTOL * gamma**2 * scale)


# ------------------------------------------------------- (4) permutations and padding
@pytest.mark.parametrize("aggregation", ["mean", "min&max"])
def test_latent_permutation_invariant_with_references(aggregation, make_jets):
    model = _model(["time", "beam"], aggregation)
    p4, mask = make_jets(3, 8, seed=4, fill=1.0)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = model(p4, mask).latent
        b = model(p4[:, perm], mask[:, perm]).latent
    for r in a:  # only the order of the <= 8-particle sums changes (test_lgae.py)
        torch.testing.assert_close(a[r], b[r], rtol=0, atol=RTOL * a[r].abs().max().item())


@pytest.mark.parametrize("aggregation", ["mean", "min&max", "mix"])
def test_padding_changes_nothing_with_references(aggregation, make_jets):
    model = _model(["time", "beam"], aggregation, num_scalars=1)
    p4, mask = make_jets(3, 5, seed=5)
    sc = torch.randn(3, 5, 1, dtype=U64)
    big = torch.cat([p4, torch.full((3, 3, 4), 1e12, dtype=U64)], 1)
    big[:, :5][~mask] = -3e9
    mbig = torch.cat([mask, torch.zeros(3, 3, dtype=torch.bool)], 1)
    scbig = torch.cat([sc, torch.full((3, 3, 1), 1e9, dtype=U64)], 1)
    lam = torch.as_tensor(lorentz_matrix(rapidity=np.array([0.3, 0.0, 0.5])))
    refs = model.ref_lab.expand(3, -1, -1) @ lam.T
    with torch.no_grad():
        a = model(p4, mask, sc, references=refs)
        b = model(big, mbig, scbig, references=refs)
    # bitwise: padded slots are zeroed before any arithmetic (test_lgae.py)
    torch.testing.assert_close(a.p4, b.p4, rtol=0, atol=0)
    torch.testing.assert_close(a.scalars, b.scalars, rtol=0, atol=0)
    assert torch.equal(a.mask, b.mask)


# ---------------------------------------------------------- (5) bad input and old files
def test_references_for_a_model_without_them(make_jets):
    model = _model([])
    p4, mask = make_jets(2, 8, seed=0)
    refs = torch.tensor([[[1.0, 0, 0, 0]]], dtype=U64).expand(2, 1, 4)
    with pytest.raises(ValueError, match="built without reference vectors"):
        model(p4, mask, references=refs)
    with pytest.raises(ValueError, match="built without reference vectors"):
        model.encode(p4, mask, references=refs)
    latent, _ = model.encode(p4, mask)
    with pytest.raises(ValueError, match="built without reference vectors"):
        model.decode(latent, references=refs)
    # a model file whose config asks for references its weights were not trained with
    cfg = {**model.config, "references": ["time"]}
    with pytest.raises(ValueError, match="dec_ref"):
        model_from_checkpoint({"config": cfg, "state_dict": model.state_dict()})


def test_bad_reference_names_and_shapes(make_jets):
    for bad in (["lab"], ["time", "z"]):
        with pytest.raises(ValueError, match=r"unknown reference vector.*'time'.*'beam'"):
            LGAE(references=bad)
    with pytest.raises(ValueError, match="list of reference-vector names"):
        LGAE(references="time")
    with pytest.raises(ValueError, match="repeats"):
        LGAE(references=["beam", "beam"])
    model = _model(["time", "beam"])
    p4, mask = make_jets(2, 8, seed=0)
    with pytest.raises(ValueError, match=r"\(2, 2, 4\)"):
        model(p4, mask, references=torch.zeros(2, 1, 4, dtype=U64))
    nan = model.ref_lab.expand(2, -1, -1).clone()
    nan[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        model(p4, mask, references=nan)


def test_config_records_references():
    model = _model(["beam", "time"])
    assert model.config["references"] == ["beam", "time"]
    clone = LGAE.from_config(model.config)
    assert clone.references == ("beam", "time")
    assert clone.state_dict().keys() == model.state_dict().keys()
    assert "references" not in _model([]).config  # old configs and checksums unchanged


def test_no_references_is_bitwise_the_old_model(make_jets):
    p4, mask = make_jets(3, 8, seed=2)
    torch.manual_seed(4)
    old = LGAE(aggregation="mix", dtype="float64", **SMALL)
    new = _model([], "mix", seed=4)
    sa, sb = old.state_dict(), new.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    with torch.no_grad():
        assert torch.equal(old(p4, mask).p4, new(p4, mask).p4)


@pytest.mark.parametrize("name", bundled_models())
def test_bundled_models_have_no_references(name, make_jets):
    """Old files load as models without references; their outputs are pinned against the
    pre-speed-up code by test_bundled_reference.py."""
    model = load_model(name)
    assert model.references == () and "references" not in model.config
    assert model.state_dict().keys() == LGAE.from_config(model.config).state_dict().keys()
    p4, mask = make_jets(2, model.num_particles, seed=0, dtype=model.dtype)
    with pytest.raises(ValueError, match="built without reference vectors"):
        model(p4, mask, references=torch.zeros(2, 1, 4))
