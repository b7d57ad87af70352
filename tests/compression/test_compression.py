"""Compression (issue 15): lgae_hep.compress/decompress, compress_files/decompress_file and the
``lgae-hep compress`` / ``decompress`` commands.

Round-trip exactness: everything but the particles (event keys, jet index, the collection's
own jet fields, raw jets) comes back bit for bit. The particles of encoded jets are the model's
reconstruction: compared with :func:`lgae_hep.reconstruct` within the bound of
:mod:`lgae_hep.precision` (two evaluations of the network output on different batches differ
by at most ``2 * OUTPUT_AMPLIFICATION * u`` of the jet's momentum scale).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
import uproot
import vector
from lgae_hep.models import LGAE

import lgae_hep
from lgae_hep.checkpoint import save_checkpoint
from lgae_hep.cli import main as cli_main
from lgae_hep.compression import (
    METADATA_KEY,
    STATUS_NAMES,
    TREE,
    compress_files,
    decompress_file,
    model_checksum,
    read_compressed,
    truncate_mantissa,
    write_compressed,
)
from lgae_hep.data import read_nanoaod, to_tensors, write_pfnano
from lgae_hep.inference import InvalidJetWarning
from lgae_hep.precision import OUTPUT_AMPLIFICATION, unit_roundoff

vector.register_awkward()
# decoded particles outside the light cone are repaired with a warning (tests/compression/
# test_physical.py tests it); here it is noise
pytestmark = pytest.mark.filterwarnings(
    "ignore::lgae_hep.compression.physical.UnphysicalOutputWarning")

FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "pfnano.root"
N = 8
KEYS = ("run", "luminosityBlock", "event")
JET_KIN = ("FatJet_pt", "FatJet_eta", "FatJet_phi", "FatJet_mass")
STATUS = {v: k for k, v in STATUS_NAMES.items()}


def tiny_lgae(seed: int = 0, normalization: str = "none", dtype: str = "float32") -> LGAE:
    torch.manual_seed(seed)
    return LGAE(num_particles=N, encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4,
                num_basis=2, normalization=normalization, dtype=dtype).eval()


@pytest.fixture(scope="module")
def model() -> LGAE:
    return tiny_lgae()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt", tiny_lgae())


def make_jets(counts, seed: int = 1) -> ak.Array:
    """[jet][particle] of massive particles around a random axis (pt/eta/phi/mass)."""
    rng = np.random.default_rng(seed)
    counts = np.asarray(counts, dtype=np.int64)
    tot = int(counts.sum())
    eta0 = np.repeat(rng.uniform(-1.5, 1.5, len(counts)), counts)
    phi0 = np.repeat(rng.uniform(-3, 3, len(counts)), counts)
    return ak.unflatten(ak.zip({
        "pt": rng.exponential(40.0, tot) + 1.0,
        "eta": eta0 + rng.normal(0, 0.2, tot),
        "phi": phi0 + rng.normal(0, 0.2, tot),
        "mass": np.full(tot, 0.14),
    }, with_name="Momentum4D"), counts)


def write_events(path: Path, seed: int = 3, n_events: int = 40, nan_jet: bool = True) -> Path:
    """A PFNano file with 0..3 jets per event (some empty, one with a NaN particle), random
    event keys and a per-jet label."""
    rng = np.random.default_rng(seed)
    nj = rng.integers(0, 4, n_events)
    nj[0] = 0
    counts = rng.integers(1, 2 * N, int(nj.sum()))
    counts[1] = 0  # an empty jet
    flat = make_jets(counts, seed)
    if nan_jet:
        pt = ak.to_numpy(ak.flatten(flat.pt)).copy()
        pt[int(counts[:3].sum())] = np.nan  # first particle of the 4th jet
        flat = ak.with_field(flat, ak.unflatten(pt, counts), "pt")
    jets = ak.unflatten(flat, nj)
    label = ak.unflatten(rng.integers(0, 4, int(nj.sum())).astype(np.int32), nj)
    keys = {"run": rng.integers(1, 10**6, n_events).astype(np.uint32),
            "luminosityBlock": rng.integers(1, 10**4, n_events).astype(np.uint32),
            "event": rng.integers(1, 2**40, n_events).astype(np.uint64)}
    return write_pfnano(path, jets, jet_fields={"label": label}, event_fields=keys)


def _branches(path: Path, names) -> ak.Array:
    with uproot.open(path) as f:
        return f["Events"].arrays(list(names))


def _assert_identical(a: ak.Array, b: ak.Array) -> None:
    assert str(a.type) == str(b.type)
    assert ak.to_list(ak.num(a, axis=-1) if a.ndim > 1 else a) == \
        ak.to_list(ak.num(b, axis=-1) if b.ndim > 1 else b)
    x = np.asarray(ak.to_numpy(ak.flatten(a, axis=None)))
    y = np.asarray(ak.to_numpy(ak.flatten(b, axis=None)))
    np.testing.assert_array_equal(x, y)  # NaN == NaN here; bitwise for finite values


def _kept_sums(jets: ak.Array, n: int) -> np.ndarray:
    """(B, 4) float64 sums of the n hardest particles as the scoring engine sees them: float64
    tensors (it boosts each jet to its rest frame in float64 and casts to the model's dtype
    only for the network), summed as :func:`lgae_hep.scoring.frames.rest_frame_boosts` sums
    them. (Before compression ran through the engine, the sum was of float32 tensors.)"""
    jt = to_tensors(jets, n, dtype=torch.float64, backend="torch")
    return (jt.p4 * jt.mask.unsqueeze(-1)).sum(1).numpy()


# --------------------------------------------------------------------------------------------
# round trip through files: exact in everything but the particles
# --------------------------------------------------------------------------------------------


def _check_file_roundtrip(src: Path, comp: Path, out: Path, n: int, extra=()) -> None:
    a = _branches(src, (*KEYS, *JET_KIN, *extra))
    b = _branches(out, (*KEYS, *JET_KIN, *extra, "FatJet_lgaeIdx", "FatJet_lgaeStatus",
                        "FatJet_nConstituents", "FatJet_lgaeNOrig"))
    for k in (*KEYS, *JET_KIN, *extra):
        _assert_identical(a[k], b[k])
    # jet index: every jet kept, in order
    _assert_identical(ak.values_astype(ak.local_index(a["FatJet_pt"]), np.int32),
                      b["FatJet_lgaeIdx"])
    # the reader sees the decompressed file like any PFNano file: one list per jet, with the
    # kept multiplicity for encoded jets and all raw constituents for jets kept raw
    parts_in = read_nanoaod(src, max_particles=None, flat=True)
    parts_out = read_nanoaod(out, max_particles=None, flat=True)
    n_in = ak.to_numpy(ak.num(parts_in))
    status = ak.to_numpy(ak.flatten(b["FatJet_lgaeStatus"]))
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(b["FatJet_lgaeNOrig"])), n_in)
    enc = status == STATUS["encoded"]
    want = np.where(enc, np.minimum(n_in, n), n_in)
    np.testing.assert_array_equal(ak.to_numpy(ak.num(parts_out)), want)
    raw = ~enc
    if raw.any():  # raw jets: their constituents exactly
        for f in ("pt", "eta", "phi", "mass", "charge", "pdgId"):
            if f in ak.fields(parts_in):
                _assert_identical(parts_in[raw][f], parts_out[raw][f])
    # the stored 4-momentum is the sum of the kept particles the model saw, at full precision
    c = read_compressed(comp)
    stored = np.stack([ak.to_numpy(ak.flatten(c.jets[k])) for k in ("E", "px", "py", "pz")], 1)
    kept = _kept_sums(parts_in, n)
    np.testing.assert_array_equal(stored[enc], kept[enc])


def test_file_roundtrip_exact_on_real_fixture(tmp_path):
    if not FIXTURE.exists():
        pytest.skip(f"real CMS PFNano fixture not found at {FIXTURE} (looked under "
                    "../shared/fixtures relative to the repository root)")
    comp, out = tmp_path / "c.root", tmp_path / "d.root"
    summary = compress_files([FIXTURE], comp, "lgae-mix", progress=False)
    assert summary["n_jets"] > 0 and summary["n_events"] == 10
    decompress_file(comp, out, progress=False)
    n = lgae_hep.load_model("lgae-mix").config["num_particles"]
    _check_file_roundtrip(FIXTURE, comp, out, n)


def test_file_roundtrip_exact_on_generated_file(tmp_path, model_file):
    src = write_events(tmp_path / "gen.root")
    comp, out = tmp_path / "c.root", tmp_path / "d.root"
    with pytest.warns(InvalidJetWarning, match="raw constituents"):
        summary = compress_files([src], comp, model_file, compression="zlib:1", progress=False)
    assert summary["status_counts"]["invalid"] == 1
    assert summary["status_counts"]["empty"] == 1
    decompress_file(comp, out, progress=False)
    _check_file_roundtrip(src, comp, out, N, extra=("FatJet_label",))
    with uproot.open(comp) as f:
        meta = json.loads(str(f[METADATA_KEY]))
    assert meta["model"]["file_sha256"] and meta["model"]["checksum"]
    assert meta["n_events"] == 40 and meta["status_counts"]["encoded"] == summary["n_jets"] - 2


def test_two_inputs_and_selection_keep_original_indices(tmp_path, model_file):
    a = write_events(tmp_path / "a.root", seed=5, nan_jet=False)
    b = write_events(tmp_path / "b.root", seed=6, nan_jet=False)
    comp, out = tmp_path / "c.root", tmp_path / "d.root"
    compress_files([a, b], comp, model_file, pt_min=60.0, progress=False)
    decompress_file(comp, out, progress=False)
    orig = ak.concatenate([_branches(p, (*KEYS, "FatJet_pt", "FatJet_eta")) for p in (a, b)])
    got = _branches(out, (*KEYS, "lgaeSource", "FatJet_pt", "FatJet_eta", "FatJet_lgaeIdx"))
    for k in KEYS:
        _assert_identical(orig[k], got[k])
    np.testing.assert_array_equal(ak.to_numpy(got["lgaeSource"]),
                                  np.repeat([0, 1], [40, 40]))
    sel = orig["FatJet_pt"] > 60.0
    _assert_identical(orig["FatJet_pt"][sel], got["FatJet_pt"])
    _assert_identical(orig["FatJet_eta"][sel], got["FatJet_eta"])
    idx = ak.values_astype(ak.local_index(orig["FatJet_pt"])[sel], np.int32)
    _assert_identical(idx, got["FatJet_lgaeIdx"])


def test_decompressed_file_reads_with_coffea(tmp_path, model_file):
    pytest.importorskip("coffea")
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    src = write_events(tmp_path / "gen.root", nan_jet=False)
    comp, out = tmp_path / "c.root", tmp_path / "d.root"
    compress_files([src], comp, model_file, progress=False)
    decompress_file(comp, out, progress=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Missing cross-reference")
        events = NanoEventsFactory.from_root({str(out): "Events"}, schemaclass=PFNanoAODSchema,
                                             mode="eager").events()
    pf = events.FatJet.constituents.pf
    ours = read_nanoaod(out, max_particles=None)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(pf.pt, axis=None)),
                                  ak.to_numpy(ak.flatten(ours.pt, axis=None)))


# --------------------------------------------------------------------------------------------
# in memory: the particles are the model's reconstruction
# --------------------------------------------------------------------------------------------


def _cartesian(jets: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """[jet][particle] px/py/pz/E records -> (B, N, 4) padded (E, px, py, pz), mask."""
    jt = to_tensors(jets, N, dtype=np.float64, backend="numpy")
    return jt.p4, jt.mask


@pytest.mark.parametrize("normalization", ["none", "mass"])
def test_decompress_equals_reconstruct(normalization):
    m = tiny_lgae(normalization=normalization)
    jets = make_jets([5, 8, 12, 3, 7] * 20, seed=2)  # 12 > N: truncated to the N hardest
    c = lgae_hep.compress(jets, m)
    assert (ak.to_numpy(c.jets.status) == STATUS["encoded"]).all()
    assert c.metadata["model"]["normalization"] == normalization
    rec = lgae_hep.decompress(c, m, physical=False, batch_size=7)  # other batches than encode
    ref = lgae_hep.reconstruct(jets, m)
    np.testing.assert_array_equal(ak.to_numpy(ak.num(rec)), ak.to_numpy(ak.num(ref)))
    p_rec, mask = _cartesian(rec)
    p_ref, _ = _cartesian(ref)
    # two evaluations of the output on different kernels: 2 * OUTPUT_AMPLIFICATION * u of the
    # jet's momentum scale (its energy)
    scale = _kept_sums(jets, N)[:, 0]
    tol = 2 * OUTPUT_AMPLIFICATION * unit_roundoff("float32") * scale[:, None, None]
    assert np.all(np.abs(p_rec - p_ref)[mask] <= np.broadcast_to(tol, p_rec.shape)[mask])


@pytest.mark.parametrize("normalization", ["none", "mass"])
def test_latent_is_the_scoring_engines(normalization):
    """compress encodes through the engine (encode-only mode, each jet in its rest frame): with
    the same batch size (same kernels) the stored latent is the engine's lab-frame latent of
    lgae_hep.inference.run_chunks rounded to float32, bitwise."""
    from lgae_hep.inference import run_chunks

    m = tiny_lgae(normalization=normalization)
    jets = make_jets([5, 8, 12, 3, 7, 1] * 7, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InvalidJetWarning)  # the one-particle jets (mass)
        c = lgae_hep.compress(jets, m, batch_size=16)
        ref = run_chunks(jets, m, batch_size=16, want_latent=True).result.latent
    enc = ak.to_numpy(c.jets.status) == STATUS["encoded"]
    assert enc.sum() >= 35
    flat = np.concatenate([np.stack([ref[k].real, ref[k].imag], -1).reshape(len(enc), -1)
                           for k in sorted(ref)], axis=1)
    np.testing.assert_array_equal(ak.to_numpy(c.jets.latent)[enc], flat[enc].astype(np.float32))


def test_decompress_physical_is_physical_with_the_decoded_jet_sum(model):
    """physical=True: every particle on or inside the light cone, each jet summing to the
    decoder's (issue 22; the repair and its bounds: tests/compression/test_physical.py)."""
    from lgae_hep.compression.physical import UnphysicalOutputWarning

    jets = make_jets([6, 9, 4] * 10, seed=4)
    c = lgae_hep.compress(jets, model)
    raw = lgae_hep.decompress(c, model, physical=False)
    n_bad = int(ak.sum(raw.E < np.sqrt(raw.px ** 2 + raw.py ** 2 + raw.pz ** 2)))
    if n_bad:
        n_all = int(ak.sum(ak.num(raw)))
        with pytest.warns(UnphysicalOutputWarning, match=f"{n_bad} of {n_all} decoded particles"):
            phys = lgae_hep.decompress(c, model)
    else:
        phys = lgae_hep.decompress(c, model)
    assert ak.all(phys.mass >= 0) and ak.all(phys.E >= 0)
    a, b = ak.sum(phys, axis=1), ak.sum(raw, axis=1)
    tot = np.stack([ak.to_numpy(getattr(b, k)) for k in ("E", "px", "py", "pz")], 1)
    m2 = tot[:, 0] ** 2 - (tot[:, 1:] ** 2).sum(1)
    ok = (tot[:, 0] > 0) & (m2 > 0)  # a non-timelike decoded jet has no physical split
    assert ok.sum() >= 5
    scale = np.abs(tot).sum(1) * tot[:, 0] ** 2 / np.where(ok, m2, 1)  # boost: gamma^2
    for i, k in enumerate(("E", "px", "py", "pz")):
        d = np.abs(ak.to_numpy(getattr(a, k)) - tot[:, i])
        assert np.all(d[ok] <= 64 * 9 * unit_roundoff("float64") * scale[ok])
    assert ak.all(phys.pt[:, :-1] >= phys.pt[:, 1:])  # sorted like PFNano


