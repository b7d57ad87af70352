"""lgae_hep.train.fit: learning, checkpoints, resume, roll-back on NaN, bad input."""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _jets import TINY_GNNAE, make_jets  # noqa: E402
from lgae_hep.models.gnnae import GNNAE  # noqa: E402

from lgae_hep.checkpoint import load_checkpoint, load_model_file  # noqa: E402
from lgae_hep.precision import path_rtol  # noqa: E402
from lgae_hep.train import fit, jet_losses, prepare_data  # noqa: E402

KW = dict(batch_size=32, lr=3e-3, patience=50, device="cpu", progress=False, log=lambda m: None)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_fit_reduces_loss_and_writes_run_files(tmp_path):
    train, val = make_jets(256, 1), make_jets(64, 2)
    before = jet_losses(GNNAE.from_config(_seeded(TINY_GNNAE)), val).mean()
    res = fit(dict(TINY_GNNAE), train, val, epochs=6, out_dir=tmp_path, seed=0, **KW)
    assert res.epochs_run == 6 and len(res.history) == 6
    losses = [h["train_loss"] for h in res.history]
    # Learning, not rounding: last / first epoch's train loss is 0.284 for this seed, unchanged
    # (to 4 digits) under ATEN_CPU_CAPABILITY=avx2 and under 1-ulp perturbations of the initial
    # weights, i.e. kernel changes do not move it; over torch seeds 0-9 it spans 0.16-0.68 (the
    # worst, seed 3, starts from an already low loss). 0.8 passes every seed (the former 0.7
    # was within 3 % of seed 3) and a model that does not learn stays at ~1.
    assert losses[-1] < 0.8 * losses[0]
    assert res.best_val_loss == min(h["val_loss"] for h in res.history)
    # the returned model holds the best weights; its per-jet loss on val is the val loss
    after = jet_losses(res.model, val)
    assert after.shape == (64,) and np.isfinite(after).all()
    # the same float32 network losses through two code paths (fit's validation batches vs
    # jet_losses): path_rtol = 2e-3 (lgae_hep/precision.py; measured equal). Consecutive
    # epochs' val losses differ by >= 2 %, so the best epoch is still told from its neighbours.
    assert after.mean() == pytest.approx(res.best_val_loss, rel=path_rtol(torch.float32))
    assert after.mean() < before
    for name in ("last.pt", "best.pt", "metrics.csv", "metrics.json"):
        assert (tmp_path / name).is_file()
    rows = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == list(range(6))
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 7
    best = load_model_file(tmp_path / "best.pt")
    assert torch.equal(_params(best), _params(res.model))
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 5
    assert not list(tmp_path.glob("*.tmp"))  # no leftovers of atomic writes


def _seeded(cfg):
    torch.manual_seed(0)
    return dict(cfg)


