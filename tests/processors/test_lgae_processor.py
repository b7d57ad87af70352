"""LGAEProcessor through coffea's Runner: executors, real PFNano, bad files, skims, bad input."""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
import uproot
import vector
from coffea import processor
from coffea.nanoevents import NanoAODSchema, PFNanoAODSchema
from lgae_hep.models import LGAE
from lgae_hep.processors import BadInputFileError, LGAEProcessor, LGAEScorer

import lgae_hep
from lgae_hep.checkpoint import save_checkpoint
from lgae_hep.data import write_pfnano
from lgae_hep.precision import path_atol, path_rtol

vector.register_awkward()

#: Scores of one float32 model through two code paths (other thread count / batch shape).
PATH_RTOL = path_rtol(torch.float32)
#: the real CMS PFNano fixture: $LGAE_HEP_PFNANO, default ../shared/fixtures/pfnano.root
FIXTURE = Path(os.environ.get("LGAE_HEP_PFNANO") or Path(__file__).resolve().parents[2].parent
               / "shared" / "fixtures" / "pfnano.root")
CHUNK = 60

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning",
                                        "ignore::DeprecationWarning")


def synth_events(n_events: int, seed: int, label: int, max_jets: int = 4):
    rng = np.random.default_rng(seed)
    nj = rng.integers(0, max_jets, n_events)
    tj = int(nj.sum())
    nc = rng.integers(1, 45, tj)
    tot = int(nc.sum())
    eta0 = np.repeat(rng.uniform(-2, 2, tj), nc)
    phi0 = np.repeat(rng.uniform(-3, 3, tj), nc)
    p = ak.zip({"pt": rng.exponential(40, tot) + 1, "eta": eta0 + rng.normal(0, .2, tot),
                "phi": phi0 + rng.normal(0, .2, tot), "mass": np.full(tot, 0.14)},
               with_name="Momentum4D")
    jets = ak.unflatten(ak.unflatten(p, nc), nj)
    return jets, ak.unflatten(np.full(tj, label, np.int32), nj)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("proc")
    out = {}
    for i, (name, label) in enumerate([("QCD", 0), ("Top", 2)]):
        jets, labels = synth_events(150, 10 + i, label)
        out[name] = write_pfnano(d / f"{name.lower()}.root", jets, jet_fields={"label": labels})
    torch.manual_seed(0)
    m = LGAE(encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4, num_basis=2)
    out["model"] = save_checkpoint(d / "tiny.pt", m)
    torch.manual_seed(0)
    m20 = LGAE(num_particles=20, encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4,
               num_basis=2)
    out["model20"] = save_checkpoint(d / "tiny20.pt", m20)
    # no jets at all in any event
    empty_jets, empty_labels = synth_events(20, 3, 0, max_jets=1)
    out["nojets"] = write_pfnano(d / "nojets.root", empty_jets, jet_fields={"label": empty_labels})
    # bad files: corrupt bytes, truncated ROOT, a ROOT file without the jet collection
    corrupt = d / "corrupt.root"
    corrupt.write_bytes(b"this is not a ROOT file" * 100)
    out["corrupt"] = corrupt
    truncated = d / "truncated.root"
    truncated.write_bytes(out["QCD"].read_bytes()[:5000])
    out["truncated"] = truncated
    nocoll = d / "nocoll.root"
    with uproot.recreate(nocoll) as f:
        f.mktree("Events", {"run": np.uint32, "luminosityBlock": np.uint32, "event": np.uint64})
        f["Events"].extend({"run": np.ones(5, np.uint32),
                            "luminosityBlock": np.ones(5, np.uint32),
                            "event": np.arange(5, dtype=np.uint64)})
    out["nocoll"] = nocoll
    out["missing"] = d / "does_not_exist.root"
    out["dir"] = d
    return out