def test_outer_structure_and_indices(model):
    flat = make_jets([3, 4, 0, 5, 2, 6], seed=5)
    jets = ak.unflatten(flat, [2, 0, 3, 1])
    c = lgae_hep.compress(jets, model)
    assert ak.to_list(ak.num(c.jets)) == [2, 0, 3, 1]
    assert ak.to_list(c.jets.index) == [[0, 1], [], [0, 1, 2], [0]]
    rec = lgae_hep.decompress(c, model)
    assert ak.to_list(ak.num(rec, axis=2)) == [[3, 4], [], [0, 5, 2], [6]]


def test_write_compressed_roundtrip(tmp_path, model):
    jets = ak.unflatten(make_jets([3, 4, 0, 5, 2, 6], seed=10), [2, 0, 3, 1])
    c = lgae_hep.compress(jets, model, mantissa_bits=12)
    path = write_compressed(c, tmp_path / "c.root", compression="zlib:1")
    back = read_compressed(path)
    for f in ("index", "status", "n", "n_orig", "E", "px", "py", "pz", "latent"):
        _assert_identical(c.jets[f], back.jets[f])
    np.testing.assert_array_equal(back.events["event"], np.arange(1, 5))
    a, b = lgae_hep.decompress(c, model), lgae_hep.decompress(back, model)
    for f in ("pt", "eta", "phi", "mass"):
        _assert_identical(a[f], b[f])


