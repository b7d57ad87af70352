"""read_nanoaod: every source form uproot.open accepts (local 127.0.0.1 HTTP only), the
join-back index, PUPPI weighting and the dask-awkward path."""

from __future__ import annotations

import http.server
import re
import threading
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from lgae_hep.data import read_nanoaod, write_pfnano

from .conftest import make_jets


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single ``Range: bytes=a-b`` requests (what uproot/fsspec send)."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return None
        data = path.read_bytes()
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if m:
            start = int(m.group(1))
            stop = int(m.group(2)) + 1 if m.group(2) else len(data)
            body = data[start:stop]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        import io

        return io.BytesIO(body)


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("sources")
    jets = make_jets(3, n_events=25, jets_per_event=(1, 3), particles=(1, 40))
    return write_pfnano(d / "small.root", jets)


@pytest.fixture(scope="module")
def http_url(small_file):
    """A local HTTP server on 127.0.0.1 (no other network) serving the file's folder."""
    folder = str(Path(small_file).parent)

    def handler(*args, **kwargs):
        return _RangeHandler(*args, directory=folder, **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{Path(small_file).name}"
    finally:
        server.shutdown()
        server.server_close()


def _same(a, b):
    assert ak.to_list(ak.num(a, axis=-1)) == ak.to_list(ak.num(b, axis=-1))
    for f in ("pt", "eta", "phi", "mass"):
        np.testing.assert_array_equal(ak.flatten(a[f], axis=None), ak.flatten(b[f], axis=None))


def test_every_uproot_source_form(small_file, http_url):
    ref = read_nanoaod(small_file, progress=False)
    path = Path(small_file)
    forms = [
        str(path),
        f"{path}:Events",
        path.as_uri(),                      # file:///...
        f"{path.as_uri()}:Events",
        {str(path): "Events"},
        {path.as_uri(): None},              # None: the tree= argument
        [str(path)],
        http_url,
        f"{http_url}:Events",
    ]
    for form in forms:
        _same(read_nanoaod(form, progress=False), ref)
    # two sources concatenate in order
    both = read_nanoaod([path.as_uri(), {http_url: "Events"}], progress=False)
    assert len(both) == 2 * len(ref)


def test_url_errors_are_clear(small_file, http_url):
    with pytest.raises((FileNotFoundError, ValueError), match="missing.root"):
        read_nanoaod(http_url.replace("small.root", "missing.root"), progress=False)
    with pytest.raises(ValueError, match="no tree 'Nope'"):
        read_nanoaod(f"{Path(small_file).as_uri()}:Nope", progress=False)
    with pytest.raises(ValueError, match="dict sources"):
        read_nanoaod({str(small_file): 3}, progress=False)


def test_xrootd_without_backend_names_the_extra(small_file):
    try:
        import fsspec_xrootd  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"lgae-hep\[xrootd\]"):
            read_nanoaod("root://127.0.0.1:1//store/x.root", progress=False)
    else:
        pytest.skip("fsspec-xrootd installed: the missing-backend message cannot be shown")


def test_original_index_joins_back_on_the_real_fixture(pfnano_fixture):
    """pt > 1000 GeV drops jets (the fixture has 24 jets, 3 or 4 in some events): every kept
    jet's ``idx`` points at the FatJet it came from in the unselected collection."""
    import uproot

    _, sel = read_nanoaod(pfnano_fixture, with_jets=True, pt_min=1000.0, progress=False)
    fat = uproot.open(pfnano_fixture)["Events"].arrays(["FatJet_pt", "FatJet_eta", "nFatJet"])
    assert int(ak.sum(ak.num(sel, axis=1))) < int(ak.sum(fat.nFatJet))  # jets were dropped
    assert ak.any(ak.num(sel, axis=1) < fat.nFatJet)
    assert ak.all(sel.idx < fat.nFatJet)
    joined_pt = fat.FatJet_pt[sel.idx]  # NanoAOD-style join: jagged fancy index per event
    np.testing.assert_array_equal(ak.flatten(joined_pt), ak.flatten(sel.pt))
    np.testing.assert_array_equal(ak.flatten(fat.FatJet_eta[sel.idx]), ak.flatten(sel.eta))
    # a selection that drops the first jet of an event still gives the right index
    _, low = read_nanoaod(pfnano_fixture, with_jets=True, mass_range=(0.0, 60.0),
                          progress=False)
    np.testing.assert_array_equal(ak.flatten(fat.FatJet_pt[low.idx]), ak.flatten(low.pt))


def test_puppi_true_needs_the_branch(small_file):
    with pytest.raises(ValueError, match="puppi=True.*PFCands_puppiWeight"):
        read_nanoaod(small_file, puppi=True, progress=False)
    # generated files have no weights: None and False read the same
    _same(read_nanoaod(small_file, puppi=None, progress=False),
          read_nanoaod(small_file, puppi=False, progress=False))


def test_puppi_weight_zero_dropped(tmp_path):
    import uproot

    from lgae_hep.data import constituents_from_events

    src = uproot.open(write_pfnano(tmp_path / "w.root",
                                   make_jets(5, n_events=6, jets_per_event=(1, 2),
                                             particles=(3, 8))))["Events"].arrays()
    n = ak.num(src.PFCands_pt)
    w = ak.unflatten(np.tile([0.0, 0.5, 1.0], int(ak.sum(n)) // 3 + 1)[: int(ak.sum(n))], n)
    events = {f: src[f] for f in src.fields} | {"PFCands_puppiWeight": w}
    got = constituents_from_events(events, max_particles=None, flat=True)
    unw = constituents_from_events(events, max_particles=None, flat=True, puppi=False)
    assert int(ak.sum(ak.num(got))) == int(ak.sum(w > 0))
    np.testing.assert_allclose(np.sort(ak.to_numpy(ak.flatten(got.pt))),
                               np.sort(ak.to_numpy(ak.flatten(
                                   (src.PFCands_pt * w)[w > 0]))), rtol=0)
    assert int(ak.sum(ak.num(unw))) == int(ak.sum(n))


def test_dask_events_give_dask_constituents(small_file):
    dak = pytest.importorskip("dask_awkward")
    import warnings

    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = NanoEventsFactory.from_root({str(small_file): "Events"},
                                             schemaclass=PFNanoAODSchema, mode="dask",
                                             steps_per_file=2).events()
        consts, jets = read_nanoaod(events, with_jets=True, pt_min=5.0)
        assert isinstance(consts, dak.Array) and isinstance(jets, dak.Array)
        c, j = consts.compute(), jets.compute()
    ref_c, ref_j = read_nanoaod(small_file, with_jets=True, pt_min=5.0, progress=False)
    _same(c, ref_c)
    np.testing.assert_array_equal(ak.flatten(j.idx), ak.flatten(ref_j.idx))
