"""fit's loop: batches sliced from tensors prepared once, host reads at the set cadence,
validation cadence and subset honoured, exact resume with both, the sampling order kept."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DistributedSampler, RandomSampler, Subset, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _jets import TINY_GNNAE, make_jets  # noqa: E402
from lgae_hep.models.gnnae import GNNAE  # noqa: E402

import lgae_hep.train as train_mod  # noqa: E402
from lgae_hep.checkpoint import load_checkpoint  # noqa: E402
from lgae_hep.train import epoch_indices, fit, val_jets, val_subset  # noqa: E402

KW = dict(lr=3e-3, patience=50, device="cpu", progress=False, log=lambda m: None)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Spy(GNNAE):
    """GNNAE recording what each forward pass receives."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.seen: list[tuple[bool, int, torch.dtype, bool]] = []

    def forward(self, p4, mask, scalars=None):
        self.seen.append((self.training, len(p4), p4.dtype, mask.dtype == torch.bool))
        return super().forward(p4, mask, scalars)


def _spy():
    torch.manual_seed(0)
    return _Spy(**{k: v for k, v in TINY_GNNAE.items() if k != "architecture"})


@pytest.mark.parametrize("epoch_size", [None, 50])
def test_epoch_order_is_the_former_dataloaders(epoch_size):
    n, seed, epoch = 97, 3, 4
    data = TensorDataset(torch.arange(n))
    if epoch_size is not None:
        g = torch.Generator().manual_seed(seed * 7_919 + epoch)
        data = Subset(data, torch.randperm(n, generator=g)[:epoch_size].tolist())
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    want = [int(data[i][0]) for i in RandomSampler(data, generator=g)]
    assert epoch_indices(n, epoch, seed, epoch_size).tolist() == want
    for world in (2, 3):
        for rank in range(world):
            s = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                   drop_last=True)
            s.set_epoch(epoch)
            want = [int(data[i][0]) for i in s]
            got = epoch_indices(n, epoch, seed, epoch_size, world, rank).tolist()
            assert got == want, (world, rank)


def test_val_size_auto_and_subset():
    # auto: 10 % of the training time at STEP_OVER_FORWARD = 3 -> 0.3 validation jets per
    # training jet between validations, at least VAL_MIN_JETS, at most all
    assert val_jets("auto", 10_000, 5_000) == 1_500
    assert val_jets("auto", 10_000, 100) == train_mod.VAL_MIN_JETS
    assert val_jets("auto", 64, 100_000) == 64
    assert val_jets(None, 10_000, 5) == 10_000 and val_jets(30, 20, 5) == 20
    sub = val_subset(100, 30, seed=1)
    assert len(sub) == 30 and len(set(sub.tolist())) == 30 and sub.tolist() == sorted(sub.tolist())
    assert torch.equal(sub, val_subset(100, 30, seed=1))
    assert torch.equal(val_subset(20, 30, seed=1), torch.arange(20))


def test_data_prepared_once_and_host_reads_at_the_cadence(tmp_path, monkeypatch):
    calls = {"prepare": 0, "reads": 0}
    import lgae_hep.fit_data as data_mod
    import lgae_hep.fit_loop as loop_mod

    real_prepare, real_reduce = data_mod.prepare_data, loop_mod.all_reduce_sum

    def prepare(*a, **k):
        calls["prepare"] += 1
        return real_prepare(*a, **k)

    def reduce(values, world, dev):
        calls["reads"] += 1
        return real_reduce(values, world, dev)

    monkeypatch.setattr(data_mod, "prepare_data", prepare)  # where fit uses them
    monkeypatch.setattr(loop_mod, "all_reduce_sum", reduce)
    model = _spy()
    # 100 jets in batches of 10: 10 batches per epoch, the host reads every 3rd and the last
    res = fit(model, make_jets(100, 1), make_jets(24, 2), epochs=2, batch_size=10,
              out_dir=tmp_path, sync_every=3, **KW)
    assert calls["prepare"] == 2  # the training and the validation sample, once each
    # per epoch: ceil(10 / 3) = 4 reads in the loop, 1 in validate, 1 in end_epoch
    assert calls["reads"] == 2 * (4 + 1 + 1)
    train_calls = [s for s in model.seen if s[0]]
    assert [s[1] for s in train_calls] == [10] * 20
    assert all(s[2] == torch.float32 and s[3] for s in model.seen)
    assert res.history[-1]["step"] == 20


def test_validation_cadence_and_subset_are_honoured(tmp_path):
    model = _spy()
    res = fit(model, make_jets(64, 1), make_jets(40, 2), epochs=5, batch_size=32, val_every=2,
              val_size=12, out_dir=tmp_path, **KW)
    assert res.val_jets == 12
    # validations after epochs 2 and 4 (cadence) and 5 (the last), 12 jets each (one batch)
    evals, epoch_of = [], 0
    for training, n, _, _ in model.seen:
        if training:
            epoch_of += n
        else:
            evals.append((epoch_of // 64, n))
    assert evals == [(2, 12), (4, 12), (5, 12)]
    validated = [not math.isnan(h["val_loss"]) for h in res.history]
    assert validated == [False, True, False, True, True]
    assert res.best_val_loss == min(h["val_loss"] for h in res.history if validated[h["epoch"]])
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 4


class _Stop(Exception):
    pass


def _stop_after(n: int):
    def log(msg: str) -> None:
        if msg.startswith(f"epoch {n}/"):  # emitted after that epoch's checkpoints
            raise _Stop
    return log


@pytest.mark.parametrize("stop_after", [2, 3])  # after a validated / an unvalidated epoch
def test_resume_is_exact_with_cadence_and_subset(tmp_path, stop_after):
    train, val = make_jets(96, 1), make_jets(40, 2)
    kw = dict(KW, epochs=5, batch_size=16, epoch_size=48, val_every=2, val_size=16, seed=4,
              scheduler="plateau", patience=2)
    full = fit(dict(TINY_GNNAE), train, val, out_dir=tmp_path / "a", **kw)
    with pytest.raises(_Stop):
        fit(dict(TINY_GNNAE), train, val, out_dir=tmp_path / "b", **dict(kw, log=_stop_after(
            stop_after)))
    res = fit(dict(TINY_GNNAE), train, val, out_dir=tmp_path / "b", resume=True, **kw)
    assert res.resumed_from_epoch == stop_after
    a = load_checkpoint(tmp_path / "a" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "last.pt")
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    key = ("train_loss", "val_loss", "lr", "step")
    rows = [[h[k] for k in key] for h in res.history]
    assert str(rows) == str([[h[k] for k in key] for h in full.history])  # NaN == NaN as text
