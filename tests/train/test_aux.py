"""fit's optional auxiliary objective (aux_targets / aux_weight, lgae_hep.objectives.AuxHead).

What can fail, not the network's quality: targets aligned with their jets through the drop and
the split, standardised once from the training jets; the head sees only Lorentz invariants;
aux_weight = 0 is the training without the option; resume continues the head; the model file
does not carry the head.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _jets import make_jets, perturbed_latents  # noqa: E402
from lgae_hep.models import build_model  # noqa: E402

from lgae_hep.checkpoint import CheckpointError, load_checkpoint, load_model_file  # noqa: E402
from lgae_hep.density import invariant_features  # noqa: E402
from lgae_hep.fit_data import fit_samples as _fit_samples  # noqa: E402
from lgae_hep.inference import latent_columns  # noqa: E402
from lgae_hep.objectives import AuxHead, aux_loss, latent_invariants  # noqa: E402
from lgae_hep.precision import path_rtol  # noqa: E402
from lgae_hep.train import fit  # noqa: E402

LGAE = {"architecture": "lgae", "num_particles": 8, "tau_v": 2, "aggregation": "mix",
        "encoder_channels": [2], "decoder_channels": [2], "mlp_hidden": 4, "num_basis": 3}
KW = dict(batch_size=32, lr=3e-3, patience=50, device="cpu", progress=False, log=lambda m: None,
          loss="chamfer-dr", seed=0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _energy(p4: torch.Tensor) -> np.ndarray:
    """A per-jet target that identifies the jet: its summed energy (float64)."""
    return p4.double().sum(1)[:, 0].numpy()


def _targets(p4: torch.Tensor) -> np.ndarray:
    e = _energy(p4)
    return np.stack([e, np.log(e), -e, e ** 0.5], 1)


def test_targets_follow_their_jets_through_drop_and_split():
    p4, mask = make_jets(40, 3)
    p4[5, 0, 1] = float("nan")  # dropped by the bad-input policy
    p4[17, 1, 2] = float("inf")
    tg = _targets(torch.nan_to_num(p4))
    tg[5] = tg[17] = np.nan
    model = build_model(dict(LGAE))
    for perm in (torch.arange(40), torch.randperm(40, generator=torch.Generator().manual_seed(1))):
        with pytest.warns(RuntimeWarning, match="dropped 2 of 40"):
            s = _fit_samples(model, (p4[perm], mask[perm]), None, 0.25, 0, tg[perm.numpy()])
        assert s.aux_train.shape == (len(s.train[0]), 4)
        # exact: the stored p4 is the input's float32, summed in float64 both times
        np.testing.assert_array_equal(s.aux_train.numpy(), _targets(s.train[0]))
    # a given validation sample leaves all (valid) train jets, still aligned
    with pytest.warns(RuntimeWarning, match="dropped 2 of 40"):
        s = _fit_samples(model, (p4, mask), make_jets(8, 4), 0.1, 0, tg)
    assert len(s.train[0]) == 38
    np.testing.assert_array_equal(s.aux_train.numpy(), _targets(s.train[0]))


def test_standardisation_from_the_kept_training_jets_once(tmp_path):
    p4, mask = make_jets(48, 5)
    tg = _targets(p4)
    tg[3, 1] = np.nan  # skipped in the mean / std and in the loss
    res = fit(dict(LGAE), (p4, mask), None, epochs=1, out_dir=tmp_path, aux_targets=tg,
              aux_weight=0.5, val_fraction=0.25, **KW)
    kept = _fit_samples(build_model(dict(LGAE)), (p4, mask), None, 0.25, 0, tg).aux_train.numpy()
    mean, std = np.nanmean(kept, 0), np.nanstd(kept, 0)
    # the head's buffers are float32 roundings of float64 statistics: within one float32
    # rounding (2^-24 relative) plus the float64 summation-order difference, 2^-23 covers both
    np.testing.assert_allclose(res.aux_head.mean.numpy(), mean, rtol=2.0 ** -23)
    np.testing.assert_allclose(res.aux_head.std.numpy(), std, rtol=2.0 ** -23)
    assert "train_aux_loss" in res.history[0]


def test_aux_loss_skips_missing_targets():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    target = torch.tensor([[0.0, float("nan")], [1.0, 2.0], [float("nan"), float("nan")]])
    np.testing.assert_array_equal(aux_loss(pred, target).numpy(), [1.0, 4.0, 0.0])


def test_latent_invariants_are_the_gram_feature_set():
    torch.manual_seed(0)
    model = build_model(dict(LGAE, tau_v=3, dtype="float64"))
    p4, mask = make_jets(5, 6)
    with torch.no_grad():
        lat = model(p4.double(), mask).latent
    x = latent_invariants(lat).numpy()
    cols, inv = latent_columns({k: v.numpy() for k, v in lat.items()})
    ref = invariant_features(cols, inv, "gram")
    assert x.shape == (5, len(ref)) == (5, 2 + 21)
    ref = np.stack(list(ref.values()), 1)
    # the same float64 products of the same components, summed in another order: within
    # 4 roundings of the largest term (the squared Euclidean scale of the latent vectors)
    scale = max(float(np.abs(ref).max()), 1.0)
    np.testing.assert_allclose(x, ref, rtol=0, atol=4 * np.finfo(np.float64).eps * scale * 4)


def test_aux_prediction_is_lorentz_invariant_float64(random_lorentz):
    torch.manual_seed(2)
    model = build_model(dict(LGAE, dtype="float64"))
    p4, mask = make_jets(6, 7)
    p4 = p4.double()
    with torch.no_grad():
        n_in = latent_invariants(model(p4, mask).latent).shape[1]
        head = AuxHead(n_in, 4, hidden=16).double()
        rng = np.random.default_rng(11)
        for max_rap in (0.5, 1.5):
            lam = torch.as_tensor(random_lorentz(rng, max_rap))
            out, out_t = model(p4, mask), model(p4 @ lam.T, mask)
            y, y_t = head(out.latent), head(out_t.latent)
            # bound: the boosted latent 4-vectors are within rel = path_rtol gamma^2 (maxdim 2,
            # tests/models/test_lgae.py::_equivariance_bound) of Lambda v; a Minkowski product
            # of two of them is then within (2 rel + 8 u) S of the exact invariant, S the
            # largest squared Euclidean norm of a boosted latent vector; the head (asinh and
            # SiLU are 1- and 1.1-Lipschitz) moves by at most prod ||W||_2 1.1^depth times the
            # 2-norm of that, <= sqrt(F) times its max.
            gamma = float(lam[0, 0])
            rel = path_rtol(torch.float64) * gamma ** 2
            cart = torch.cat([out_t.latent[(1, 1)].real, out_t.latent[(1, 1)].imag], 1)
            s = float((cart.abs() ** 2).sum(-1).max()) * gamma ** 2 + 1.0
            dg = (2 * rel + 8 * np.finfo(np.float64).eps) * s
            lip = 1.1 ** 2 * np.prod([torch.linalg.matrix_norm(m.weight, 2).item()
                                      for m in head.mlp if isinstance(m, torch.nn.Linear)])
            assert float((y - y_t).abs().max()) <= lip * np.sqrt(n_in) * dg
            # and it is not trivially constant
            assert float((y[0] - y[1]).abs().max()) > 1e3 * lip * np.sqrt(n_in) * dg


def test_aux_weight_zero_is_the_plain_training(tmp_path):
    train, val = make_jets(48, 6), make_jets(16, 7)
    a = fit(dict(LGAE), train, val, epochs=2, out_dir=tmp_path / "a", **KW)
    b = fit(dict(LGAE), train, val, epochs=2, out_dir=tmp_path / "b", aux_weight=0.0,
            aux_targets=_targets(train[0]), **KW)
    assert b.aux_head is None
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True):
        assert torch.equal(x, y)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    assert "aux_head" not in (load_checkpoint(tmp_path / "b" / "last.pt").get("extra") or {})


def test_resume_with_the_head_matches_an_uninterrupted_run(tmp_path):
    train, val = make_jets(48, 8), make_jets(16, 9)
    kw = dict(KW, aux_targets=_targets(train[0]), aux_weight=0.3)
    fit(dict(LGAE), train, val, epochs=3, out_dir=tmp_path / "full", **kw)
    fit(dict(LGAE), train, val, epochs=1, out_dir=tmp_path / "cut", **kw)
    fit(dict(LGAE), train, val, epochs=3, out_dir=tmp_path / "cut", resume=True, **kw)
    full = load_checkpoint(tmp_path / "full" / "last.pt")
    cut = load_checkpoint(tmp_path / "cut" / "last.pt")
    for key in full["state_dict"]:
        assert torch.equal(full["state_dict"][key], cut["state_dict"][key])
    ha, hb = full["extra"]["aux_head"]["state_dict"], cut["extra"]["aux_head"]["state_dict"]
    assert ha.keys() == hb.keys() and all(torch.equal(ha[k], hb[k]) for k in ha)
    # the head rebuilds from the checkpoint
    head = AuxHead.from_state(full["extra"]["aux_head"])
    assert head.config["names"] == ["log_mass", "tau21", "tau32", "log_d2"]
    # a run with the head does not resume without it, and vice versa
    with pytest.raises(CheckpointError, match="auxiliary head"):
        fit(dict(LGAE), train, val, epochs=4, out_dir=tmp_path / "full", resume=True, **KW)


def test_model_file_does_not_carry_the_head(tmp_path):
    train, val = make_jets(32, 10), make_jets(16, 11)
    res = fit(dict(LGAE), train, val, epochs=1, out_dir=tmp_path, aux_weight=1.0,
              aux_targets=_targets(train[0]), **KW)
    ck = load_checkpoint(tmp_path / "best.pt")
    assert set(ck["state_dict"]) == set(build_model(dict(LGAE)).state_dict())
    model = load_model_file(tmp_path / "best.pt")
    for k, v in model.state_dict().items():
        assert torch.equal(v, res.model.state_dict()[k])


def test_bad_aux_arguments(tmp_path):
    train, val = make_jets(16, 12), make_jets(8, 13)
    with pytest.raises(ValueError, match="needs aux_targets"):
        fit(dict(LGAE), train, val, epochs=1, out_dir=tmp_path / "a", aux_weight=0.1, **KW)
    with pytest.raises(ValueError, match="one row per train jet"):
        fit(dict(LGAE), train, val, epochs=1, out_dir=tmp_path / "b", aux_weight=0.1,
            aux_targets=np.zeros((15, 4)), **KW)
    with pytest.raises(ValueError, match="aux_weight"):
        fit(dict(LGAE), train, val, epochs=1, out_dir=tmp_path / "c", aux_weight=-1.0,
            aux_targets=np.zeros((16, 4)), **KW)


def test_a_loaded_head_scores_through_the_engine(tmp_path):
    """A model file with ``extra["aux_head"]`` loads the head as a plain float64 attribute (the
    network's state_dict unchanged), and a latent density on its predicted substructure
    (``pred_*`` columns) is what ``lgae_hep.score`` computes."""
    import lgae_hep
    from lgae_hep.checkpoint import save_checkpoint
    from lgae_hep.density import fit_latent_density
    from lgae_hep.inference import forward_batches
    from lgae_hep.scoring.aux_head import aux_head_columns

    train, val = make_jets(48, 14), make_jets(24, 15)
    fit(dict(LGAE), train, val, epochs=1, out_dir=tmp_path, aux_weight=1.0,
        aux_targets=_targets(train[0]), **KW)
    model = load_model_file(tmp_path / "best.pt")
    assert model.aux_head.mean.dtype == torch.float64
    assert "aux_head" not in dict(model.named_children())
    assert set(model.state_dict()) == set(build_model(dict(LGAE)).state_dict())
    p4, mask = val
    out = forward_batches(model, p4, mask, batch_size=8, want_latent=True, want_reco=False,
                          encode_only=True)
    cols, inv = latent_columns(out.latent)
    pred = aux_head_columns(model.aux_head, cols, inv)
    assert list(pred) == ["pred_log_mass", "pred_tau21", "pred_tau32", "pred_log_d2"]
    # the head itself on the same float64 invariants (latent_invariants' order)
    x = torch.as_tensor(np.stack(list(invariant_features(cols, inv, "gram").values()), 1))
    with torch.no_grad():
        ref = (model.aux_head.mlp(torch.asinh(x)) * model.aux_head.std
               + model.aux_head.mean).numpy()
    np.testing.assert_array_equal(np.stack(list(pred.values()), 1), ref)
    # a density on two of the predictions, stored in the model file, scored by the engine
    mass = (p4.double().sum(1) ** 2 * torch.tensor([1.0, -1, -1, -1], dtype=torch.float64)
            ).sum(-1).clamp_min(0).sqrt().numpy()
    feats = ["pred_tau21", "pred_log_d2"]
    model.latent_density = fit_latent_density(pred, feats, mass, n_components=1)
    model.score_metric = "latent-density-given-mass"
    save_checkpoint(tmp_path / "with_head.pt", model, rng_state=False)
    again = load_model_file(tmp_path / "with_head.pt")
    import awkward as ak
    import vector

    vector.register_awkward()
    jets = ak.Array([[dict(zip(("E", "px", "py", "pz"), map(float, v), strict=True))
                      for v, m in zip(p4[j], mask[j], strict=True) if m]
                     for j in range(len(p4))], with_name="Momentum4D")
    jets = ak.with_name(jets, "Momentum4D")
    s = lgae_hep.score(jets, again, progress=False)
    d = model.latent_density
    expect = d.score(d.transform(pred, mass), "latent-density-given-mass")
    # the same float64 arithmetic on the same float64 latent (batching is per jet): the
    # engine's density score equals the direct computation to the rounding of the GMM's
    # log-sum-exp (a few ulps of the largest term)
    np.testing.assert_allclose(np.asarray(s), expect, rtol=0,
                               atol=16 * np.finfo(np.float64).eps * (1 + np.abs(expect).max()))
    # a model file whose head is corrupt names the file
    ck = torch.load(tmp_path / "with_head.pt", weights_only=True)
    ck["extra"]["aux_head"]["config"]["n_in"] = 3
    torch.save(ck, tmp_path / "corrupt.pt")
    with pytest.raises(CheckpointError, match="corrupt.pt.*auxiliary head"):
        load_model_file(tmp_path / "corrupt.pt")


def test_aux_head_error_bound_covers_perturbed_latents():
    """aux_head_errors bounds the change of the head's predictions when every latent
    component moves by up to rel * A (A the jet's largest component), and is not vacuous."""
    from lgae_hep.scoring.aux_head import aux_head_columns, aux_head_errors

    torch.manual_seed(3)
    model = build_model(dict(LGAE, tau_v=3, dtype="float64"))
    p4, mask = make_jets(32, 16)
    with torch.no_grad():
        lat = model(p4.double(), mask).latent
    cols, inv = latent_columns({k: v.numpy() for k, v in lat.items()})
    n_in = len(invariant_features(cols, inv, "gram"))
    head = AuxHead(n_in, 4, hidden=16).double().eval()
    rel = 1e-6
    bound = aux_head_errors(head, cols, inv, rel)
    ref = aux_head_columns(head, cols, inv)
    worst = 0.0
    for moved in perturbed_latents(cols, rel):
        got = aux_head_columns(head, moved, inv)
        for k in ref:
            dev = np.abs(got[k] - ref[k])
            assert (dev <= bound[k]).all(), k
            worst = max(worst, float(np.max(dev / bound[k])))
    # a first-order bound with the factor 2 and worst-case signs: the random moves use a
    # fraction of it, but not less than 1e-4 of it (it is not vacuous)
    assert worst > 1e-4