# --------------------------------------------------------------------------------------------
# latent precision
# --------------------------------------------------------------------------------------------


def test_truncate_mantissa_rounds_to_nearest_and_zeroes_low_bits():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=10_000) * 10.0 ** rng.integers(-8, 8, 10_000)).astype(np.float32)
    for bits in (1, 7, 10, 16, 22):
        y = truncate_mantissa(x, bits)
        low = y.view(np.uint32) & np.uint32((1 << (23 - bits)) - 1)
        assert not low.any()
        # round to nearest: half a unit in the last kept place, 2^-(bits+1) relative
        assert np.all(np.abs(y.astype(np.float64) - x) <= 2.0 ** -(bits + 1) * np.abs(x))
    # ties to even: 1 + 2^-2 with one mantissa bit kept -> 1 (even), 1 + 3 * 2^-2 -> 2
    np.testing.assert_array_equal(truncate_mantissa(np.float32([1.25, 1.75]), 1), [1.0, 2.0])
    special = np.float32([np.nan, np.inf, -np.inf, 0.0])
    np.testing.assert_array_equal(truncate_mantissa(special, 5), special)
    np.testing.assert_array_equal(truncate_mantissa(x, 23), x)
    with pytest.raises(ValueError, match="mantissa bits"):
        truncate_mantissa(x, 0)


