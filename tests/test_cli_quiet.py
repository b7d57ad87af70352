"""A quiet, short command line (issue 23, item 5): `--help` fast and without repeated
defaults, warnings as one line, `--quiet` without coffea's bars or the schema's warnings, the
FastJet banner at most once, short error messages, arguments checked before any work."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from lgae_hep.cli import COMMANDS, build_parser, main
from lgae_hep.cli._common import EXIT_USAGE, LIBRARY_MIRRORS, run_command

#: the real CMS PFNano fixture: $LGAE_HEP_PFNANO, default ../shared/fixtures/pfnano.root
FIXTURE = Path(os.environ.get("LGAE_HEP_PFNANO")
               or Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
               / "pfnano.root")
needs_fixture = pytest.mark.skipif(not FIXTURE.is_file(),
                                   reason="real PFNano fixture not found (set LGAE_HEP_PFNANO)")

#: subcommands whose `--help` must import no torch, coffea or awkward (train, compress and
#: decompress build their parsers from library constants and are not covered)
FAST_HELP = ("check-lorentz", "generate", "evaluate", "run", "plot", "demo", "score", "models")


def test_subcommand_help_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from lgae_hep.cli import build_parser\n"
        f"for name in {FAST_HELP!r}:\n"
        "    build_parser(name)[0].format_help()\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'coffea', "
        "'awkward', 'uproot', 'vector'})\n"
        "print(','.join(heavy) or 'none')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "none"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_states_each_default_once(name):
    parser, _ = build_parser(name)
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        text = parser._get_formatter()._expand_help(action)
        assert text.count("(default") <= 1, (name, action.option_strings, text)
        assert "(default: None)" not in text and "(default: False)" not in text, text


@pytest.mark.parametrize("name", sorted(LIBRARY_MIRRORS))
def test_mirrored_constants_match_the_library(name):
    import importlib

    import lgae_hep.cli._common as common

    module, expr = LIBRARY_MIRRORS[name]
    assert getattr(common, name) == eval(expr, vars(importlib.import_module(module))), name


def test_warnings_are_one_line_without_the_source(capsys):
    before = warnings.showwarning

    def noisy(args):
        warnings.warn("12 jets are far\noutside the domain", UserWarning, stacklevel=1)
        warnings.warn("lgae-hep score: 3 jets", UserWarning, stacklevel=1)  # named once
        return 0

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert run_command("score", noisy, argparse.Namespace()) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lgae-hep score: warning: (UserWarning) 12 jets are far outside the domain",
                   "lgae-hep score: warning: (UserWarning) 3 jets"]
    assert warnings.showwarning is before  # only the command line changes the format


def test_argparse_errors_are_one_line_naming_the_option(capsys):
    with pytest.raises(SystemExit) as info:
        main(["score", "x.root", "-o", "x.csv", "--batch-size", "0"])
    assert info.value.code == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("lgae-hep score: error: argument --batch-size")
    assert "positive integer" in err[0] and "--help" in err[0]


def _fatjet_like(n_fields: int = 100) -> ak.Array:
    fields = {f"f{i}": np.ones(3, np.float32) for i in range(n_fields)}
    fields.update(pt=np.full(3, 500.0), msoftdrop=np.full(3, 80.0))
    jets = ak.zip(fields, with_name="FatJet")
    return ak.unflatten(jets, [2, 1])


def test_jets_instead_of_constituents_error_is_short():
    import lgae_hep

    jets = _fatjet_like()
    assert len(str(jets.type)) > 1000
    with pytest.raises(ValueError) as info:
        lgae_hep.score(jets)
    msg = str(info.value)
    assert len(msg) < 500 and "\n" not in msg, msg
    assert "FatJet[...102 fields]" in msg and "read_nanoaod" in msg


@needs_fixture
def test_real_fatjets_error_is_short():
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    import lgae_hep

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = NanoEventsFactory.from_root({str(FIXTURE): "Events"},
                                             schemaclass=PFNanoAODSchema, mode="eager").events()
    with pytest.raises(ValueError) as info:
        lgae_hep.score(events.FatJet)
    assert len(str(info.value)) < 500, len(str(info.value))


def _out_of_domain_constituents() -> ak.Array:
    """One 50 GeV jet: far below the bundled models' 800-1600 GeV."""
    return ak.Array([[{"pt": 30.0, "eta": 0.1, "phi": 0.2, "mass": 0.1},
                      {"pt": 20.0, "eta": 0.0, "phi": 0.1, "mass": 0.1}]])


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"chunk_size": -1},
                                 {"on_invalid": "ignore"}, {"metric": "no-such-score"},
                                 {"device": "banana"}])
def test_bad_arguments_fail_before_the_domain_warning(bad):
    import lgae_hep
    from lgae_hep.domain import OutsideTrainingDomainWarning

    jets = _out_of_domain_constituents()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ValueError) as info:
            lgae_hep.score(jets, **bad)
    assert not [w for w in seen if issubclass(w.category, OutsideTrainingDomainWarning)]
    assert "\n" not in str(info.value)
    # and the same jets with good arguments do warn
    with pytest.warns(OutsideTrainingDomainWarning):
        lgae_hep.score(jets)


def test_fastjet_banner_is_silenced_in_a_process():
    pytest.importorskip("fastjet")
    code = (
        "import awkward as ak, fastjet\n"
        "from lgae_hep.data.events import silence_fastjet_banner\n"
        "silence_fastjet_banner()\n"
        "one = ak.Array([[{'px': 1.0, 'py': 2.0, 'pz': 3.0, 'E': 5.0}]])\n"
        "jd = fastjet.JetDefinition(fastjet.antikt_algorithm, 0.8)\n"
        "print(len(fastjet.ClusterSequence(one, jd).inclusive_jets()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert "FastJet release" not in out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1] == "1"  # fastjet still works after it


@pytest.mark.sim
@pytest.mark.slow
def test_generate_with_two_workers_prints_the_banner_at_most_once(tmp_path):
    pytest.importorskip("fastjet")
    pytest.importorskip("pythia8mc")
    cmd = [sys.executable, "-m", "lgae_hep.cli", "generate", "--process", "qcd", "-n", "2",
           "--workers", "2", "--fast", "-o", str(tmp_path / "g.root")]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)
    assert (out.stdout + out.stderr).count("FastJet release") <= 1
    quiet = subprocess.run([*cmd, "--overwrite", "--quiet"], capture_output=True, text=True,
                           check=True, timeout=600)
    assert "FastJet release" not in quiet.stdout + quiet.stderr


@needs_fixture
def test_quiet_run_prints_no_coffea_bars_nor_schema_warnings(tmp_path, capfd):
    import json

    fs = tmp_path / "fileset.json"
    fs.write_text(json.dumps({"Data": [str(FIXTURE)]}))
    for executor, workers in (("iterative", "1"), ("futures", "1")):
        rc = main(["run", "--fileset", str(fs), "-o", str(tmp_path / executor), "--quiet",
                   "--no-plots", "--executor", executor, "--workers", workers])
        assert rc == 0
        out, err = capfd.readouterr()
        for noise in ("Preprocessing", "Processing", "Merging", "RuntimeWarning",
                      "already exists", "warnings.warn("):
            assert noise not in out + err, (executor, noise, out + err)
        # what is left: the summary, and warnings as single lines naming the command
        assert "| Data | 10 |" in out
        assert all(line.startswith("lgae-hep run: warning: ") for line in err.splitlines())