def run(fileset, proc, executor=None, **kw):
    executor = executor or processor.IterativeExecutor(status=False)
    runner = processor.Runner(executor, schema=PFNanoAODSchema, chunksize=CHUNK, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return runner(fileset, proc, treename="Events")


def scores(out, ds):
    return out[ds]["columns"]["score"].value


@pytest.fixture(scope="module")
def reference(files):
    fileset = {"QCD": [str(files["QCD"])], "Top": [str(files["Top"])]}
    return fileset, run(fileset, LGAEProcessor(str(files["model"])))


def test_iterative_output_content(files, reference):
    fileset, out = reference
    for ds, path in (("QCD", files["QCD"]), ("Top", files["Top"])):
        o = out[ds]
        jets = lgae_hep.read_nanoaod(path, max_particles=None, flat=True)
        n = len(jets)
        assert o["cutflow"]["jets"] == o["cutflow"]["jets_selected"] == n
        assert o["cutflow"]["events"] == 150
        assert o["cutflow"]["jets_scored"] == n and o["cutflow"]["jets_invalid"] == 0
        assert o["hists"]["score"].sum(flow=True) == n
        assert list(o["hists"]["score"].axes["process"]) == [ds]
        assert o["hists"]["mass_score"].sum(flow=True) == n
        assert o["hists"]["pt_score"].sum(flow=True) == n
        lat = o["hists"]["latent"]
        assert {"s0_re", "v0_norm_re", "v1_norm_im"} <= set(lat.axes["invariant"])
        cols = o["columns"]
        assert len(cols["score"].value) == n
        assert np.all(cols["label"].value == (0 if ds == "QCD" else 2))
        assert np.all(np.isfinite(cols["latent_v0_norm_re"].value))
        # the processor (torch_threads=1) and lgae_hep.score (torch's default thread count)
        # run the same code on other kernels: they agree within the two-path float32 bound
        # (lgae_hep.precision), and bitwise once the thread count is the same
        ref = ak.to_numpy(lgae_hep.score(jets, str(files["model"])))
        np.testing.assert_allclose(cols["score"].value, ref, rtol=PATH_RTOL, atol=0)
        with torch.random.fork_rng():
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                exact = ak.to_numpy(lgae_hep.score(jets, str(files["model"])))
            finally:
                torch.set_num_threads(threads)
        np.testing.assert_array_equal(cols["score"].value, exact)
        # jet kinematics line up with the scores (file order)
        _, fat = lgae_hep.read_nanoaod(path, max_particles=None, flat=True, with_jets=True)
        np.testing.assert_allclose(cols["pt"].value, ak.to_numpy(fat.pt))
        assert o["files"] == {str(path)}


def test_output_names_the_latent_invariants(files, reference):
    """The output lists the invariant latent columns; callers never parse column names."""
    from lgae_hep.inference import empty_latent, latent_columns
    from lgae_hep.zoo import load_model

    _, out = reference
    expected = latent_columns(empty_latent(load_model(str(files["model"])), 30)).invariants
    for o in out.values():
        assert o["latent_invariants"] == expected
        assert list(o["hists"]["latent"].axes["invariant"]) == expected
        assert all(f"latent_{n}" in o["columns"] for n in expected)


def test_score_histogram_axis_comes_from_the_registry(files, reference):
    """The processor's score axis is the registry's label with the binning of
    ``score_edges`` for its metric and model (a checkpoint without a card: the registry's
    default range at the centre, widened)."""
    from lgae_hep.processors.hists import score_edges

    from lgae_hep.scoring.registry import SCORES

    _, out = reference
    proc = LGAEProcessor(str(files["model"]))
    spec = SCORES[proc.metric]
    ax = out["QCD"]["hists"]["score"].axes["score"]
    assert ax.label == spec.label
    np.testing.assert_array_equal(ax.edges, score_edges(proc.metric, proc.model))
    _, lo, hi = spec.axis
    assert ax.edges[0] < lo and ax.edges[-1] > hi


def test_defaults_come_from_the_zoo_and_the_data_module():
    import inspect

    from lgae_hep.data import DEFAULT_NUM_PARTICLES
    from lgae_hep.zoo import DEFAULT_MODEL

    params = inspect.signature(LGAEProcessor).parameters
    assert params["model"].default == DEFAULT_MODEL
    assert params["max_particles"].default == DEFAULT_NUM_PARTICLES
    assert inspect.signature(LGAEScorer).parameters["model"].default == DEFAULT_MODEL


def test_futures_and_dask_identical(files, reference):
    from dask.distributed import Client, LocalCluster

    fileset, ref = reference
    proc = LGAEProcessor(str(files["model"]))
    fut = run(fileset, proc, processor.FuturesExecutor(workers=2, status=False))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dask_out = run(fileset, proc, processor.DaskExecutor(client=client, status=False))
    for other in (fut, dask_out):
        for ds in fileset:
            assert np.array_equal(scores(other, ds), scores(ref, ds))  # bitwise
            for name, col in ref[ds]["columns"].items():
                np.testing.assert_array_equal(other[ds]["columns"][name].value, col.value)
            for name, h in ref[ds]["hists"].items():
                assert other[ds]["hists"][name] == h
            assert other[ds]["cutflow"] == ref[ds]["cutflow"]


@pytest.mark.skipif(not FIXTURE.exists(), reason=f"CMS PFNano fixture not found at {FIXTURE}")
@pytest.mark.parametrize("schema", [PFNanoAODSchema, NanoAODSchema])
def test_real_cms_pfnano(files, schema):
    runner = processor.Runner(processor.IterativeExecutor(status=False), schema=schema)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = runner({"data": [str(FIXTURE)]}, LGAEProcessor(str(files["model"]), pt_min=200.0),
                     treename="Events")
    o = out["data"]
    n_sel = o["cutflow"]["jets_selected"]
    assert o["cutflow"]["events"] == 10 and o["cutflow"]["jets"] == 24
    assert 0 < n_sel <= 24
    s = o["columns"]["score"].value
    assert len(s) == n_sel and np.all(np.isfinite(s)) and np.all(s > 0)
    assert np.all(o["columns"]["pt"].value > 200.0)
    assert "label" not in o["columns"]  # real data: no truth labels


def test_bad_files_skipped_and_reported(files, reference):
    from lgae_hep.run import run_fileset

    fileset_ref, ref = reference
    bad = {str(files[k]): k for k in ("corrupt", "truncated", "nocoll", "missing")}
    fileset = {"QCD": [str(files["QCD"]), *bad], "Top": [str(files["Top"])]}
    res = run_fileset(fileset, LGAEProcessor(str(files["model"])), executor="iterative",
                      chunksize=CHUNK, skipbadfiles=True, status=False)
    assert set(res.bad_files) == set(bad)  # exactly those files are reported
    assert "not found" in res.bad_files[str(files["missing"])]
    assert "NoSuchJet" not in res.bad_files[str(files["nocoll"])]
    assert "FatJetPFCands_jetIdx" in res.bad_files[str(files["nocoll"])]
    out = res.output
    assert out["QCD"]["files"] == {str(files["QCD"])}
    for ds in ("QCD", "Top"):  # the good files give exactly the clean run's output
        np.testing.assert_array_equal(scores(out, ds), scores(ref, ds))
        assert out[ds]["cutflow"] == ref[ds]["cutflow"]
        assert out[ds]["hists"]["score"] == ref[ds]["hists"]["score"]
    for b in bad:  # without skipbadfiles the error names the file
        with pytest.raises(ValueError, match=Path(b).name):
            run_fileset({"QCD": [str(files["QCD"]), b]}, LGAEProcessor(str(files["model"])),
                        executor="iterative", status=False)


def test_runner_skipbadfiles_alone_skips_processing_failures(files, reference):
    """Bypassing the pre-check: a file missing the collection fails inside ``process`` with
    BadInputFileError, an OSError, so coffea's own ``skipbadfiles=True`` skips it."""
    _, ref = reference
    out = run({"QCD": [str(files["QCD"]), str(files["nocoll"])]},
              LGAEProcessor(str(files["model"])), skipbadfiles=True)
    assert out["QCD"]["files"] == {str(files["QCD"])}
    np.testing.assert_array_equal(scores(out, "QCD"), scores(ref, "QCD"))


def test_missing_collection_error_names_branch(files):
    with pytest.raises(Exception) as err:
        run({"QCD": [str(files["QCD"])]}, LGAEProcessor(str(files["model"]), jets="NoSuchJet"))
    chain = []
    e = err.value
    while e is not None:
        chain.append(e)
        e = e.__cause__
    assert any(isinstance(c, BadInputFileError) for c in chain)
    assert "NoSuchJetPFCands_jetIdx" in str(err.value)


def test_events_without_jets(files):
    out = run({"empty": [str(files["nojets"])]}, LGAEProcessor(str(files["model"]), pt_min=1e6))
    o = out["empty"]
    assert o["cutflow"]["events"] == 20 and o["cutflow"]["jets_selected"] == 0
    assert len(o["columns"]["score"].value) == 0 and o["hists"]["score"].sum() == 0


def test_model_with_other_particle_count(files):
    with pytest.raises(Exception, match="built for 20 particles"):
        run({"QCD": [str(files["QCD"])]}, LGAEProcessor(str(files["model20"]), max_particles=30))


def test_unknown_model_and_bad_settings(files):
    with pytest.raises(ValueError, match="bundled models"):
        LGAEProcessor("no-such-model")
    with pytest.raises(ValueError, match="skim"):
        LGAEProcessor(str(files["model"]), skim="csv")
    with pytest.raises(ValueError, match="skim_dir"):
        LGAEProcessor(str(files["model"]), skim="root")
    with pytest.raises(ValueError, match="max_particles"):
        LGAEProcessor(str(files["model"]), max_particles=0)


def test_picklable_and_stateless(files):
    proc = LGAEProcessor(str(files["model"]))
    assert proc.scorer().model is not None  # load the model in this process
    blob = pickle.dumps(proc)
    assert len(blob) < 2000  # settings only, no weights
    scorer = proc.scorer()
    blob = pickle.dumps(scorer)
    assert pickle.loads(blob)._model is None  # model re-created lazily on the other side


@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_skim(files, tmp_path, fmt):
    before = hashlib.sha256(files["QCD"].read_bytes()).hexdigest()
    mtime = os.stat(files["QCD"]).st_mtime_ns
    proc = LGAEProcessor(str(files["model"]), skim=fmt, skim_dir=tmp_path)
    out = run({"QCD": [str(files["QCD"])]}, proc)
    written = sorted(out["QCD"]["skim_files"])
    assert len(written) == 2  # one per chunk (150 events, chunksize 60 -> 2 x 75)
    if fmt == "root":
        arrays = [uproot.open(p)["Events"].arrays() for p in written]
        assert all(uproot.open(p).classnames()["Events;1"] == "TTree" for p in written)
        skim = ak.concatenate(arrays)
        s = ak.flatten(skim["FatJet_lgaeScore"])
        assert {"run", "luminosityBlock", "event", "nFatJet"} <= set(skim.fields)
    else:
        skim = ak.concatenate([ak.from_parquet(p) for p in written])
        s = ak.flatten(skim["FatJet_lgaeScore"])
    assert "FatJet_lgaeLatent_v0_norm_re" in skim.fields
    # the skim branch holds the same number stored as float32: one round-to-nearest, so the
    # relative difference is at most the float32 unit roundoff 2**-24
    np.testing.assert_allclose(ak.to_numpy(s), scores(out, "QCD"), rtol=2.0**-24, atol=0)
    assert hashlib.sha256(files["QCD"].read_bytes()).hexdigest() == before
    assert os.stat(files["QCD"]).st_mtime_ns == mtime


def test_scorer_on_dask_awkward(files):
    dak = pytest.importorskip("dask_awkward", reason="dask-awkward not installed")

    consts = lgae_hep.read_nanoaod(files["Top"], max_particles=None)
    scorer = LGAEScorer(str(files["model"]), num_particles=30)
    eager = scorer(consts)
    lazy = scorer(dak.from_awkward(consts, npartitions=3))
    got = lazy["score"].compute()
    assert ak.num(got).tolist() == ak.num(eager["score"]).tolist()
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(got)),
                                  ak.to_numpy(ak.flatten(eager["score"])))


