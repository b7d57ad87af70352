"""Model files: safe loading (no code runs), atomic writes, clear errors."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from lgae_hep.models.gnnae import GNNAE

from lgae_hep.checkpoint import (
    FORMAT,
    CheckpointError,
    load_checkpoint,
    load_model_file,
    save_checkpoint,
)

CFG = dict(encoding="jet", num_particles=8, latent_dim=4, hidden_dim=8, num_layers_encoder=1,
           num_layers_decoder=1)


def _model(**kw):
    torch.manual_seed(0)
    return GNNAE(**dict(CFG, **kw))


def _jets():
    g = torch.Generator().manual_seed(1)
    pt = torch.rand(4, 8, generator=g) * 100 + 1
    eta, phi = torch.randn(4, 8, generator=g) * 0.1, torch.randn(4, 8, generator=g) * 0.1
    p4 = torch.stack([pt * torch.cosh(eta), pt * torch.cos(phi), pt * torch.sin(phi),
                      pt * torch.sinh(eta)], -1)
    return p4, torch.ones(4, 8, dtype=torch.bool)


def test_round_trip_with_training_state(tmp_path):
    model = _model()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    p4, mask = _jets()
    model(p4, mask).features.square().sum().backward()
    opt.step()
    sched.step(0.5)
    path = save_checkpoint(tmp_path / "c.pt", model, optimizer=opt, scheduler=sched,
                           extra={"epoch": 4, "step": 10, "note": "hi",
                                  "metrics": {"auc": 0.8, "x": float("nan")}})
    ck = load_checkpoint(path)
    assert ck["format"] == FORMAT and ck["epoch"] == 4 and ck["step"] == 10
    assert ck["config"] == model.config and ck["metrics"] == {"auc": 0.8, "x": None}
    assert ck["extra"]["note"] == "hi"
    assert ck["optimizer"]["param_groups"][0]["lr"] == 1e-3
    assert ck["scheduler"]["best"] == 0.5
    assert isinstance(ck["rng"]["torch"], torch.Tensor)
    # the file is a plain weights_only archive
    torch.load(path, weights_only=True)
    loaded = load_model_file(path)
    assert not loaded.training
    for a, b in zip(model.parameters(), loaded.parameters()):
        assert torch.equal(a, b)
    torch.testing.assert_close(loaded(p4, mask).p4, model.eval()(p4, mask).p4)
    # optimizer state restores into a fresh optimizer
    opt2 = torch.optim.Adam(loaded.parameters(), 1e-3)
    opt2.load_state_dict(ck["optimizer"])
    assert len(opt2.state) == len(list(loaded.parameters()))


def test_save_rejects_non_plain_extra(tmp_path):
    with pytest.raises(ValueError, match="cannot be stored"):
        save_checkpoint(tmp_path / "c.pt", _model(), extra={"obj": object()})
    with pytest.raises(ValueError, match="architecture"):
        save_checkpoint(tmp_path / "c.pt", torch.nn.Linear(2, 2))
    assert not list(tmp_path.iterdir())


class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    good = {"format": FORMAT, "format_version": 1, "config": json.dumps(_model().config),
            "state_dict": _model().state_dict(), "payload": _Evil(marker)}
    torch.save(good, path)
    # sanity: the crafted file really runs code when unpickled unsafely
    probe = tmp_path / "probe.pt"
    torch.save({"payload": _Evil(tmp_path / "probe_ran")}, probe)
    torch.load(probe, weights_only=False)
    assert (tmp_path / "probe_ran").exists()
    for loader in (load_checkpoint, load_model_file):
        with pytest.raises(CheckpointError, match="non-tensor Python objects.*NOT loaded"):
            loader(path)
    assert not marker.exists()
    # a raw pickle (not a torch zip) with the same payload is refused too
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"payload": _Evil(marker)}))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_truncated_and_corrupt_files(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _model())
    data = path.read_bytes()
    for i, cut in enumerate((len(data) // 2, 100, 0)):
        bad = tmp_path / f"cut{i}.pt"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            load_model_file(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError):
        load_checkpoint(junk)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_not_an_lgae_checkpoint(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(_model().state_dict(), path)
    with pytest.raises(CheckpointError, match="not an lgae-hep checkpoint.*bare state_dict"):
        load_checkpoint(path)
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="not an lgae-hep checkpoint"):
        load_checkpoint(path)


def _rewrite(path: Path, **changes):
    obj = torch.load(path, weights_only=True)
    obj.update(changes)
    torch.save(obj, path)


def test_unknown_architecture_lists_known_ones(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _model())
    cfg = dict(_model().config, architecture="transformer")
    _rewrite(path, config=json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unknown model architecture 'transformer'.*gnnae"):
        load_model_file(path)


def test_shape_mismatch_names_parameter_and_shapes(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _model(latent_dim=6))
    _rewrite(path, config=json.dumps(_model().config))  # config says latent_dim=4
    with pytest.raises(CheckpointError, match=r"to_latent\.weight.*\(6, 8\).*\(4, 8\)"):
        load_model_file(path)
    sd = _model().state_dict()
    sd.pop("to_latent.bias")
    _rewrite(path, state_dict=sd)
    with pytest.raises(CheckpointError, match=r"missing parameters \['to_latent.bias'\]"):
        load_model_file(path)


def test_future_format_version(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _model())
    _rewrite(path, format_version=99)
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_checkpoint(path)


def test_atomic_write_keeps_old_file_when_save_fails(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.pt", _model())
    before = path.read_bytes()

    def boom(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _model(latent_dim=6))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    assert zipfile.is_zipfile(path)


def test_one_model_builder_and_the_architecture_registry():
    from lgae_hep import checkpoint, models

    assert checkpoint.build_model is models.build_model
    assert checkpoint.known_architectures() == tuple(sorted(models.ARCHITECTURES))
    for name, cls in models.ARCHITECTURES.items():
        assert cls.architecture == name and cls.loss_p4_scale > 0
    assert models.build_model(_model().config).config == _model().config
    with pytest.raises(ValueError, match="unknown model architecture 'transformer'"):
        models.build_model({"architecture": "transformer"})
