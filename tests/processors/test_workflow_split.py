"""Issue 19 (splits): one dask adapter, the summary computed once, ``lgae-hep score`` on the
processor's column builder, the former import paths."""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np
import pytest
import torch
from lgae_hep.models import LGAE

from lgae_hep.checkpoint import save_checkpoint
from lgae_hep.cli import main
from lgae_hep.data import write_pfnano
from lgae_hep.data.dask_adapter import on_partitions

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::DeprecationWarning")


def _synth(n_events, seed, max_jets=3):
    rng = np.random.default_rng(seed)
    nj = rng.integers(0, max_jets, n_events)
    nc = rng.integers(1, 30, int(nj.sum()))
    tot = int(nc.sum())
    eta0 = np.repeat(rng.uniform(-2, 2, len(nc)), nc)
    phi0 = np.repeat(rng.uniform(-3, 3, len(nc)), nc)
    p = ak.zip({"pt": rng.exponential(40.0, tot) + 1, "eta": eta0 + rng.normal(0, .2, tot),
                "phi": phi0 + rng.normal(0, .2, tot), "mass": np.full(tot, 0.14)},
               with_name="Momentum4D")
    return ak.unflatten(ak.unflatten(p, nc), nj), nj


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("issue19")
    jets, nj = _synth(60, 1)
    labelled = write_pfnano(d / "labelled.root", jets,
                            jet_fields={"label": ak.unflatten(np.full(int(nj.sum()), 2, np.int32),
                                                              nj)})
    plain = write_pfnano(d / "plain.root", _synth(50, 2)[0])
    torch.manual_seed(0)
    model = str(save_checkpoint(d / "tiny.pt", LGAE(
        encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4, num_basis=2)))
    return {"labelled": labelled, "plain": plain, "model": model, "dir": d}


def _double(arr, *, factor):
    return arr * factor


def test_on_partitions_eager_typetracer_and_dask():
    import dask_awkward as dak

    arr = ak.Array([[1.0, 2.0], [], [3.0]])
    assert ak.to_list(on_partitions(_double, arr, factor=2)) == [[2.0, 4.0], [], [6.0]]
    tt = ak.Array(arr.layout.to_typetracer(forget_length=True))
    out = on_partitions(_double, tt, factor=2)
    assert ak.backend(out) == "typetracer" and str(out.type.content) == str(arr.type.content)
    lazy = on_partitions(_double, dak.from_awkward(arr, npartitions=2), factor=3, label="x3")
    assert type(lazy).__module__.startswith("dask_awkward")
    assert ak.to_list(lazy.compute()) == [[3.0, 6.0], [], [9.0]]


def test_summary_computed_once(env, tmp_path, monkeypatch):
    from lgae_hep.processors import LGAEProcessor

    from lgae_hep.workflow import make_plots, plots, run_fileset, save_output

    res = run_fileset({"QCD": [str(env["plain"])], "Top": [str(env["labelled"])]},
                      LGAEProcessor(env["model"]), executor="iterative", status=False)
    summary = save_output(res, tmp_path, background="QCD", classes="datasets")

    def fail(*args, **kwargs):
        raise AssertionError("summarize called again")

    monkeypatch.setattr(plots, "summarize", fail)
    files = make_plots(res, tmp_path, background="QCD", classes="datasets", progress=False,
                       summary=summary)
    assert {f.stem for f in files} >= {"score", "roc"}
    with pytest.raises(ValueError, match="background"):
        make_plots(res, tmp_path, background="Top", classes="datasets", progress=False,
                   summary=summary)


def test_old_import_paths():
    import lgae_hep.processors as p
    from lgae_hep.processors.lgae import BadInputFileError, LGAEProcessor, LGAEScorer

    import lgae_hep.workflow as w
    from lgae_hep.run import (
        CLASS_MODES,
        EXECUTORS,
        _classes,
        load_fileset,
        make_plots,
        plot_label,
        run_dask,
        summary_markdown,
    )

    assert (LGAEProcessor, LGAEScorer, BadInputFileError) == (p.LGAEProcessor, p.LGAEScorer,
                                                              p.BadInputFileError)
    assert (make_plots, run_dask, _classes, load_fileset) == (w.make_plots, w.run_dask,
                                                              w.split_classes, w.load_fileset)
    assert CLASS_MODES and EXECUTORS and plot_label and summary_markdown


def test_score_files_with_and_without_labels(env, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "mixed.parquet"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["score", str(env["labelled"]), str(env["plain"]), "--model", env["model"],
                     "-o", str(out), "--quiet", "--latent"]) == 0
        assert main(["score", str(env["plain"]), "--model", env["model"], "-o",
                     str(tmp_path / "plain.parquet"), "--quiet", "--latent"]) == 0
    cols = pq.read_table(out).to_pydict()
    f = np.asarray(cols["file"])
    label = np.asarray(cols["label"])
    assert set(label[f == 0]) == {2} and set(label[f == 1]) == {-1}
    alone = pq.read_table(tmp_path / "plain.parquet").to_pydict()
    assert "label" not in alone
    for name in ("score", "entry", "jet_idx", "pt", "event", "latent_s0_re"):
        np.testing.assert_array_equal(np.asarray(cols[name])[f == 1], alone[name])
    assert not list(tmp_path.glob(".*.tmp"))
