"""``lgae-hep train``: ROOT input restricted to background labels, config files, clear errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import awkward as ak
import vector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _jets import make_jets  # noqa: E402

from lgae_hep.checkpoint import load_checkpoint  # noqa: E402
from lgae_hep.cli import main  # noqa: E402
from lgae_hep.data import write_pfnano  # noqa: E402

vector.register_awkward()
TINY = ["--arch", "gnnae", "--latent-dim", "4", "--hidden-dim", "8", "--num-layers-encoder",
        "1", "--num-layers-decoder", "1", "--num-particles", "8", "--quiet"]


def _file(path: Path, n_jets: int, labels: list[int] | None) -> Path:
    p4, mask = make_jets(n_jets, seed=4)
    jets = []
    for j, m in zip(p4.numpy(), mask.numpy()):
        jets.append([{"E": float(e), "px": float(x), "py": float(y), "pz": float(z)}
                     for (e, x, y, z) in j[m]])
    arr = ak.Array([[j] for j in jets], with_name="Momentum4D")  # one jet per event
    fields = None
    if labels is not None:
        fields = {"label": ak.Array([[lab] for lab in labels])}
    return write_pfnano(path, vector.Array(arr), jet_fields=fields)


def _run(argv: list[str]) -> int:
    return main(["train", *argv])


def test_cli_trains_on_background_labels_only(tmp_path, capsys):
    labels = [0, 1, 2, 3, 4] * 12  # g, q, t, w, z
    path = _file(tmp_path / "mixed.root", 60, labels)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"batch_size": 8, "epochs": 2, "lr": 0.002}))
    rc = _run(["--data", str(path), "-o", str(tmp_path / "run"), "--config", str(cfg),
               "--val-fraction", "0.25", *TINY])
    assert rc == 0, capsys.readouterr().err
    ck = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ck["config"]["architecture"] == "gnnae" and ck["config"]["latent_dim"] == 4
    assert ck["epoch"] == 1 and ck["extra"]["batch_size"] == 8
    # 24 background jets (labels 0, 1): 18 train / 6 val -> 3 steps of 8 per epoch
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [r["step"] for r in rows] == [3, 6]
    # --resume continues the same run to more epochs
    rc = _run(["--data", str(path), "-o", str(tmp_path / "run"), "--config", str(cfg),
               "--val-fraction", "0.25", "--epochs", "3", "--resume", *TINY])
    assert rc == 0
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 2


def test_cli_errors(tmp_path, capsys):
    sig = _file(tmp_path / "sig.root", 10, [2] * 10)
    rc = _run(["--data", str(sig), "-o", str(tmp_path / "r1"), *TINY])
    assert rc == 2 and "no background jets" in capsys.readouterr().err
    assert not (tmp_path / "r1").exists()
    rc = _run(["-o", str(tmp_path / "r2"), *TINY])
    assert rc == 2 and "--data" in capsys.readouterr().err
    rc = _run(["--data", str(tmp_path / "missing.root"), "-o", str(tmp_path / "r3"), *TINY])
    assert rc == 2 and "missing.root" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    rc = _run(["--data", str(sig), "--config", str(bad), *TINY])
    assert rc == 2 and "not valid JSON" in capsys.readouterr().err
    ok = _file(tmp_path / "bkg.root", 10, None)
    rc = _run(["--data", str(ok), "--arch", "lgae", "--latent-dim", "3", "--quiet"])
    assert rc == 2 and "gnnae option" in capsys.readouterr().err
    # a file whose events hold no jets at all
    full = ak.Array([[[{"E": 10.0, "px": 1.0, "py": 2.0, "pz": 3.0}]]] * 5, with_name="Momentum4D")
    empty = write_pfnano(tmp_path / "empty.root", full[:, :0])
    rc = _run(["--data", str(empty), "-o", str(tmp_path / "r4"), *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and ("no background jets" in err or "no jets" in err), err


def test_cli_reads_as_many_particles_as_the_model_takes(tmp_path, monkeypatch, capsys):
    """--num-particles 8: the ROOT reader is asked for 8 particles per jet, not its default."""
    import lgae_hep.cli.train

    seen = []

    def fake_reader(*args, **kwargs):
        seen.append(kwargs.get("max_particles", "reader default"))
        raise ValueError("stop after reading")

    monkeypatch.setattr(lgae_hep.cli.train, "read_nanoaod", fake_reader)
    path = _file(tmp_path / "bkg.root", 4, [0, 0, 1, 1])
    rc = _run(["--data", str(path), "-o", str(tmp_path / "run"), *TINY])
    assert rc == 2 and "stop after reading" in capsys.readouterr().err
    assert seen == [8]
