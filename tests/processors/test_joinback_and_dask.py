"""Issue 14: unique skims, the join-back index, the dask-awkward path, training-domain checks,
self-describing outputs, the new subcommands."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
import uproot
import vector
from coffea import processor
from coffea.nanoevents import PFNanoAODSchema
from lgae_hep.models import LGAE
from lgae_hep.processors import LGAEProcessor

import lgae_hep
from lgae_hep.checkpoint import save_checkpoint
from lgae_hep.cli import main
from lgae_hep.data import write_pfnano
from lgae_hep.domain import OutsideTrainingDomainWarning, TrainingDomain

vector.register_awkward()

#: the real CMS PFNano fixture: $LGAE_HEP_PFNANO, default ../shared/fixtures/pfnano.root
FIXTURE = Path(os.environ.get("LGAE_HEP_PFNANO") or Path(__file__).resolve().parents[2].parent
               / "shared" / "fixtures" / "pfnano.root")
needs_fixture = pytest.mark.skipif(not FIXTURE.exists(),
                                   reason=f"CMS PFNano fixture not found at {FIXTURE}")
CHUNK = 40

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::DeprecationWarning")


def synth(n_events, seed, label, max_jets=4, pt_scale=40.0):
    rng = np.random.default_rng(seed)
    nj = rng.integers(0, max_jets, n_events)
    tj = int(nj.sum())
    nc = rng.integers(1, 45, tj)
    tot = int(nc.sum())
    eta0 = np.repeat(rng.uniform(-2, 2, tj), nc)
    phi0 = np.repeat(rng.uniform(-3, 3, tj), nc)
    p = ak.zip({"pt": rng.exponential(pt_scale, tot) + 1, "eta": eta0 + rng.normal(0, .2, tot),
                "phi": phi0 + rng.normal(0, .2, tot), "mass": np.full(tot, 0.14)},
               with_name="Momentum4D")
    return ak.unflatten(ak.unflatten(p, nc), nj), ak.unflatten(np.full(tj, label, np.int32), nj)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("issue14")
    out = {"dir": d}
    for i, (name, label) in enumerate([("QCD", 0), ("Top", 2)]):
        jets, labels = synth(100, 30 + i, label)
        out[name] = write_pfnano(d / f"{name.lower()}.root", jets, jet_fields={"label": labels})
    # two inputs with the same file name in different folders (issue 14, point 1)
    for sub, seed in (("d1", 40), ("d2", 41)):
        (d / sub).mkdir()
        jets, labels = synth(70, seed, 0)
        out[sub] = write_pfnano(d / sub / "tree_1.root", jets, jet_fields={"label": labels})
    torch.manual_seed(0)
    out["model"] = str(save_checkpoint(d / "tiny.pt", LGAE(
        encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4, num_basis=2)))
    return out


def run(fileset, proc, executor=None, **kw):
    runner = processor.Runner(executor or processor.IterativeExecutor(status=False),
                              schema=PFNanoAODSchema, chunksize=CHUNK, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return runner(fileset, proc, treename="Events")


# -- point 1: skims never overwrite each other -----------------------------------------------
@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_same_file_name_in_two_folders_gives_two_skims(env, tmp_path, fmt):
    proc = LGAEProcessor(env["model"], skim=fmt, skim_dir=tmp_path)
    out = run({"QCD": [str(env["d1"]), str(env["d2"])]}, proc)["QCD"]
    written = sorted(out["skim_files"])
    assert len(written) == len(set(written)) == 4  # 2 files x 2 chunks (70 events, chunk 40)
    assert sorted(str(p) for p in tmp_path.rglob(f"*.{fmt}")) == written
    stems = {Path(p).name.split("_")[2] for p in written}  # tree_1_<hash>_<start>-<stop>
    assert len(stems) == 2  # one hash per input path
    read = (lambda p: uproot.open(p)["Events"].arrays()) if fmt == "root" else ak.from_parquet
    n_jets = sum(int(ak.sum(ak.num(read(p)["FatJet_lgaeScore"]))) for p in written)
    assert n_jets == out["cutflow"]["jets_selected"]  # every scored jet is in a skim


# -- point 2: join back to the NanoAOD collection --------------------------------------------
@needs_fixture
def test_skim_and_columns_join_back_on_the_real_fixture(env, tmp_path):
    proc = LGAEProcessor(env["model"], pt_min=1000.0, skim="root", skim_dir=tmp_path)
    out = run({"data": [str(FIXTURE)]}, proc)["data"]
    (skim_path,) = out["skim_files"]
    skim = uproot.open(skim_path)["Events"].arrays()
    src = uproot.open(FIXTURE)["Events"].arrays(["event", "nFatJet", "FatJet_pt",
                                                 "FatJet_eta"])
    assert np.array_equal(ak.to_numpy(skim.event), ak.to_numpy(src.event))
    assert ak.any(skim.nFatJet < src.nFatJet)  # the selection dropped jets
    idx = skim.FatJet_lgaeIdx
    assert ak.all(idx < src.nFatJet)
    # joined with the original collection: the stored pT is that jet's (float32 skim branch)
    np.testing.assert_array_equal(ak.flatten(skim.FatJet_pt),
                                  ak.flatten(ak.values_astype(src.FatJet_pt[idx], np.float32)))
    # the column output carries the same index, event by event
    cols = out["columns"]
    assert np.array_equal(cols["jet_idx"].value, ak.to_numpy(ak.flatten(idx)))
    per_event = ak.unflatten(cols["jet_idx"].value, ak.to_numpy(skim.nFatJet))
    np.testing.assert_array_equal(ak.flatten(src.FatJet_eta[per_event]), cols["eta"].value)


# -- point 6: dask-awkward end to end --------------------------------------------------------
def test_apply_to_fileset_on_a_local_cluster_equals_the_runner(env):
    from coffea.dataset_tools import apply_to_fileset
    from dask.distributed import Client, LocalCluster

    from lgae_hep.run import run_dask

    fileset = {"QCD": [str(env["QCD"])], "Top": [str(env["Top"])]}
    proc = LGAEProcessor(env["model"])
    ref = run(fileset, proc)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        got = run_dask(fileset, proc, client=client, chunksize=CHUNK, status=False)
        # the raw coffea API too: lazy dask objects until computed
        spec = {"Top": {"files": {str(env["Top"]): "Events"}}}
        lazy = apply_to_fileset(proc, spec, schemaclass=PFNanoAODSchema)
        assert type(lazy["Top"]["Top"]["hists"]["score"]).__module__.startswith("hist.dask")
        (raw,) = client.compute([lazy]).pop().result(),
    for ds in fileset:
        assert got[ds]["cutflow"] == ref[ds]["cutflow"]
        assert set(got[ds]["hists"]) == set(ref[ds]["hists"])
        for name, h in ref[ds]["hists"].items():
            assert got[ds]["hists"][name] == h, name
        assert set(got[ds]["columns"]) == set(ref[ds]["columns"])
        for name, col in ref[ds]["columns"].items():  # bitwise: same code, same threads
            np.testing.assert_array_equal(got[ds]["columns"][name].value, col.value)
        assert got[ds]["latent_invariants"] == ref[ds]["latent_invariants"]
    assert raw["Top"]["Top"]["hists"]["score"] == ref["Top"]["hists"]["score"]
    np.testing.assert_array_equal(ak.to_numpy(raw["Top"]["Top"]["columns"]["score"]),
                                  ref["Top"]["columns"]["score"].value)


def test_score_and_encode_on_dask_awkward_return_dask_awkward(env):
    dak = pytest.importorskip("dask_awkward")
    consts = lgae_hep.read_nanoaod(env["Top"], progress=False)
    lazy = lgae_hep.score(dak.from_awkward(consts, npartitions=3), env["model"])
    assert isinstance(lazy, dak.Array)
    eager = lgae_hep.score(consts, env["model"])
    got = lazy.compute()
    assert ak.num(got).tolist() == ak.num(eager).tolist()
    # the same jets through the same function: identical up to the engine's two-path bound;
    # here the partitions run in this process with the same thread count, so bitwise
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(got)), ak.to_numpy(ak.flatten(eager)))
    z = lgae_hep.encode(dak.from_awkward(consts, npartitions=2), env["model"])
    assert isinstance(z, dak.Array) and z.compute().fields == lgae_hep.encode(
        consts, env["model"]).fields


def test_dask_skim_is_refused_clearly(env, tmp_path):
    from coffea.dataset_tools import apply_to_fileset

    proc = LGAEProcessor(env["model"], skim="root", skim_dir=tmp_path)
    with pytest.raises(ValueError, match="Runner"):
        apply_to_fileset(proc, {"Top": {"files": {str(env["Top"]): "Events"}}},
                         schemaclass=PFNanoAODSchema)


# -- point 8: one histogram per name over all datasets ---------------------------------------
def test_merged_hists_have_a_process_axis_and_sum(env):
    from lgae_hep.run import run_fileset

    res = run_fileset({"Top": [str(env["Top"])], "QCD": [str(env["QCD"])]},
                      LGAEProcessor(env["model"]), executor="iterative", chunksize=CHUNK,
                      status=False)
    h = res.hists["score"]
    assert list(h.axes["process"]) == ["QCD", "Top"]  # sorted, whatever the fileset order
    total = h[{"process": sum}]
    assert total.sum(flow=True) == sum(o["cutflow"]["jets_scored"] for o in res.output.values())
    assert h[{"process": "Top"}] == res.output["Top"]["hists"]["score"][{"process": "Top"}]


# -- point 9: training domain and input structure --------------------------------------------
def test_training_domain_counted_and_warned(env):
    from lgae_hep.run import run_fileset

    domain = TrainingDomain("FatJet", (800.0, 1600.0), 2.5)
    proc = LGAEProcessor(env["model"], training_domain=domain)
    with pytest.warns(OutsideTrainingDomainWarning, match="far outside"):
        res = run_fileset({"Top": [str(env["Top"])]}, proc, executor="iterative",
                          chunksize=CHUNK, status=False)
    c = res.output["Top"]["cutflow"]
    # the synthetic jets have pT of a few hundred GeV at most: far below 400 GeV
    pt = res.output["Top"]["columns"]["pt"].value
    assert c["jets_outside_domain"] == int(np.sum(pt < 400.0)) > 0
    # AK4 jets for an AK8 domain: refused unless forced, then warned (issue 23.7)
    with pytest.raises(ValueError, match="R = 0.4.*--force"):
        LGAEProcessor(env["model"], jets="Jet", training_domain=domain)
    with pytest.warns(OutsideTrainingDomainWarning, match="'Jet' collection"):
        LGAEProcessor(env["model"], jets="Jet", training_domain=domain, force=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutsideTrainingDomainWarning)
        LGAEProcessor(env["model"])  # a model without a card has no domain: no warning


@needs_fixture
def test_score_of_fatjets_instead_of_constituents_is_a_structural_error(env):
    from coffea.nanoevents import NanoEventsFactory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = NanoEventsFactory.from_root({str(FIXTURE): "Events"},
                                             schemaclass=PFNanoAODSchema).events()
    with pytest.raises(ValueError, match=r"expects jet constituents.*read_nanoaod"):
        lgae_hep.score(events.FatJet, env["model"])
    with pytest.raises(ValueError, match="expects jet constituents"):
        lgae_hep.encode(events.FatJet, env["model"])


def test_bundled_model_warns_far_outside_its_domain(env):
    from lgae_hep.zoo import DEFAULT_MODEL, bundled_models

    if DEFAULT_MODEL not in bundled_models():
        pytest.skip("no bundled default model installed")
    from lgae_hep.domain import training_domain

    domain = training_domain(DEFAULT_MODEL)
    assert domain is not None
    consts = lgae_hep.read_nanoaod(env["Top"], progress=False)  # jets of ~100 GeV
    with pytest.warns(OutsideTrainingDomainWarning, match="far outside"):
        lgae_hep.score(consts[:5])


# -- points 3, 4, 8, 11: the CLI output folder ------------------------------------------------
@pytest.fixture(scope="module")
def fileset_json(env):
    fs = env["dir"] / "fileset.json"
    fs.write_text(json.dumps({"Top": [str(env["Top"])], "QCD": [str(env["QCD"])]}))
    return fs


def test_overwrite_clears_what_the_run_owns(env, fileset_json, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["run", "--fileset", str(fileset_json), "--model", env["model"], "--executor",
            "iterative", "-o", str(out), "--quiet", "--chunksize", str(CHUNK)]
    assert main([*base, "--skim", "root"]) == 0
    assert list((out / "skim").rglob("*.root"))
    (out / "plots" / "roc.pdf").write_text("stale figure of an older run")
    (out / "notes.txt").write_text("the user's own file")
    assert main(base) == 2  # without --overwrite: refused
    assert "--overwrite" in capsys.readouterr().err
    assert main([*base, "--overwrite", "--no-plots"]) == 0
    assert not (out / "skim").exists() and not (out / "plots").exists()
    assert (out / "notes.txt").read_text() == "the user's own file"
    summary = json.loads((out / "summary.json").read_text())
    st = summary["settings"]
    assert st["metric"] == "chamfer" and st["lgae_hep_version"] == lgae_hep.__version__
    import hashlib

    assert st["model_sha256"] == hashlib.sha256(Path(env["model"]).read_bytes()).hexdigest()
    assert list(summary["cutflow"]) == ["QCD", "Top"]  # sorted
    capsys.readouterr()
    # plot: an unknown background is a one-line error with exit code 2, naming the classes
    assert main(["plot", str(out), "--background-class", "Unknown", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lgae-hep plot: error:") and "'Unknown'" in err and "'t'" in err
    assert main(["plot", str(out), "--background-class", "QCD", "--classes", "datasets",
                 "--quiet", "--energy", "13.6", "--cms-label", "Simulation Preliminary"]) == 0
    assert {p.name for p in (out / "plots").iterdir()} >= {"roc.png", "score.png"}
    assert main(["plot", str(out), "--background-class", "Top", "--classes", "labels",
                 "--quiet"]) == 2  # "Top" is a dataset, the label classes are QCD and t


def test_class_order_and_colours_do_not_depend_on_the_executor_order(env):
    from lgae_hep.plotting import class_colors
    from lgae_hep.run import _classes, run_fileset

    res = run_fileset({"Top": [str(env["Top"])], "QCD": [str(env["QCD"])]},
                      LGAEProcessor(env["model"]), executor="iterative", chunksize=CHUNK,
                      status=False)
    forward = _classes(res.output, None, "datasets")[0]
    backward = _classes(dict(reversed(list(res.output.items()))), None, "datasets")[0]
    assert list(forward) == list(backward) == ["QCD", "Top"]
    assert class_colors(["Top", "QCD"]) == class_colors(["QCD", "Top"])


# -- point 12: the new subcommands -----------------------------------------------------------
@pytest.mark.parametrize("suffix", [".parquet", ".root", ".csv"])
def test_score_subcommand(env, tmp_path, suffix, capsys):
    out = tmp_path / f"scores{suffix}"
    rc = main(["score", str(env["Top"]), str(env["d1"]), "--model", env["model"], "-o",
               str(out), "--pt-min", "20", "--quiet"])
    assert rc == 0 and out.is_file()
    if suffix == ".parquet":
        table = ak.from_parquet(out)
        cols = {f: ak.to_numpy(table[f]) for f in table.fields}
    elif suffix == ".root":
        cols = uproot.open(out)["Jets"].arrays(library="np")
    else:
        lines = out.read_text().splitlines()  # plain CSV; metadata in scores.csv.json
        assert json.loads(Path(f"{out}.json").read_text())["lgae_hep"]["model"] == env["model"]
        names = lines[0].split(",")
        data = np.array([row.split(",") for row in lines[1:]], dtype=float)
        cols = {n: data[:, i] for i, n in enumerate(names)}
    # join back: event `entry` of file `file`, jet `jet_idx` is the scored jet
    for i, path in enumerate((env["Top"], env["d1"])):
        src = uproot.open(path)["Events"]["FatJet_pt"].array()
        sel = cols["file"] == i
        src = ak.to_list(src)
        pt = np.array([src[int(e)][int(j)] for e, j in zip(cols["entry"][sel],
                                                           cols["jet_idx"][sel])])
        np.testing.assert_allclose(cols["pt"][sel], pt, rtol=0)
        assert np.all(cols["pt"][sel] > 20)
    consts = lgae_hep.read_nanoaod(env["Top"], pt_min=20.0, flat=True, progress=False)
    ref = ak.to_numpy(lgae_hep.score(consts, env["model"]))
    from lgae_hep.precision import path_rtol

    # scorer (torch default threads) vs API: the same engine; two-path float32 bound
    np.testing.assert_allclose(cols["score"][cols["file"] == 0], ref,
                               rtol=path_rtol(torch.float32), atol=0)
    assert main(["score", str(env["Top"]), "--model", env["model"], "-o", str(out),
                 "--quiet"]) == 2  # exists: needs --overwrite
    assert main(["score", str(env["Top"]), "-o", str(tmp_path / "x.txt")]) == 2


def test_models_subcommand_lists_the_zoo(capsys):
    from lgae_hep.zoo import bundled_models

    assert main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(listed) == sorted(bundled_models())
    for name, s in listed.items():
        assert s["name"] == name and "score_metric" in s and Path(s["file"]).is_file()
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in bundled_models())


def test_roc_without_duplicate_combined_curve(tmp_path):
    from lgae_hep.metrics import anomaly_metrics
    from lgae_hep.plotting import plot_roc

    rng = np.random.default_rng(0)
    m = anomaly_metrics(rng.normal(0, 1, 500), {"t": rng.normal(1, 1, 500)})
    fig = plot_roc(m)
    names = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert not any(n.startswith("combined") for n in names)
    assert sum(n.startswith("t ") for n in names) == 1


def test_latent_labels_explain_the_names():
    from lgae_hep.plotting import latent_label

    assert "latent Lorentz scalar 0" in latent_label("s0_re")
    assert latent_label("v1_norm_im").startswith("Im") and "Minkowski" in latent_label(
        "v1_norm_im")
    assert latent_label("something_else") == "something_else"




def test_cli_dask_awkward_executor_matches_iterative(env, fileset_json, tmp_path):
    outs = {}
    for executor in ("iterative", "dask-awkward"):
        out = tmp_path / executor
        assert main(["run", "--fileset", str(fileset_json), "--model", env["model"],
                     "--executor", executor, "--workers", "1", "-o", str(out), "--quiet",
                     "--chunksize", str(CHUNK), "--no-plots"]) == 0
        outs[executor] = json.loads((out / "summary.json").read_text())
    a, b = outs["iterative"], outs["dask-awkward"]
    assert a["cutflow"] == b["cutflow"] and a["auc"] == b["auc"]
    assert b["settings"]["executor"] == "dask-awkward"
