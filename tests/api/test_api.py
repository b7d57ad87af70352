"""lgae_hep.score / encode / reconstruct / load_model on awkward arrays."""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np
import pytest
import torch
import vector
from lgae_hep.models import GNNAE, LGAE

import lgae_hep
from lgae_hep.api import InvalidJetWarning, bundled_models, latent_columns, load_model
from lgae_hep.checkpoint import save_checkpoint
from lgae_hep.lorentz import lorentz_matrix
from lgae_hep.precision import path_rtol, unit_roundoff

vector.register_awkward()

N = 30


def tiny_lgae(n: int = N, dtype: str = "float32", seed: int = 0) -> LGAE:
    torch.manual_seed(seed)
    return LGAE(num_particles=n, encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4,
                num_basis=2, dtype=dtype).eval()


@pytest.fixture(scope="module")
def model() -> LGAE:
    return tiny_lgae()


@pytest.fixture(scope="module")
def model64() -> LGAE:
    return tiny_lgae(dtype="float64")


def make_jets(counts, seed: int = 1) -> ak.Array:
    """[jet][particle] of massive particles around a random axis (pt/eta/phi/mass)."""
    rng = np.random.default_rng(seed)
    counts = np.asarray(counts, dtype=np.int64)
    tot = int(counts.sum())
    eta0 = np.repeat(rng.uniform(-1.5, 1.5, len(counts)), counts)
    phi0 = np.repeat(rng.uniform(-3, 3, len(counts)), counts)
    return ak.unflatten(
        ak.zip(
            {
                "pt": rng.exponential(40.0, tot) + 1.0,
                "eta": eta0 + rng.normal(0, 0.2, tot),
                "phi": phi0 + rng.normal(0, 0.2, tot),
                "mass": np.full(tot, 0.1396),
            },
            with_name="Momentum4D",
        ),
        counts,
    )


def to_cartesian_fields(jets: ak.Array) -> ak.Array:
    return ak.zip({"px": jets.px, "py": jets.py, "pz": jets.pz, "E": jets.E},
                  with_name="Momentum4D")


COUNTS = [0, 1, 100, 5, 30, 31, 12]


def test_structure_jet_particle(model):
    jets = make_jets(COUNTS)
    s = lgae_hep.score(jets, model)
    assert s.ndim == 1 and len(s) == len(COUNTS)
    s = ak.to_numpy(s)
    assert np.all(np.isfinite(s))
    assert s[0] == 0.0  # no particles: two empty clouds
    assert np.all(s[1:] > 0)


def test_structure_event_jet_particle_with_empty_events(model):
    jets = make_jets(COUNTS)
    events = ak.unflatten(jets, [0, 3, 0, 4, 0])
    s = lgae_hep.score(events, model)
    assert ak.num(s, axis=1).tolist() == [0, 3, 0, 4, 0]
    assert ak.flatten(s).tolist() == lgae_hep.score(jets, model).tolist()
    # a third list level (e.g. [file][event][jet][particle]) works the same way
    deeper = ak.unflatten(events, [2, 0, 3])
    s3 = lgae_hep.score(deeper, model)
    assert ak.to_list(ak.num(s3, axis=1)) == [2, 0, 3]
    assert ak.flatten(s3, axis=None).tolist() == ak.flatten(s).tolist()


def test_equal_to_scoring_one_by_one(model):
    jets = make_jets(COUNTS, seed=5)
    batch = ak.to_numpy(lgae_hep.score(jets, model, batch_size=4))
    alone = np.array([ak.to_numpy(lgae_hep.score(jets[i:i + 1], model, batch_size=4))[0]
                      for i in range(len(jets))])
    # a jet alone sits at row 0 of its (4, N, 4) batch, in the batch at row i % 4; BLAS
    # kernels may round a row differently by its position in a register block (seen with
    # AVX2 kernels, not with AVX-512 ones), so: the two-path bound, not bitwise
    np.testing.assert_allclose(batch, alone, rtol=path_rtol(torch.float32), atol=0)
    # the network never mixes jets: other jets in the batch leave a jet's score bitwise alone
    other = make_jets(COUNTS, seed=55)
    mixed = ak.concatenate([jets[:4], other[4:]])
    assert np.array_equal(ak.to_numpy(lgae_hep.score(mixed, model, batch_size=4))[:4],
                          batch[:4])
    # and independent of the conversion chunking (same rows in the same batches)
    chunked = ak.to_numpy(lgae_hep.score(jets, model, batch_size=4, chunk_size=4))
    assert np.array_equal(batch, chunked)