class _DyingProcessor(LGAEProcessor):
    """Kills its worker process on the second chunk of the file."""

    def process(self, events):
        if events.metadata["entrystart"] > 0:
            os._exit(13)
        return super().process(events)


def test_dying_futures_worker_is_reported_not_silent(files):
    proc = _DyingProcessor(str(files["model"]))
    with pytest.raises(Exception) as err:
        run({"QCD": [str(files["QCD"])]}, proc,
            processor.FuturesExecutor(workers=2, status=False))
    assert "terminated" in str(err.value).lower() or "exit" in str(err.value).lower()


def test_invalid_jets_flagged_like_the_api(files, tmp_path):
    """Same bad-input policy as lgae_hep.score: NaN score, counted, not filled."""
    jets, labels = synth_events(30, 21, 0)
    pt = ak.flatten(jets.pt, axis=None).to_numpy().copy()
    pt[5] = np.nan  # one constituent of one jet
    counts_j = ak.num(jets, axis=2)
    flat = ak.zip({"pt": pt, "eta": ak.flatten(jets.eta, axis=None),
                   "phi": ak.flatten(jets.phi, axis=None),
                   "mass": ak.flatten(jets.mass, axis=None)}, with_name="Momentum4D")
    bad_jets = ak.unflatten(ak.unflatten(flat, ak.flatten(counts_j)), ak.num(jets))
    path = write_pfnano(tmp_path / "nan.root", bad_jets, jet_fields={"label": labels,
                        "pt": ak.ones_like(labels) * 500.0, "eta": ak.zeros_like(labels) * 1.0,
                        "phi": ak.zeros_like(labels) * 1.0, "mass": ak.ones_like(labels) * 50.0})
    out = run({"bad": [str(path)]}, LGAEProcessor(str(files["model"])))["bad"]
    s = out["columns"]["score"].value
    assert out["cutflow"]["jets_invalid"] == 1 == int(np.isnan(s).sum())
    assert out["cutflow"]["jets_scored"] == len(s) - 1
    assert out["hists"]["score"].sum(flow=True) == len(s) - 1
    consts = lgae_hep.read_nanoaod(path, max_particles=None, flat=True)
    from lgae_hep.api import InvalidJetWarning

    with pytest.warns(InvalidJetWarning, match="1 jet"):
        ref = ak.to_numpy(lgae_hep.score(consts, str(files["model"])))
    np.testing.assert_array_equal(np.isnan(ref), np.isnan(s))
    # API (default threads) vs processor (1 thread): two float32 paths, lgae_hep.precision
    np.testing.assert_allclose(ref[~np.isnan(ref)], s[~np.isnan(s)], rtol=PATH_RTOL, atol=0)


