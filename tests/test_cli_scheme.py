"""The one CLI scheme: every subcommand's options have help; user errors are one ``error:``
line and exit code 2 (checked before any work starts); Ctrl-C exits quietly with 130."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from lgae_hep.checkpoint import save_checkpoint
from lgae_hep.cli import COMMANDS, build_parser, main
from lgae_hep.cli._common import EXIT_INTERRUPTED, EXIT_USAGE


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_has_help_and_the_shared_names(name):
    parser, module = build_parser(name)
    assert callable(module.main)
    flags = set()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"lgae-hep {name}: {action.option_strings or action.dest} has no help"
        flags.update(action.option_strings)
    # one name per concept: the old spellings are gone everywhere
    assert not flags & {"--outdir", "--out", "--no-progress", "--jets", "--max-particles"}
    if "-o" in flags:
        assert "--output" in flags
    help_text = parser.format_help()
    # flags only (models) state no default: `(default: False)` says nothing
    assert "(default:" in help_text or name in ("check-lorentz", "plot", "models")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from lgae_hep.models import LGAE

    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    m = LGAE(encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4, num_basis=2)
    return save_checkpoint(d / "tiny.pt", m)


@pytest.fixture(scope="module")
def fileset(tmp_path_factory):
    import awkward as ak
    import vector

    from lgae_hep.data import write_pfnano

    vector.register_awkward()
    d = tmp_path_factory.mktemp("cli_files")
    rng = np.random.default_rng(0)
    nc = rng.integers(5, 20, 6)
    tot = int(nc.sum())
    p = ak.zip({"pt": rng.exponential(40, tot) + 1, "eta": rng.normal(0, 0.1, tot),
                "phi": rng.normal(0, 0.1, tot), "mass": np.full(tot, 0.14)},
               with_name="Momentum4D")
    path = write_pfnano(d / "qcd.root", ak.unflatten(ak.unflatten(p, nc), np.ones(6, int)))
    fs = d / "fileset.json"
    fs.write_text(json.dumps({"QCD": [str(path)]}))
    return fs, path


def _error_line(capsys, name):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lgae-hep {name}: error: "), err
    return err[0]


def _user_error_cases(tiny_model, fileset, tmp_path):
    fs, root = fileset
    full = tmp_path / "full"
    full.mkdir()
    (full / "old.txt").write_text("previous run")
    out = str(tmp_path / "new")
    return [
        ("run", ["--fileset", str(fs), "-o", out, "--model", "no-such-model"], "unknown model"),
        ("run", ["--fileset", str(fs), "-o", out, "--model", str(tiny_model), "--device",
                 "cuda:7"], "cuda"),
        ("run", ["--fileset", str(fs), "-o", out, "--model", str(tiny_model), "--device",
                 "banana"], "not a torch device"),
        ("run", ["--fileset", str(fs), "-o", out, "--model", str(tiny_model),
                 "--num-particles", "50"], "takes 30 particles"),
        ("run", ["--fileset", str(fs), "-o", str(full), "--model", str(tiny_model)],
         "not empty"),
        ("evaluate", ["--model", "no-such-model", "--background", str(root), "--signal",
                      str(root), "-o", out], "unknown model"),
        ("evaluate", ["--model", str(tiny_model), "--background", str(root), "--signal",
                      str(root), "-o", str(full)], "not empty"),
        ("evaluate", ["--model", str(tiny_model), "--background", "missing.root", "--signal",
                      str(root), "-o", out], "does not exist"),
        ("train", ["--data", str(root), "--arch", "gnnae", "--device", "cuda", "-o", out],
         "cuda"),
        ("train", ["--data", str(root), "--arch", "gnnae", "--tau-v", "2", "-o", out],
         "lgae option"),
        ("demo", ["--model", "no-such-model", "-o", out], "unknown model"),
        ("plot", [str(tmp_path / "missing")], ""),
    ]


def test_user_errors_are_one_line_and_exit_2(tiny_model, fileset, tmp_path, capsys):
    for name, argv, fragment in _user_error_cases(tiny_model, fileset, tmp_path):
        rc = main([name, *argv])
        line = _error_line(capsys, name)
        assert rc == EXIT_USAGE, (name, argv, line)
        assert fragment in line, (name, fragment, line)
    assert not (tmp_path / "new").exists()  # nothing was written by a failed command


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--no-such-flag"])
    assert exit_info.value.code == EXIT_USAGE
    assert "error:" in capsys.readouterr().err


def test_ctrl_c_exits_quietly_with_130(monkeypatch, fileset, tmp_path, capsys):
    import lgae_hep.cli.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lgae_hep.cli.train, "fit", interrupted)
    _, root = fileset
    rc = main(["train", "--data", str(root), "--arch", "gnnae", "--num-particles", "8",
               "--latent-dim", "4", "--quiet", "-o", str(tmp_path / "run")])
    assert rc == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--resume" in err


def test_top_level_help_does_not_import_torch():
    """`lgae-hep --help` stays fast: the subcommands (and torch) load only when one runs."""
    import subprocess
    import sys

    code = ("import sys\nfrom lgae_hep.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "False"