def test_field_conventions_agree(model):
    jets = make_jets(COUNTS, seed=2)
    s1 = ak.to_numpy(lgae_hep.score(jets, model))
    s2 = ak.to_numpy(lgae_hep.score(to_cartesian_fields(jets), model))
    # the two conventions give float32 network inputs that differ by at most one float32
    # rounding (vector converts in float64), which the network amplifies no more than its own
    # rounding: the two-path bound of lgae_hep.precision
    np.testing.assert_allclose(s1, s2, rtol=path_rtol(torch.float32), atol=0)


def test_keeps_the_n_hardest(model):
    jets = make_jets([100, 45], seed=3)
    order = ak.argsort(jets.pt, axis=1, ascending=False)
    hardest = jets[order][:, :N]
    np.testing.assert_array_equal(ak.to_numpy(lgae_hep.score(jets, model)),
                                  ak.to_numpy(lgae_hep.score(hardest, model)))


def test_score_is_the_chamfer_distance_of_the_reconstruction(model):
    from lgae_hep.data import to_tensors
    from lgae_hep.losses import chamfer

    jets = make_jets([7, 30], seed=4)
    s = ak.to_numpy(lgae_hep.score(jets, model))
    # the engine's own reconstruction (lab frame, float64): the score is its Chamfer distance
    # to the input, computed the same way: bitwise
    from lgae_hep.inference import run_chunks

    res = run_chunks(jets, model, want_reco=True).result
    p4, mask, _ = to_tensors(jets, N, dtype=torch.float64)
    np.testing.assert_array_equal(s, chamfer(p4, torch.from_numpy(res.reco_p4), mask,
                                             torch.from_numpy(res.reco_mask)).numpy())
    # the network run directly in the lab frame (another evaluation of the same function,
    # lgae_hep.scoring.frames): within the two-path float32 bound
    with torch.no_grad():
        out = model(p4.float(), mask)
        ref = chamfer(p4, out.p4.double(), mask, out.mask).numpy()
    np.testing.assert_allclose(s, ref, rtol=path_rtol(torch.float32), atol=0)


def test_score_is_rotation_invariant(model64):
    """Euclidean 4-vector Chamfer + an equivariant network: rotations leave the score alone.

    (About the beam axis, so the pT order of the particles, which the order-dependent ``mix``
    aggregation sees, is unchanged.)
    """
    jets = make_jets([8, 20, 3], seed=6)
    lam = lorentz_matrix(angle=np.array([0.0, 0.0, 2.1]))
    p = np.stack([ak.to_numpy(ak.flatten(getattr(jets, c))) for c in ("E", "px", "py", "pz")], 1)
    q = p @ lam.T
    rotated = ak.unflatten(ak.zip({"E": q[:, 0], "px": q[:, 1], "py": q[:, 2], "pz": q[:, 3]},
                                  with_name="Momentum4D"), ak.num(jets))
    a = ak.to_numpy(lgae_hep.score(jets, model64))
    b = ak.to_numpy(lgae_hep.score(rotated, model64))
    # exact in exact arithmetic; the rotated input carries one float64 rounding per
    # component (|Lambda| = 1 for a rotation), amplified like the network's own rounding
    np.testing.assert_allclose(a, b, rtol=path_rtol(torch.float64), atol=0)