def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(tmp_path):
    train, val = make_jets(128, 1), make_jets(32, 2)
    full = fit(dict(TINY_GNNAE), train, val, epochs=4, out_dir=tmp_path / "a", seed=7, **KW)
    fit(dict(TINY_GNNAE), train, val, epochs=2, out_dir=tmp_path / "b", seed=7, **KW)
    res = fit(dict(TINY_GNNAE), train, val, epochs=4, out_dir=tmp_path / "b", seed=7,
              resume=True, **KW)
    assert res.resumed_from_epoch == 2 and res.epochs_run == 4
    a = load_checkpoint(tmp_path / "a" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [h["train_loss"] for h in res.history] == [h["train_loss"] for h in full.history]
    # resuming a finished run does nothing more
    again = fit(dict(TINY_GNNAE), train, val, epochs=4, out_dir=tmp_path / "b", seed=7,
                resume=True, **KW)
    assert again.epochs_run == 4
    # an existing run is never overwritten silently
    with pytest.raises(ValueError, match="resume"):
        fit(dict(TINY_GNNAE), train, val, epochs=4, out_dir=tmp_path / "b", seed=7, **KW)


class _NaNOnce(GNNAE):
    """GNNAE whose output becomes NaN on a chosen number of forward passes in training mode."""

    def __init__(self, *a, nan_calls=(), **k):
        super().__init__(*a, **k)
        self.calls = 0
        self.nan_calls = set(nan_calls)

    def forward(self, p4, mask, scalars=None):
        out = super().forward(p4, mask, scalars)
        if self.training:
            self.calls += 1
            if self.calls in self.nan_calls:
                out.features = out.features * float("nan")
        return out


def _cfg():
    return {k: v for k, v in TINY_GNNAE.items() if k != "architecture"}


def test_nonfinite_loss_rolls_back_and_halves_lr(tmp_path):
    train, val = make_jets(64, 1), make_jets(16, 2)
    model = _NaNOnce(**_cfg(), nan_calls={3})  # third step of epoch 1 (2 steps per epoch)
    with pytest.warns(RuntimeWarning, match="rolled back"):
        res = fit(model, train, val, epochs=3, out_dir=tmp_path, seed=0, **KW)
    assert res.epochs_run == 3
    lrs = [h["lr"] for h in res.history]
    # halving is exact; a float64 schedule product would be within a few u
    assert lrs[0] == pytest.approx(3e-3, rel=1e-12) and lrs[1] == pytest.approx(1.5e-3, rel=1e-12)
    assert all(math.isfinite(h["train_loss"]) for h in res.history)
    assert np.isfinite(_params(res.model).numpy()).all()


def test_persistent_nonfinite_loss_stops_with_clear_error(tmp_path):
    train, val = make_jets(64, 1), make_jets(16, 2)
    model = _NaNOnce(**_cfg(), nan_calls=set(range(1, 1000)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError, match="non-finite loss"):
            fit(model, train, val, epochs=3, out_dir=tmp_path, seed=0, max_nonfinite_retries=2,
                **KW)


def test_invalid_jets_dropped_with_one_warning(tmp_path):
    p4, mask = make_jets(40, 1)
    p4[3, 0, 0] = float("nan")
    p4[7, 1, 0] = -5.0  # negative energy is not caught here (prepare_data only sees finiteness)
    from lgae_hep.data import JetTensors

    valid = torch.ones(40, dtype=torch.bool)
    valid[7] = False
    jt = JetTensors(p4=p4, mask=mask, scalars=None, valid=valid, counts=mask.sum(1).numpy())
    with pytest.warns(RuntimeWarning, match="dropped 2 of 40 jets") as rec:
        q, m, s = prepare_data(jt, 8)
    assert len(rec) == 1 and len(q) == 38 and s is None and torch.isfinite(q).all()
    # pads / truncates to the model's particle count, keeping the hardest particles
    q, m, _ = prepare_data(make_jets(5, 1, num_particles=12), 8)
    assert q.shape == (5, 8, 4) and m.shape == (5, 8)
    q, m, _ = prepare_data(make_jets(5, 1, num_particles=4), 8)
    assert q.shape == (5, 8, 4) and not m[:, 4:].any()


def test_awkward_input_is_accepted(tmp_path):
    import awkward as ak
    import vector

    vector.register_awkward()
    p4, mask = make_jets(48, 3)
    recs = [[{"E": float(e), "px": float(x), "py": float(y), "pz": float(z)}
             for (e, x, y, z), m in zip(j.tolist(), mk.tolist()) if m] for j, mk in zip(p4, mask)]
    jets = ak.Array(recs, with_name="Momentum4D")
    res = fit(dict(TINY_GNNAE), jets, epochs=1, out_dir=tmp_path, val_fraction=0.25, **KW)
    assert res.epochs_run == 1
    s = jet_losses(res.model, jets)
    assert s.shape == (48,) and np.isfinite(s).all()
    s2 = jet_losses(res.model, (p4, mask))
    # float32 network scores through two code paths (awkward via to_tensors vs tensors):
    # path_rtol = 2e-3 (lgae_hep/precision.py; measured equal)
    np.testing.assert_allclose(s, s2, rtol=path_rtol(torch.float32))


@pytest.mark.parametrize(
    "data, match",
    [
        ((torch.zeros(0, 8, 4), torch.zeros(0, 8, dtype=torch.bool)), "empty"),
        ((torch.zeros(10, 8, 4), torch.zeros(10, 8, dtype=torch.bool)), "all padding"),
        ((torch.zeros(10, 8, 3), torch.zeros(10, 8, dtype=torch.bool)), r"\(B, N, 4\)"),
        ("qcd.root", "JetTensors"),
    ],
)
def test_bad_training_samples(tmp_path, data, match):
    with pytest.raises(ValueError, match=match):
        fit(dict(TINY_GNNAE), data, epochs=1, out_dir=tmp_path, **KW)
    assert not (tmp_path / "last.pt").exists()


def test_bad_arguments(tmp_path):
    train = make_jets(32, 1)
    for kw, match in [({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"),
                      ({"loss": "emd"}, "loss"), ({"scheduler": "step"}, "scheduler"),
                      ({"val_fraction": 1.5}, "val_fraction")]:
        args = dict(KW, epochs=1, out_dir=tmp_path)
        args.update(kw)
        with pytest.raises(ValueError, match=match):
            fit(dict(TINY_GNNAE), train, **args)
    with pytest.raises(ValueError, match="unknown model architecture 'transformer'.*gnnae"):
        fit({"architecture": "transformer"}, train, epochs=1, out_dir=tmp_path, **KW)


def test_unwritable_out_dir_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    calls = []
    model = GNNAE(**_cfg())
    model.register_forward_hook(lambda *a: calls.append(1))
    with pytest.raises(ValueError, match="not writable"):
        fit(model, make_jets(32, 1), epochs=1, out_dir=blocker / "run", **KW)
    assert calls == []


def test_mse_loss_needs_order_preserving_output(tmp_path):
    train, val = make_jets(64, 1), make_jets(16, 2)
    pl = dict(TINY_GNNAE, encoding="particle", latent_dim=2)
    res = fit(pl, train, val, epochs=2, out_dir=tmp_path, loss="mse", **KW)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"] * 1.5
    assert np.isfinite(jet_losses(res.model, val, loss="mse")).all()


def test_cosine_schedule_and_float64(tmp_path):
    train, val = make_jets(64, 1), make_jets(16, 2)
    res = fit(dict(TINY_GNNAE), train, val, epochs=2, out_dir=tmp_path, scheduler="cosine",
              dtype="float64", **KW)
    assert next(res.model.parameters()).dtype == torch.float64
    assert res.history[1]["lr"] < res.history[0]["lr"]


def test_epoch_size_and_time_budget(tmp_path):
    train, val = make_jets(200, 1), make_jets(16, 2)
    res = fit(dict(TINY_GNNAE), train, val, epochs=50, out_dir=tmp_path, epoch_size=40,
              max_seconds=1e-3, **KW)
    assert res.epochs_run == 1  # the budget is checked after each epoch
    assert res.history[0]["step"] == 2  # 40 jets in batches of 32
    res = fit(dict(TINY_GNNAE), train, val, epochs=3, out_dir=tmp_path, epoch_size=40,
              resume=True, **KW)
    assert res.epochs_run == 3 and res.history[-1]["step"] == 6


def test_resume_with_a_different_architecture_is_refused(tmp_path):
    from lgae_hep.checkpoint import CheckpointError

    train, val = make_jets(64, 1), make_jets(16, 2)
    fit(dict(TINY_GNNAE), train, val, epochs=1, out_dir=tmp_path, **KW)
    other = dict(TINY_GNNAE, encoding="particle", latent_dim=2)
    with pytest.raises(CheckpointError, match="cannot resume.*differs"):
        fit(other, train, val, epochs=2, out_dir=tmp_path, resume=True, **KW)
    lgae = {"architecture": "lgae", "num_particles": 8, "tau_v": 1, "encoder_channels": (2,),
            "decoder_channels": (2,)}
    with pytest.raises(CheckpointError, match="cannot resume"):
        fit(lgae, train, val, epochs=2, out_dir=tmp_path, resume=True, **KW)


def test_rare_overflowing_jet_is_left_out_after_a_roll_back(tmp_path):
    """One training jet at 1e25 GeV (finite, so the input policy keeps it) overflows the LGAE's
    polynomial layers in float32 on every pass: the same batch failed on every retry and
    training stopped. After the first roll-back each batch is checked, the jet is left out of
    its step, counted in the history and warned about, and training finishes."""
    from lgae_hep.models import build_model

    p4, mask = make_jets(96, 5)
    p4[7] = p4[7] * 1e23
    cfg = {"architecture": "lgae", "num_particles": 8, "tau_v": 2, "aggregation": "mix",
           "encoder_channels": [2], "decoder_channels": [2], "mlp_hidden": 4, "num_basis": 3}
    with pytest.warns(RuntimeWarning, match="left out of their steps"):
        res = fit(build_model(cfg), (p4, mask), epochs=3, out_dir=tmp_path, seed=0,
                  loss="chamfer-dr", **{k: v for k, v in KW.items() if k != "loss"})
    assert res.epochs_run == 3 and all(math.isfinite(h["train_loss"]) for h in res.history)
    # the jet is in the training part or in the validation split; in training it is counted
    # once per epoch, in validation it makes the validation loss non-finite instead
    dropped = [h.get("dropped_nonfinite_jets", 0) for h in res.history]
    assert dropped[-1] == 1, dropped
    assert all(np.isfinite(v.detach().numpy()).all() for v in res.model.state_dict().values()
               if v.is_floating_point())