def test_metric_option(files):
    """metric="chamfer-dr": the columns are lgae_hep.score(..., metric="chamfer-dr") and the
    score histogram is binned and labelled for the dimensionless metric."""
    out = run({"Top": [str(files["Top"])]}, LGAEProcessor(str(files["model"]),
                                                          metric="chamfer-dr"))["Top"]
    jets = lgae_hep.read_nanoaod(files["Top"], max_particles=None, flat=True)
    ref = ak.to_numpy(lgae_hep.score(jets, str(files["model"]), metric="chamfer-dr"))
    # API (default threads) vs processor (1 thread): two float32 paths, lgae_hep.precision;
    # jets reconstructed almost exactly score ~1e-7, where the absolute floor applies
    np.testing.assert_allclose(out["columns"]["score"].value, ref, rtol=PATH_RTOL,
                               atol=path_atol(torch.float32, "chamfer-dr"))
    h = out["hists"]["score"]
    assert "Delta R" in h.axes["score"].label
    edges = h.axes["score"].edges
    assert edges[0] < 1e-4 and edges[-1] > 10.0  # the registry's range, widened
    assert h.sum(flow=True) == len(ref)
    assert h.sum(flow=False) == np.count_nonzero((ref >= edges[0]) & (ref < edges[-1]))
    with pytest.raises(ValueError, match="chamfer-dr"):
        LGAEProcessor(str(files["model"]), metric="emd")