def test_latent_invariants_are_boost_invariant(model64):
    jets = make_jets([8, 20, 3], seed=7)
    # boost along and rotation about the beam axis: pT (so the particle order) is unchanged
    lam = lorentz_matrix(rapidity=np.array([0.0, 0.0, 0.8]), angle=np.array([0.0, 0.0, -1.3]))
    p = np.stack([ak.to_numpy(ak.flatten(getattr(jets, c))) for c in ("E", "px", "py", "pz")], 1)
    q = p @ lam.T
    boosted = ak.unflatten(ak.zip({"E": q[:, 0], "px": q[:, 1], "py": q[:, 2], "pz": q[:, 3]},
                                  with_name="Momentum4D"), ak.num(jets))
    za, zb = lgae_hep.encode(jets, model64), lgae_hep.encode(boosted, model64)
    # float64 network: rounding amplified by at most lgae_hep.precision's 2**14, times the
    # conditioning of the boost, whose matrix entries reach e^|y|, and a Minkowski norm is
    # quadratic in them (e^2|y|); relative to the largest entry, since an invariant of one
    # channel can be a cancellation near zero
    tol = path_rtol(torch.float64) * np.exp(2 * 0.8)
    for f in ("scalars_re", "scalars_im", "norms_re", "norms_im"):
        np.testing.assert_allclose(ak.to_numpy(za[f]), ak.to_numpy(zb[f]), rtol=tol,
                                   atol=tol * np.abs(ak.to_numpy(za[f])).max())
    # the latent 4-vectors transform covariantly (real and imaginary parts separately)
    va = ak.to_numpy(za["vectors_re"])
    vb = ak.to_numpy(zb["vectors_re"])
    np.testing.assert_allclose(va @ lam.T, vb, rtol=tol, atol=tol * np.abs(va).max())


def test_encode_layout(model):
    events = ak.unflatten(make_jets(COUNTS), [3, 0, 4])
    z = lgae_hep.encode(events, model)
    assert ak.num(z, axis=1).tolist() == [3, 0, 4]
    flat = ak.flatten(z)
    assert set(ak.fields(flat)) == {"scalars_re", "scalars_im", "vectors_re", "vectors_im",
                                    "norms_re", "norms_im"}
    v = ak.to_numpy(flat["vectors_re"]) + 1j * ak.to_numpy(flat["vectors_im"])
    assert v.shape == (7, model.tau_latent[(1, 1)], 4)
    g = np.diag([1.0, -1.0, -1.0, -1.0])
    norm = np.einsum("bti,ij,btj->bt", v, g, v)  # complex Minkowski square
    # the model sums the 4 + 4 products of float32 components: Higham's bound for a sum of
    # n = 8 terms is n u times the sum of their magnitudes (no cancellation assumed)
    bound = 8 * unit_roundoff(torch.float32) * np.einsum("bti,bti->bt", np.abs(v), np.abs(v))
    assert np.all(np.abs(ak.to_numpy(flat["norms_re"]) - norm.real) <= bound)
    assert np.all(np.abs(ak.to_numpy(flat["norms_im"]) - norm.imag) <= bound)
    # the empty jet has a zero latent
    assert np.all(ak.to_numpy(flat["vectors_re"][0]) == 0)
    assert np.all(np.isfinite(v))


def test_latent_columns_flat_names(model):
    from lgae_hep.data import to_tensors

    p4, mask, _ = to_tensors(make_jets([4, 9]), N)
    with torch.no_grad():
        cols, inv = latent_columns({k: v.numpy() for k, v in model(p4, mask).latent.items()})
    assert "s0_re" in inv and "v0_norm_re" in inv and "v1_norm_im" in inv
    assert all(c.shape == (2,) for c in cols.values())
    assert "v0_E_re" in cols and "v0_E_re" not in inv


def test_reconstruct_momentum4d_same_structure(model):
    events = ak.unflatten(make_jets(COUNTS), [3, 0, 4])
    rec = lgae_hep.reconstruct(events, model)
    assert ak.num(rec, axis=1).tolist() == [3, 0, 4]
    n_in = np.minimum(np.asarray(COUNTS), N)
    assert ak.flatten(ak.num(rec, axis=2)).tolist() == n_in.tolist()
    jet_p4 = ak.sum(ak.flatten(rec), axis=1)  # vector sums work directly
    assert np.all(np.isfinite(ak.to_numpy(jet_p4.mass)))
    assert np.isfinite(ak.to_numpy(ak.flatten(rec.pt, axis=None))).all()


