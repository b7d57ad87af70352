"""Edge cases that just work (issue 23, item 7): an empty selection is a valid result, a CSV
that pandas reads as it is, clear errors for a missing GPU and a zero batch size, AK4 jets
refused for an AK8 model unless forced, and the domain warning for plain lists too."""

from __future__ import annotations

import json
import warnings

import awkward as ak
import numpy as np
import pytest
import torch

import lgae_hep
from lgae_hep.cli import main
from lgae_hep.cli._common import EXIT_USAGE
from lgae_hep.domain import OutsideTrainingDomainWarning


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from lgae_hep.models import LGAE

    from lgae_hep.checkpoint import save_checkpoint

    torch.manual_seed(0)
    m = LGAE(encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4, num_basis=2)
    return str(save_checkpoint(tmp_path_factory.mktemp("edge") / "tiny.pt", m))


def _write(path, collection="FatJet", n_jets=6, seed=0):
    import vector

    from lgae_hep.data import write_pfnano

    vector.register_awkward()
    rng = np.random.default_rng(seed)
    nc = rng.integers(5, 20, n_jets)
    tot = int(nc.sum())
    p = ak.zip({"pt": rng.exponential(40, tot) + 1, "eta": rng.normal(0, 0.1, tot),
                "phi": rng.normal(0, 0.1, tot), "mass": np.full(tot, 0.14)},
               with_name="Momentum4D")
    return write_pfnano(path, ak.unflatten(ak.unflatten(p, nc), np.ones(n_jets, int)),
                        collection=collection)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("edge_files")
    return {"qcd": _write(d / "qcd.root"), "sig": _write(d / "sig.root", seed=1),
            "ak4": _write(d / "ak4.root", collection="Jet", seed=2)}


def _one_error_line(capsys, name):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lgae-hep {name}: error: "), err
    return err[0]


# ---- an empty selection --------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".root", ".csv"])
def test_empty_selection_gives_every_column_and_no_rows(tiny_model, files, tmp_path, suffix):
    import pandas as pd
    import uproot

    full, empty = tmp_path / f"full{suffix}", tmp_path / f"empty{suffix}"
    common = [str(files["qcd"]), "--model", tiny_model, "--latent", "--quiet"]
    assert main(["score", *common, "-o", str(full)]) == 0
    assert main(["score", *common, "-o", str(empty), "--pt-min", "1e6"]) == 0

    def read(path):
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".root":
            return uproot.open(path)["Jets"].arrays(library="pd")
        return pd.read_csv(path)

    a, b = read(full), read(empty)
    assert len(a) == 6 and len(b) == 0
    assert list(a.columns) == list(b.columns)
    assert {"score", "jet_idx", "entry", "latent_s0_re"} <= set(b.columns)


