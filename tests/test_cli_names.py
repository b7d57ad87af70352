"""One name per concept across subcommands (issue 23, item 6): `--background` is a file,
`--background-class` a class name, `--num-jets` / `--max-jets` the counts, old spellings
warn; `evaluate` has `--device` and `--quiet`; `--version` says what is installed."""

from __future__ import annotations

import argparse
import platform

import pytest

from lgae_hep.cli import COMMANDS, build_parser, main
from lgae_hep.cli._common import EXIT_USAGE


def _visible_flags(name: str) -> set[str]:
    parser, _ = build_parser(name)
    return {f for a in parser._actions if a.help != argparse.SUPPRESS for f in a.option_strings}


def test_background_is_a_file_and_background_class_a_name_everywhere():
    ev = build_parser("evaluate")[0].parse_args(
        ["--background", "qcd.root", "--signal", "t.root", "--background-class", "QCD"])
    assert ev.background == "qcd.root" and ev.background_class == "QCD"
    run = build_parser("run")[0].parse_args(["--fileset", "f.json", "-o", "out",
                                             "--background-class", "QCD"])
    plot = build_parser("plot")[0].parse_args(["out", "--background-class", "QCD"])
    assert run.background_class == plot.background_class == "QCD"
    for name in ("run", "plot"):
        assert "--background" not in _visible_flags(name)  # a class name is never --background
        assert "--background-class" in _visible_flags(name)
    assert {"--background", "--background-class"} <= _visible_flags("evaluate")
    assert "--background-name" not in _visible_flags("evaluate")


@pytest.mark.parametrize("name, argv, dest, value", [
    ("run", ["--fileset", "f.json", "-o", "out", "--background", "QCD"], "background_class",
     "QCD"),
    ("plot", ["out", "--background", "QCD"], "background_class", "QCD"),
    ("evaluate", ["--background", "q.root", "--signal", "t.root", "--background-name", "B"],
     "background_class", "B"),
    ("demo", ["--jets-per-class", "8"], "num_jets", 8),
])
def test_old_spellings_still_work_and_warn(name, argv, dest, value):
    parser, _ = build_parser(name)
    with pytest.warns(FutureWarning, match="deprecated.*use --"):
        args = parser.parse_args(argv)
    assert getattr(args, dest) == value


def test_a_deprecated_spelling_warns_in_one_line(capsys, tmp_path):
    rc = main(["plot", str(tmp_path / "missing"), "--background", "QCD"])
    assert rc == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == ("lgae-hep plot: warning: (FutureWarning) --background is deprecated in "
                      "lgae-hep plot: use --background-class (same meaning)")
    assert err[1].startswith("lgae-hep plot: error: ")


def test_counts_are_num_jets_to_make_and_max_jets_to_use():
    spellings = {name: {f for f in _visible_flags(name) if "jets" in f} for name in COMMANDS}
    used = set().union(*spellings.values())
    assert used <= {"--num-jets", "--max-jets"}, spellings
    assert "--num-jets" in spellings["generate"] and "--num-jets" in spellings["demo"]
    assert "--max-jets" in spellings["evaluate"] and "--max-jets" in spellings["train"]
    assert build_parser("demo")[0].parse_args(["--num-jets", "8"]).num_jets == 8


@pytest.mark.parametrize("name", ["score", "run", "evaluate", "train", "compress",
                                  "decompress"])
def test_every_command_that_runs_a_model_has_device_and_quiet(name):
    assert {"--device", "--quiet"} <= _visible_flags(name)


def test_evaluate_device_is_checked_first(capsys, tmp_path):
    rc = main(["evaluate", "--background", "missing.root", "--signal", "missing.root",
               "--device", "banana", "-o", str(tmp_path / "ev"), "--quiet"])
    assert rc == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device 'banana' is not a torch device" in err[0], err


def test_version_is_informative(capsys):
    from importlib.metadata import version

    import lgae_hep

    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"lgae-hep {lgae_hep.__version__} (")
    assert f"Python {platform.python_version()}" in out
    assert f"torch {version('torch')}" in out and "awkward" in out and "coffea" in out