def test_gnnae_model_object():
    torch.manual_seed(0)
    g = GNNAE(num_particles=N, hidden_dim=8, num_layers_encoder=1, num_layers_decoder=1).eval()
    jets = make_jets([0, 4, 40])
    s = ak.to_numpy(lgae_hep.score(jets, g))
    assert s[0] == 0.0 and np.all(np.isfinite(s)) and np.all(s[1:] > 0)
    z = lgae_hep.encode(jets, g)
    assert ak.fields(z) == ["jet"] and len(z["jet"][0]) == g.latent_dim


def test_invalid_jets_nan_and_one_warning(model):
    good = make_jets([5, 6, 7])
    nan = ak.zip({"pt": [[10.0, np.nan]], "eta": [[0.0, 0.1]], "phi": [[0.0, 0.0]],
                  "mass": [[0.0, 0.0]]}, with_name="Momentum4D")
    spacelike = ak.zip({"px": [[10.0]], "py": [[0.0]], "pz": [[0.0]], "E": [[5.0]]},
                       with_name="Momentum4D")
    neg_e = ak.zip({"px": [[1.0]], "py": [[0.0]], "pz": [[0.0]], "E": [[-5.0]]},
                   with_name="Momentum4D")
    jets = ak.concatenate([to_cartesian_fields(good[:1]), to_cartesian_fields(nan), spacelike,
                           neg_e, to_cartesian_fields(good[1:])])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        s = ak.to_numpy(lgae_hep.score(jets, model))
    relevant = [w for w in rec if issubclass(w.category, InvalidJetWarning)]
    assert len(relevant) == 1 and "3 jet(s)" in str(relevant[0].message)
    assert np.isnan(s[1:4]).all() and np.isfinite(s[[0, 4, 5]]).all()
    # the valid jets are not affected by their invalid neighbours (the same Cartesian fields:
    # the pt/eta/phi -> px/py/pz conversion of `vector` and ours may differ in the last bit,
    # which the float64 rest-frame boost of the engine keeps)
    np.testing.assert_array_equal(s[[0, 4, 5]],
                                  ak.to_numpy(lgae_hep.score(to_cartesian_fields(good), model)))
    with pytest.warns(InvalidJetWarning):
        z = lgae_hep.encode(jets, model)
    assert np.isnan(ak.to_numpy(z["norms_re"][1])).all()
    with pytest.warns(InvalidJetWarning):
        r = lgae_hep.reconstruct(jets, model)
    assert r[1] is None and r[0] is not None
    with pytest.raises(ValueError, match="invalid jet"):
        lgae_hep.score(jets, model, on_invalid="raise")


def test_empty_input(model):
    empty = make_jets([])[:0]
    assert len(lgae_hep.score(empty, model)) == 0
    ev = ak.unflatten(make_jets([]), [0, 0])
    s = lgae_hep.score(ev, model)
    assert ak.num(s).tolist() == [0, 0]
    assert len(lgae_hep.encode(ev, model)) == 2


def test_bad_input(model):
    with pytest.raises(ValueError, match="Lorentz-vector records"):
        lgae_hep.score(ak.Array([1.0, 2.0]), model)
    with pytest.raises(ValueError, match="batch_size"):
        lgae_hep.score(make_jets([3]), model, batch_size=0)
    with pytest.raises(ValueError, match="on_invalid"):
        lgae_hep.score(make_jets([3]), model, on_invalid="ignore")
    with pytest.raises(ValueError, match="model must be"):
        lgae_hep.score(make_jets([3]), model=42)


def test_different_number_of_particles(tmp_path):
    m20 = tiny_lgae(20)
    with pytest.raises(ValueError, match="built for 20 particles"):
        lgae_hep.score(make_jets([3]), m20, num_particles=30)
    path = save_checkpoint(tmp_path / "m20.pt", m20)
    with pytest.raises(ValueError, match="built for 20 particles"):
        lgae_hep.score(make_jets([3]), path, num_particles=30)
    # without the guard, jets are cut to the model's 20 hardest particles
    assert np.isfinite(ak.to_numpy(lgae_hep.score(make_jets([50]), path))).all()