def test_empty_selection_in_run_writes_a_summary_with_zero_counts(tiny_model, files, tmp_path,
                                                                  capsys):
    fs = tmp_path / "fileset.json"
    fs.write_text(json.dumps({"QCD": [str(files["qcd"])], "Sig": [str(files["sig"])]}))
    out = tmp_path / "run"
    rc = main(["run", "--fileset", str(fs), "--model", tiny_model, "-o", str(out),
               "--pt-min", "1e6", "--executor", "iterative", "--quiet", "--classes",
               "datasets"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["cutflow"]) == {"QCD", "Sig"}
    for c in summary["cutflow"].values():
        assert c["jets"] == 6 and c["jets_selected"] == 0 and c["jets_scored"] == 0
    assert summary["auc"] == {} and "no scored jet" in summary["auc_note"]
    assert "no scored jet" in (out / "summary.md").read_text()


# ---- CSV output: a plain table, metadata beside it -----------------------------------------


def test_csv_reads_with_plain_pandas_and_metadata_is_a_sidecar(tiny_model, files, tmp_path):
    import pandas as pd

    out = tmp_path / "x.csv"
    assert main(["score", str(files["qcd"]), "--model", tiny_model, "-o", str(out),
                 "--quiet"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns[:6]) == ["file", "entry", "run", "luminosityBlock", "event",
                                       "jet_idx"]
    assert len(table) == 6 and table["score"].dtype == np.float64
    assert np.isfinite(table["score"]).all()
    meta = json.loads((tmp_path / "x.csv.json").read_text())["lgae_hep"]
    assert meta["model"] == tiny_model and meta["files"] == [str(files["qcd"])]
    # the sidecar is part of the output: no silent replacement without --overwrite
    (tmp_path / "y.csv.json").write_text("{}")
    assert main(["score", str(files["qcd"]), "--model", tiny_model, "-o",
                 str(tmp_path / "y.csv"), "--quiet"]) == EXIT_USAGE


# ---- clear errors ----------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error(tiny_model, files, tmp_path, capsys):
    jets = lgae_hep.read_nanoaod(files["qcd"], progress=False)
    with pytest.raises(ValueError, match="no CUDA GPU; use cpu"):
        lgae_hep.score(jets, model=tiny_model, device="cuda")
    rc = main(["score", str(files["qcd"]), "--model", tiny_model, "-o",
               str(tmp_path / "s.csv"), "--device", "cuda"])
    assert rc == EXIT_USAGE
    assert "--device 'cuda'" in _one_error_line(capsys, "score")


def test_batch_size_zero_is_a_clear_error(tiny_model, files, tmp_path, capsys):
    jets = lgae_hep.read_nanoaod(files["qcd"], progress=False)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        lgae_hep.score(jets, model=tiny_model, batch_size=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        from lgae_hep.processors import LGAEProcessor

        LGAEProcessor(tiny_model, batch_size=0)
    for name, argv in (("score", [str(files["qcd"]), "-o", str(tmp_path / "s.csv")]),
                       ("run", ["--fileset", "f.json", "-o", str(tmp_path / "r")]),
                       ("evaluate", ["--background", "q.root", "--signal", "s.root"])):
        with pytest.raises(SystemExit) as info:
            main([name, *argv, "--model", tiny_model, "--batch-size", "0"])
        assert info.value.code == EXIT_USAGE
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--batch-size" in err[0] and "positive integer" in err[0]
    assert not (tmp_path / "s.csv").exists()


# ---- AK4 jets for an AK8 model ---------------------------------------------------------------


def test_ak4_jets_are_refused_for_an_ak8_model_unless_forced(files, tmp_path, capsys):
    out = tmp_path / "ak4.parquet"
    rc = main(["score", str(files["ak4"]), "--collection", "Jet", "-o", str(out), "--quiet"])
    assert rc == EXIT_USAGE and not out.exists()
    line = _one_error_line(capsys, "score")
    assert "'Jet' jets (R = 0.4)" in line and "--force" in line and "FatJet" in line
    rc = main(["run", "--fileset", "f.json", "--collection", "Jet", "-o",
               str(tmp_path / "r"), "--quiet"])
    assert rc == EXIT_USAGE and "--force" in _one_error_line(capsys, "run")
    rc = main(["score", str(files["ak4"]), "--collection", "Jet", "-o", str(out), "--quiet",
               "--force"])
    assert rc == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "(OutsideTrainingDomainWarning)" in err and "'Jet' collection" in err
    import pandas as pd

    assert len(pd.read_parquet(out)) == 6


def test_ak4_refusal_in_the_api_and_the_processor(files):
    from lgae_hep.processors import LGAEProcessor

    jets = lgae_hep.read_nanoaod(files["ak4"], jets="Jet", progress=False)
    with pytest.raises(ValueError, match="force=True"):
        lgae_hep.score(jets, collection="Jet")
    with pytest.warns(OutsideTrainingDomainWarning, match="'Jet' collection"):
        s = lgae_hep.score(jets, collection="Jet", force=True)
    assert ak.num(s, axis=0) == len(jets)
    with pytest.raises(ValueError, match="force=True"):
        LGAEProcessor("lgae-mix", jets="Jet")
    with pytest.warns(OutsideTrainingDomainWarning):
        LGAEProcessor("lgae-mix", jets="Jet", force=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutsideTrainingDomainWarning)
        LGAEProcessor("lgae-mix", jets="FatJet")  # the card's collection: silent
    with pytest.warns(OutsideTrainingDomainWarning):  # same radius, other collection: warns
        LGAEProcessor("lgae-mix", jets="GenJetAK8")


# ---- the domain warning does not depend on the container -------------------------------------


def test_domain_warning_for_python_lists_as_for_awkward_arrays():
    jets = [[{"pt": 30.0, "eta": 0.1, "phi": 0.2, "mass": 0.1},
             {"pt": 20.0, "eta": 0.0, "phi": 0.1, "mass": 0.1}]]
    results = []
    for x in (jets, ak.Array(jets)):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            results.append(ak.to_list(lgae_hep.score(x)))
        hits = [w for w in seen if issubclass(w.category, OutsideTrainingDomainWarning)]
        assert len(hits) == 1 and "1 of 1 jets" in str(hits[0].message), type(x)
    assert results[0] == results[1]