def test_stored_latent_precision(model):
    jets = make_jets([5, 7, 3, 8], seed=6)
    full = lgae_hep.compress(jets, model)
    z32 = ak.to_numpy(full.jets.latent)
    assert z32.dtype == np.float32
    half = lgae_hep.compress(jets, model, latent_dtype="float16")
    np.testing.assert_array_equal(ak.to_numpy(half.jets.latent).view(np.float16),
                                  z32.astype(np.float16))
    trunc = lgae_hep.compress(jets, model, mantissa_bits=8)
    np.testing.assert_array_equal(ak.to_numpy(trunc.jets.latent), truncate_mantissa(z32, 8))
    assert lgae_hep.decompress(half, model) is not None
    with pytest.raises(ValueError, match="latent_dtype"):
        lgae_hep.compress(jets, model, latent_dtype="bfloat16")


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------


def test_invalid_and_empty_jets_are_kept_not_dropped(model):
    jets = make_jets([4, 0, 6, 5], seed=7)
    pt = ak.to_numpy(ak.flatten(jets.pt)).copy()
    pt[4 + 2] = np.nan  # third particle of jet 2
    jets = ak.with_field(jets, ak.unflatten(pt, [4, 0, 6, 5]), "pt")
    with pytest.warns(InvalidJetWarning, match="1 with non-finite or unphysical"):
        c = lgae_hep.compress(jets, model)
    assert ak.to_list(c.jets.status) == [STATUS["encoded"], STATUS["empty"],
                                         STATUS["invalid"], STATUS["encoded"]]
    rec = lgae_hep.decompress(c, model)
    assert ak.to_list(ak.num(rec)) == [4, 0, 6, 5]
    for f in ("pt", "eta", "phi", "mass"):  # the invalid jet exactly as given, NaN included
        np.testing.assert_array_equal(ak.to_numpy(rec[2][f]), ak.to_numpy(jets[2][f]))
    with pytest.raises(ValueError):
        lgae_hep.compress(jets, model, on_invalid="raise")