def test_load_model_unknown_lists_bundled():
    names = sorted(bundled_models())
    with pytest.raises(ValueError, match="unknown model 'no-such-model'") as err:
        load_model("no-such-model")
    for name in names:
        assert name in str(err.value)
    if not names:
        assert "none installed" in str(err.value)
    with pytest.raises(ValueError, match="bundled models"):
        lgae_hep.score(make_jets([3]), "/does/not/exist.pt")


def test_load_model_from_path_is_cached(tmp_path, model):
    path = save_checkpoint(tmp_path / "tiny.pt", model)
    a = load_model(path)
    assert a is load_model(str(path))
    jets = make_jets([4, 8])
    # same weights; the loaded tensors may differ in memory layout (other kernels): two-path
    # float32 bound of lgae_hep.precision
    np.testing.assert_allclose(ak.to_numpy(lgae_hep.score(jets, path)),
                               ak.to_numpy(lgae_hep.score(jets, model)),
                               rtol=path_rtol(torch.float32), atol=0)
    np.testing.assert_array_equal(ak.to_numpy(lgae_hep.score(jets, path)),
                                  ak.to_numpy(lgae_hep.score(jets, a)))
    not_a_model = tmp_path / "junk.pt"
    not_a_model.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError):
        load_model(not_a_model)


@pytest.mark.skipif(not bundled_models(), reason="no bundled pretrained model installed yet")
def test_bundled_default_model():
    jets = make_jets([0, 3, 30])
    s = ak.to_numpy(lgae_hep.score(jets))
    assert s[0] == 0.0 and np.isfinite(s).all()


def test_score_metric_chamfer_dr(model):
    """metric="chamfer-dr" is the pT-weighted angular Chamfer distance of the reconstruction."""
    from lgae_hep.data import to_tensors
    from lgae_hep.inference import run_chunks
    from lgae_hep.losses import chamfer_dr

    jets = make_jets([7, 30, 0], seed=8)
    s = ak.to_numpy(lgae_hep.score(jets, model, metric="chamfer-dr"))
    # of the engine's own (lab-frame, float64) reconstruction, computed the same way: bitwise
    res = run_chunks(jets, model, want_reco=True).result
    p4, mask, _ = to_tensors(jets, N, dtype=torch.float64)
    ref = chamfer_dr(p4, torch.from_numpy(res.reco_p4), mask,
                     torch.from_numpy(res.reco_mask)).numpy()
    np.testing.assert_array_equal(s, ref)
    assert s[2] == 0.0
    # a different number from the default metric, same jets
    assert not np.allclose(s[:2], ak.to_numpy(lgae_hep.score(jets[:2], model)))
    with pytest.raises(ValueError, match="chamfer-dr"):
        lgae_hep.score(jets, model, metric="emd")


