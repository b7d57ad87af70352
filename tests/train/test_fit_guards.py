"""fit's guards before the first epoch (disk space) and its deterministic-kernels option."""

from __future__ import annotations

import shutil
import sys
from collections import namedtuple
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _jets import TINY_GNNAE, make_jets  # noqa: E402
from lgae_hep.models.gnnae import GNNAE  # noqa: E402

import lgae_hep.fit_runtime as fit_runtime  # noqa: E402
import lgae_hep.train as train_mod  # noqa: E402
from lgae_hep.determinism import deterministic  # noqa: E402
from lgae_hep.train import fit  # noqa: E402

KW = dict(batch_size=32, lr=3e-3, patience=50, device="cpu", progress=False, log=lambda m: None)
Usage = namedtuple("Usage", "total used free")


def test_full_disk_fails_before_training(tmp_path, monkeypatch):
    calls = []
    model = GNNAE.from_config(dict(TINY_GNNAE))
    model.register_forward_hook(lambda *a: calls.append(1))
    monkeypatch.setattr(fit_runtime.shutil, "disk_usage", lambda p: Usage(10**9, 10**9, 1000))
    with pytest.raises(ValueError, match="1000 bytes free"):
        fit(model, make_jets(32, 1), epochs=1, out_dir=tmp_path / "run", **KW)
    assert calls == []  # not one forward pass
    assert not (tmp_path / "run" / "last.pt").exists()


def test_enough_disk_trains(tmp_path, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(fit_runtime.shutil, "disk_usage",
                        lambda p: Usage(*real(p)[:2], 10**8))  # 100 MB is plenty for tiny
    res = fit(dict(TINY_GNNAE), make_jets(32, 1), epochs=1, out_dir=tmp_path, **KW)
    assert (tmp_path / "last.pt").exists() and len(res.history) == 1


def test_deterministic_context_sets_and_restores_torch_flags():
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark)
    with deterministic():
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    assert (torch.are_deterministic_algorithms_enabled(),
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark) == before
    with deterministic(False):
        assert torch.are_deterministic_algorithms_enabled() == before[0]


def test_fit_deterministic_runs_under_the_flags_and_reproduces(tmp_path, monkeypatch):
    seen = []
    real_fit = train_mod._fit

    def spy(*args, **kwargs):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train_mod, "_fit", spy)
    data = make_jets(32, 1)
    a = fit(dict(TINY_GNNAE), data, epochs=2, out_dir=tmp_path / "a", deterministic=True, **KW)
    b = fit(dict(TINY_GNNAE), data, epochs=2, out_dir=tmp_path / "b", deterministic=True, **KW)
    assert seen == [True, True] and not torch.are_deterministic_algorithms_enabled()
    # same seed, same machine and threads: bitwise the same history and weights
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    for (k, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), k