def test_unresolved_mass_is_kept_raw_under_mass_normalisation():
    m = tiny_lgae(normalization="mass")
    jets = make_jets([1, 5], seed=8)
    mass = ak.to_numpy(ak.flatten(jets.mass)).copy()
    mass[0] = 0.0  # a massless one-particle jet: m = 0, no resolved mass
    jets = ak.with_field(jets, ak.unflatten(mass, [1, 5]), "mass")
    with pytest.warns(InvalidJetWarning, match="1 whose\\s+mass is not resolved"):
        c = lgae_hep.compress(jets, m)
    assert ak.to_list(c.jets.status) == [STATUS["unresolved"], STATUS["encoded"]]
    rec = lgae_hep.decompress(c, m)
    for f in ("pt", "eta", "phi", "mass"):
        np.testing.assert_array_equal(ak.to_numpy(rec[0][f]), ak.to_numpy(jets[0][f]))


def test_other_model_is_an_error(tmp_path, model, model_file):
    jets = make_jets([5, 6], seed=9)
    c = lgae_hep.compress(jets, model)
    with pytest.raises(ValueError, match="model mismatch"):
        lgae_hep.decompress(c, tiny_lgae(seed=1))
    # the same weights loaded in float64 are the same model
    m64 = lgae_hep.load_model(model_file, dtype="float64")
    assert m64.dtype == torch.float64
    assert model_checksum(m64) == model_checksum(model)
    src = write_events(tmp_path / "gen.root", nan_jet=False)
    comp = tmp_path / "c.root"
    compress_files([src], comp, model_file, progress=False)
    other = save_checkpoint(tmp_path / "other.pt", tiny_lgae(seed=1))
    with pytest.raises(ValueError, match="model mismatch"):
        decompress_file(comp, tmp_path / "d.root", other)