def test_default_metric_comes_from_the_model_card(tmp_path, monkeypatch, model):
    """metric=None: a bundled model's card decides; model objects and paths use chamfer."""
    import json

    from lgae_hep import api, zoo

    save_checkpoint(tmp_path / "carded.pt", model)
    (tmp_path / "carded.json").write_text(json.dumps({"name": "carded",
                                                      "score_metric": "chamfer-dr"}))
    save_checkpoint(tmp_path / "plain.pt", model)
    (tmp_path / "plain.json").write_text(json.dumps({"name": "plain"}))
    monkeypatch.setattr(zoo, "_pretrained_dir", lambda: tmp_path)
    monkeypatch.setattr(zoo, "_CACHE", {})
    assert api.recommended_metric("carded") == "chamfer-dr"
    # a model loaded by name carries its card's metric; scoring the object uses it too
    loaded = api.load_model("carded")
    assert loaded.score_metric == "chamfer-dr" and api.recommended_metric(loaded) == "chamfer-dr"
    assert api.load_model("plain").score_metric == "chamfer"
    assert api.recommended_metric("plain") == "chamfer"
    assert api.recommended_metric(model) == "chamfer"
    assert api.recommended_metric(str(tmp_path / "carded.pt")) == "chamfer"
    jets = make_jets([6, 30], seed=9)
    np.testing.assert_array_equal(ak.to_numpy(lgae_hep.score(jets, "carded")),
                                  ak.to_numpy(lgae_hep.score(jets, model, metric="chamfer-dr")))
    np.testing.assert_array_equal(ak.to_numpy(lgae_hep.score(jets, loaded)),
                                  ak.to_numpy(lgae_hep.score(jets, "carded")))
    np.testing.assert_array_equal(ak.to_numpy(lgae_hep.score(jets, "plain")),
                                  ak.to_numpy(lgae_hep.score(jets, model, metric="chamfer")))
    (tmp_path / "carded.json").write_text(json.dumps({"name": "carded", "score_metric": "emd"}))
    with pytest.raises(ValueError, match="emd"):
        api.recommended_metric("carded")


def test_chamfer_dr_undefined_for_jets_along_the_beam(model):
    """A valid jet without transverse momentum has no chamfer-dr: NaN and one warning that
    says why, never a silent number; the same jet has a finite Cartesian Chamfer score."""
    beam = ak.Array([[{"px": 0.0, "py": 0.0, "pz": 10.0, "E": 10.0},
                      {"px": 0.0, "py": 0.0, "pz": -5.0, "E": 5.0}],
                     [{"px": 30.0, "py": 1.0, "pz": 5.0, "E": 31.0}]], with_name="Momentum4D")
    with pytest.warns(InvalidJetWarning, match="transverse momentum"):
        s = ak.to_numpy(lgae_hep.score(beam, model, metric="chamfer-dr"))
    assert np.isnan(s[0]) and np.isfinite(s[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", InvalidJetWarning)
        assert np.isfinite(ak.to_numpy(lgae_hep.score(beam, model, metric="chamfer"))).all()


def test_facade_reexports_the_zoo_and_the_inference_engine():
    """``lgae_hep.api.X`` keeps working for names that moved to lgae_hep.zoo / .inference."""
    from lgae_hep import api, inference, zoo

    for name in ("load_model", "bundled_models", "recommended_metric", "resolve_metric",
                 "resolve_model", "DEFAULT_MODEL", "model_num_particles", "card_inference_dtype"):
        assert getattr(api, name) is getattr(zoo, name)
    for name in ("InvalidJetWarning", "latent_columns"):
        assert getattr(api, name) is getattr(inference, name)
    assert lgae_hep.load_model is zoo.load_model and lgae_hep.score is api.score


def test_latent_layout_names_the_invariants_of_a_model(model):
    """The invariant column names come from the layout of an empty latent, no jets needed."""
    from lgae_hep.data import to_tensors
    from lgae_hep.inference import LatentColumns, empty_latent

    layout = latent_columns(empty_latent(model, N))
    assert isinstance(layout, LatentColumns) and all(len(c) == 0 for c in layout.columns.values())
    p4, mask, _ = to_tensors(make_jets([4, 9]), N)
    with torch.no_grad():
        full = latent_columns({k: v.numpy() for k, v in model(p4, mask).latent.items()})
    assert full.invariants == layout.invariants and list(full.columns) == list(layout.columns)
    assert set(layout.invariants) < set(layout.columns)


def test_run_chunks_is_what_score_returns(model):
    """The public inference driver gives the facade's numbers bitwise."""
    from lgae_hep.data.tensors import restore_outer
    from lgae_hep.inference import run_chunks

    jets = make_jets([0, 3, 12, 40])
    res = run_chunks(jets, model, batch_size=2, metric=None)
    assert res.num_particles == N and res.valid.all()
    assert list(res.counts) == [0, 3, 12, 40]
    np.testing.assert_array_equal(ak.to_numpy(restore_outer(res.result.score, res.structure)),
                                  ak.to_numpy(lgae_hep.score(jets, model, batch_size=2)))