class _FlakyProcessor(LGAEProcessor):
    """Fails the first attempt at every chunk (a transient fault: network, a busy disk),
    remembering the attempts in marker files, so that it also works across processes."""

    def __init__(self, *args, marker_dir: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.marker_dir = marker_dir

    def process(self, events):
        marker = Path(self.marker_dir) / f"chunk_{events.metadata['entrystart']}"
        if not marker.exists():
            marker.write_text("failed once")
            raise RuntimeError(f"transient fault in chunk {events.metadata['entrystart']}")
        return super().process(events)


@pytest.mark.parametrize("executor", ["iterative", "futures"])
def test_failed_chunk_is_retried(files, reference, tmp_path, executor):
    """retries=1: every chunk fails once and succeeds on its retry; the output is the clean
    run's. retries=0: the same fault stops the run with the chunk's error."""
    from lgae_hep.run import run_fileset

    fileset = {"QCD": [str(files["QCD"])]}
    proc = _FlakyProcessor(str(files["model"]), marker_dir=str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run_fileset(fileset, proc, executor=executor, workers=2, chunksize=CHUNK,
                          retries=1, status=False)
    assert len(list(tmp_path.glob("chunk_*"))) == 2  # both chunks failed once
    if executor == "iterative":  # futures workers warn in their own processes
        assert any("attempt 1 out of 2" in str(w.message) for w in caught)
    out = res.output
    np.testing.assert_array_equal(scores(out, "QCD"), scores(reference[1], "QCD"))
    assert out["QCD"]["cutflow"] == reference[1]["QCD"]["cutflow"]
    for marker in tmp_path.glob("chunk_*"):
        marker.unlink()
    with pytest.raises(Exception, match="transient fault"):
        run_fileset(fileset, _FlakyProcessor(str(files["model"]), marker_dir=str(tmp_path)),
                    executor=executor, workers=2, chunksize=CHUNK, retries=0, status=False)