def test_file_without_the_jet_collection_is_an_error(tmp_path, model_file):
    src = write_events(tmp_path / "gen.root", nan_jet=False)
    with pytest.raises(ValueError, match="'JetPFCands_jetIdx'.*not found"):
        compress_files([src], tmp_path / "c.root", model_file, collection="Jet")
    with pytest.raises(FileNotFoundError):
        compress_files([tmp_path / "missing.root"], tmp_path / "c.root", model_file)


def _nan_latent(a):
    """A rewrite that puts a NaN into the first latent component of the first jet."""
    z = a["FatJet_lgaeZ0"]
    flat = ak.to_numpy(ak.flatten(z)).copy()
    flat[0] = np.nan
    a["FatJet_lgaeZ0"] = ak.unflatten(flat, ak.num(z))


def _rewrite(src: Path, dst: Path, change, meta=None) -> None:
    """Copy a compressed file branch by branch, applying ``change(dict of arrays)`` (and
    ``meta(json string)`` to the metadata)."""
    with uproot.open(src) as f:
        t = f[TREE]
        arrays = {k: t[k].array() for k in t.keys() if not k.startswith("n")}
        meta = str(f[METADATA_KEY]) if meta is None else meta(str(f[METADATA_KEY]))
    change(arrays)
    with uproot.recreate(dst) as f:
        f.mktree(TREE, {k: v.type if isinstance(v, ak.Array) else v.dtype
                        for k, v in arrays.items()})
        f[TREE].extend(arrays)
        f[METADATA_KEY] = meta


def test_corrupt_compressed_files_are_errors(tmp_path, model_file):
    src = write_events(tmp_path / "gen.root", nan_jet=False)
    comp = tmp_path / "c.root"
    compress_files([src], comp, model_file, progress=False)
    assert read_compressed(comp).n_jets > 0

    bad = tmp_path / "missing_branch.root"
    _rewrite(comp, bad, lambda a: a.pop("FatJet_lgaeZ3"))
    with pytest.raises(ValueError, match="FatJet_lgaeZ3.*missing"):
        read_compressed(bad)

    bad = tmp_path / "nan_latent.root"
    _rewrite(comp, bad, _nan_latent)
    with pytest.raises(ValueError, match="corrupt latent"):
        decompress_file(bad, tmp_path / "d.root")

    def wrong_type(a):
        a["FatJet_lgaeZ1"] = ak.values_astype(a["FatJet_lgaeZ1"], np.float64)

    bad = tmp_path / "wrong_type.root"
    _rewrite(comp, bad, wrong_type)
    with pytest.raises(ValueError, match="corrupt latent branch FatJet_lgaeZ1"):
        read_compressed(bad)

    # a PFNano file is not a compressed file
    with pytest.raises(ValueError, match="not an lgae-hep compressed file"):
        read_compressed(src)
    # damaged bytes: an error, never a silent partial result
    damaged = tmp_path / "damaged.root"
    shutil.copy(comp, damaged)
    with uproot.open(comp) as f:  # inside the first basket of a latent branch
        branch = f[TREE]["FatJet_lgaeZ0"]
        seek = int(branch.member("fBasketSeek")[0])
        nbytes = int(branch.member("fBasketBytes")[0])
    data = bytearray(damaged.read_bytes())
    data[seek + nbytes - 40: seek + nbytes - 8] = bytes(32)
    damaged.write_bytes(bytes(data))
    with pytest.raises((ValueError, OSError)):
        read_compressed(damaged)


def test_bad_files_are_errors_that_name_the_file(tmp_path, model_file):
    """Issue 22: truncated files, damaged baskets, NaN latents and another model: ValueError
    naming the compressed file, and no partial output left behind."""
    import re

    src = write_events(tmp_path / "gen.root", nan_jet=False)
    comp = tmp_path / "c.root"
    compress_files([src], comp, model_file, progress=False, compression="zlib:1")
    data = comp.read_bytes()
    out = tmp_path / "d.root"
    for cut in (len(data) // 2, len(data) - 200):  # truncated: baskets or the directory lost
        bad = tmp_path / f"truncated_{cut}.root"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=re.escape(str(bad))):
            decompress_file(bad, out, progress=False)
        assert not out.exists()
    with uproot.open(comp) as f:  # damaged bytes inside the first basket of a latent branch
        branch = f[TREE]["FatJet_lgaeZ0"]
        seek = int(branch.member("fBasketSeek")[0])
        nbytes = int(branch.member("fBasketBytes")[0])
    damaged = tmp_path / "damaged.root"
    buf = bytearray(data)
    buf[seek + nbytes - 40: seek + nbytes - 8] = bytes(32)
    damaged.write_bytes(bytes(buf))
    with pytest.raises(ValueError, match=re.escape(str(damaged))):
        decompress_file(damaged, out, progress=False)
    assert not out.exists()

    bad = tmp_path / "nan_latent.root"
    _rewrite(comp, bad, _nan_latent)
    with pytest.raises(ValueError, match=re.escape(str(bad)) + ".*corrupt latent"):
        decompress_file(bad, out, progress=False)
    assert not out.exists()
    other = save_checkpoint(tmp_path / "other.pt", tiny_lgae(seed=1))
    with pytest.raises(ValueError, match=re.escape(str(comp)) + ".*model mismatch"):
        decompress_file(comp, out, other, progress=False)

    def newer(meta):
        m = json.loads(meta)
        m["format_version"] = 99
        return json.dumps(m)

    bad = tmp_path / "newer.root"
    _rewrite(comp, bad, lambda a: None, meta=newer)
    with pytest.raises(ValueError, match=re.escape(str(bad)) + ".*newer"):
        decompress_file(bad, out, progress=False)


def test_decompress_file_streams_in_chunks(tmp_path, model_file, monkeypatch):
    """Issue 22.4: decompress_file holds one chunk of step_size events at a time (read with
    uproot's iterate), never the whole file; the output equals that of one big chunk."""
    import lgae_hep.compression.driver as driver
    from lgae_hep.compression.fileformat import CompressedFileReader

    src = write_events(tmp_path / "gen.root", n_events=40, nan_jet=False)
    comp = tmp_path / "c.root"
    compress_files([src], comp, model_file, progress=False)
    whole = tmp_path / "whole.root"
    decompress_file(comp, whole, progress=False, step_size=10**6)

    held: list[int] = []  # events of every chunk turned into CompressedJets
    decoded: list[int] = []  # jets of every decoder call
    to_jets, decode = CompressedFileReader._compressed, driver.decode_jets

    def spy_chunk(self, arr):
        held.append(len(arr))
        return to_jets(self, arr)

    def spy_decode(flat, *a, **k):
        decoded.append(len(flat))
        return decode(flat, *a, **k)

    def no_whole_file(self):
        raise AssertionError("decompress_file read the whole file at once")

    monkeypatch.setattr(CompressedFileReader, "_compressed", spy_chunk)
    monkeypatch.setattr(CompressedFileReader, "read", no_whole_file)
    monkeypatch.setattr(driver, "decode_jets", spy_decode)
    out = tmp_path / "d.root"
    summary = decompress_file(comp, out, progress=False, step_size=7)
    assert held == [7] * 5 + [5] and sum(decoded) == summary["n_jets"] and len(decoded) == 6
    assert max(decoded) <= 7 * 3  # at most 3 jets per event
    with uproot.open(whole) as a, uproot.open(out) as b:
        keys = sorted(a["Events"].keys())
        assert keys == sorted(b["Events"].keys())
        for k in keys:
            _assert_identical(a["Events"][k].array(), b["Events"][k].array())


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def test_cli_compress_decompress(tmp_path, model_file, capsys):
    src = write_events(tmp_path / "gen.root", nan_jet=False)
    comp, out = tmp_path / "c.root", tmp_path / "d.root"
    assert cli_main(["compress", str(src), "-o", str(comp), "--model", str(model_file),
                     "--quiet"]) == 0
    assert "bytes/jet" in capsys.readouterr().out
    with uproot.open(comp) as f:  # the measured default codec (benchmarks/compress_throughput)
        assert json.loads(str(f[METADATA_KEY]))["compression"] == "lzma:1"
    with uproot.open(comp) as f:
        assert f.file.fCompress // 100 == 2 and f.file.fCompress % 100 == 1  # ROOT's LZMA, 1
    assert cli_main(["decompress", str(comp), "-o", str(out), "--quiet"]) == 0
    _assert_identical(_branches(src, JET_KIN)["FatJet_pt"], _branches(out, JET_KIN)["FatJet_pt"])
    # user errors: one line, exit code 2
    assert cli_main(["decompress", str(comp), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    other = save_checkpoint(tmp_path / "other.pt", tiny_lgae(seed=1))
    assert cli_main(["decompress", str(comp), "-o", str(tmp_path / "e.root"), "--model",
                     str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model mismatch" in err[0]
    assert cli_main(["compress", str(src), "-o", str(tmp_path / "f.root"), "--model",
                     str(model_file), "--collection", "Jet"]) == 2
    assert "JetPFCands_jetIdx" in capsys.readouterr().err
