"""Issue 22.1: decompressed jets are physical and add up to the decoder's jet.

What ``decompress`` writes must give, read back with coffea NanoEvents, the jet 4-momentum and
mass of :func:`lgae_hep.reconstruct`; decoder outputs outside the light cone are repaired
(:mod:`lgae_hep.compression.physical`) keeping each jet's sum, counted and warned about.

The bounds are derived, not fitted:

* **the repair** runs in float64: a boost to the jet rest frame and back, sums of ``n``
  terms. Each output component is off by at most ``c n u64 gamma^2 sum_i (|E_i| + |p_i|)``
  (``gamma = E/m`` of the jet: a boost amplifies rounding by ``gamma`` each way), ``c = 16``.
* **the file** (float32 ``pt, eta, phi, mass``, unit roundoff ``u = 2^-24``) **read by coffea**
  (float32 arithmetic): rounding ``pt`` and ``mass`` costs ``u`` relative, ``eta`` and ``phi``
  ``u |eta|`` / ``u |phi|`` absolute, which moves ``pz = pt sinh(eta)`` and
  ``E = sqrt(pt^2 cosh^2(eta) + m^2)`` by ``u |eta| E`` and ``px, py`` by ``u |phi| pt``; the
  float32 evaluation of ``cos, sin, sinh, cosh, sqrt`` and products adds at most ``K = 10``
  roundings. So each particle component is off by ``u E_i (K + |eta_i| + |phi_i|)``
  (``|x_i| <= E_i`` for a physical particle). coffea sums ``n`` of them in float32:
  ``(n - 1) u sum_i E_i = (n - 1) u E`` more (all ``E_i >= 0``). With component errors
  ``delta``, ``m^2 = E^2 - |p|^2`` moves by ``2 sum_mu |P_mu| delta <= 2 (1 + sqrt 3) E delta``,
  its float32 evaluation by ``10 u E^2``; ``m`` by ``delta(m^2) / (2 m^2)`` relative, plus ``u``.
  The relative bound is therefore about ``(n + K + |eta| + |phi|) u (E/m)^2``: the number of
  particles times the unit roundoff times the condition ``(E/m)^2`` of the mass.
* **the network**: the decoder's output in ``decompress`` and in ``reconstruct`` (other
  batches, the latent through float32 storage) differ per particle component by
  ``2 OUTPUT_AMPLIFICATION u E_in`` (:mod:`lgae_hep.precision`), ``n`` of them per jet.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
import vector

import lgae_hep
from lgae_hep.cli import main as cli_main
from lgae_hep.compression import compress_files, decompress_file, read_compressed
from lgae_hep.compression.physical import (
    REPAIR_IMPOSSIBLE,
    REPAIR_LAB,
    REPAIR_NONE,
    REPAIR_REST,
    UnphysicalOutputWarning,
    make_physical,
)
from lgae_hep.data import read_nanoaod, to_tensors
from lgae_hep.inference import InvalidJetWarning
from lgae_hep.precision import OUTPUT_AMPLIFICATION, unit_roundoff

vector.register_awkward()

FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "pfnano.root"
U32 = unit_roundoff("float32")
U64 = unit_roundoff("float64")
K_READ = 10.0  # float32 roundings in coffea's pt/eta/phi/mass -> (E, px, py, pz), see above


# --------------------------------------------------------------------------------------------
# the repair alone
# --------------------------------------------------------------------------------------------


def _decoded_like(seed: int, b: int = 600, n: int = 12):
    """Outputs like a decoder's: boosted jets (E/m ~ 3-10) of particles with masses, about
    half of them pushed outside the light cone (mostly slightly spacelike, some E < 0), random
    multiplicities."""
    rng = np.random.default_rng(seed)
    k = rng.normal(size=(b, n, 3))
    k -= k.mean(1, keepdims=True)  # rest frame: 3-momenta sum to zero
    mass_i = rng.uniform(0, 1, (b, 1)) * rng.uniform(0, 1, (b, n)) * np.sqrt((k ** 2).sum(-1))
    e = np.sqrt((k ** 2).sum(-1) + mass_i ** 2)
    axis = rng.normal(size=(b, 3))
    beta = axis / np.linalg.norm(axis, axis=1, keepdims=True) * rng.uniform(0.9, 0.995, (b, 1))
    gamma = 1 / np.sqrt(1 - (beta ** 2).sum(1))
    bp = (beta[:, None] * k).sum(-1)
    lab_e = gamma[:, None] * (e + bp)
    lab_p = k + ((gamma ** 2 / (gamma + 1))[:, None] * bp + gamma[:, None] * e)[..., None] \
        * beta[:, None]
    pabs = np.sqrt((lab_p ** 2).sum(-1))
    r = rng.random((b, n))
    f = np.where(r < 0.4, rng.uniform(0.9, 0.9999, (b, n)),
                 np.where(r < 0.45, rng.uniform(-0.3, 0, (b, n)), 1.0))
    lab_e = np.where(f < 1, pabs * f, lab_e)
    mask = np.arange(n)[None] < rng.integers(2, n + 1, b)[:, None]
    return np.concatenate([lab_e[..., None], lab_p], -1), mask


def _sums(p4, mask):
    return (p4 * mask[..., None]).sum(1)


def test_repair_keeps_each_jet_sum_and_makes_particles_physical():
    p4, mask = _decoded_like(0)
    q, unphysical, repair = make_physical(p4, mask)
    pabs = np.sqrt((p4[..., 1:] ** 2).sum(-1))
    np.testing.assert_array_equal(unphysical, mask & (p4[..., 0] < pabs))
    tot, got = _sums(p4, mask), _sums(q, mask)
    m2 = tot[:, 0] ** 2 - (tot[:, 1:] ** 2).sum(-1)
    timelike = (tot[:, 0] > 0) & (m2 > 0)
    fixed = (repair == REPAIR_LAB) | (repair == REPAIR_REST)
    assert (repair == REPAIR_REST).sum() > 50 and (repair == REPAIR_LAB).sum() > 5
    np.testing.assert_array_equal(repair == REPAIR_IMPOSSIBLE, unphysical.any(1) & ~timelike)
    np.testing.assert_array_equal(repair == REPAIR_NONE, ~unphysical.any(1))
    n = mask.sum(1)
    gamma2 = np.where(timelike, tot[:, 0] ** 2 / np.where(timelike, m2, 1.0), 1.0)
    scale = ((np.abs(p4[..., 0]) + pabs) * mask).sum(1)
    tol = 16 * n * U64 * gamma2 * scale
    assert np.all(np.abs(got - tot)[fixed] <= tol[fixed, None])
    # physical: E >= |p| up to the same rounding, in every repaired jet
    qabs = np.sqrt((q[..., 1:] ** 2).sum(-1))
    slack = (q[..., 0] - qabs)[fixed][mask[fixed]]
    assert slack.min() >= -np.repeat(tol[fixed], n[fixed]).max()
    # jets without unphysical outputs untouched, bitwise; lab repairs keep every 3-momentum
    np.testing.assert_array_equal(q[repair == REPAIR_NONE], p4[repair == REPAIR_NONE])
    lab = repair == REPAIR_LAB
    np.testing.assert_array_equal(q[lab][..., 1:], p4[lab][..., 1:])
    # outside the mask nothing changes
    np.testing.assert_array_equal(q[~mask], p4[~mask])


def test_repair_of_a_jet_with_no_physical_decomposition_is_flagged():
    # two back-to-back massless particles with E < 0 for one: total spacelike
    p4 = np.array([[[10.0, 0, 0, 10.0], [-5.0, 0, 0, -5.0]]])
    q, unphysical, repair = make_physical(p4, np.ones((1, 2), bool))
    assert repair.tolist() == [REPAIR_IMPOSSIBLE] and unphysical.tolist() == [[False, True]]
    assert q[0, 1, 0] == 5.0  # written massless with its 3-momentum; counted apart


# --------------------------------------------------------------------------------------------
# through files and coffea
# --------------------------------------------------------------------------------------------


def _coffea_jets(path: Path):
    pytest.importorskip("coffea")
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Missing cross-reference")
        events = NanoEventsFactory.from_root({str(path): "Events"},
                                             schemaclass=PFNanoAODSchema,
                                             mode="eager").events()
    pf = ak.flatten(events.FatJet.constituents.pf, axis=1)  # [jet][particle], float32
    return pf, ak.flatten(events.FatJet, axis=1)


def _mass_bound_file(pf) -> tuple[np.ndarray, np.ndarray]:
    """Relative jet-mass bound of float32 storage + coffea's float32 evaluation (docstring)."""
    f64 = {k: ak.values_astype(pf[k], np.float64) for k in ("pt", "eta", "phi", "mass")}
    x = ak.zip(f64, with_name="Momentum4D")
    e_i = x.E
    e = ak.to_numpy(ak.sum(e_i, axis=1))
    m2 = ak.to_numpy(ak.sum(x, axis=1).mass2)
    n = ak.to_numpy(ak.num(pf, axis=1))
    per = ak.to_numpy(ak.sum(e_i * (K_READ + abs(f64["eta"]) + abs(f64["phi"])), axis=1))
    delta = U32 * (per + np.maximum(n - 1, 0) * e)  # each jet-sum component
    dm2 = 2 * (1 + np.sqrt(3)) * e * delta + 10 * U32 * e ** 2
    return dm2 / (2 * np.abs(m2)) + U32, e


def _network_mass_bound(dec_sum: np.ndarray, n: np.ndarray, e_in: np.ndarray) -> np.ndarray:
    """Relative jet-mass bound of two network evaluations (decompress vs reconstruct)."""
    delta = n * 2 * OUTPUT_AMPLIFICATION * U32 * e_in
    m2 = dec_sum[:, 0] ** 2 - (dec_sum[:, 1:] ** 2).sum(-1)
    return np.abs(dec_sum).sum(1) * delta / np.abs(m2)


def _check_file_against_reconstruct(src: Path, comp: Path, out: Path, model) -> dict:
    """Decompressed-file masses (coffea) vs the decoder output (float32 bound) and vs
    ``reconstruct`` (+ the network bound). Returns the file's ``physical`` metadata."""
    pf, fatjet = _coffea_jets(out)
    status = ak.to_numpy(fatjet.lgaeStatus)
    repair = ak.to_numpy(fatjet.lgaeRepair)
    enc = status == 0
    assert enc.sum() >= 10
    # physical candidates only
    assert ak.all(pf.mass >= 0) and ak.all(pf.pt >= 0)
    # the decoder output of the same compressed jets (float64)
    c = read_compressed(comp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnphysicalOutputWarning)
        dec = ak.flatten(lgae_hep.decompress(c, model, physical=False), axis=1)
    dec_sum = np.stack([ak.to_numpy(ak.sum(dec[k], axis=1)) for k in ("E", "px", "py", "pz")],
                       1)
    m_dec = np.sqrt(np.abs(dec_sum[:, 0] ** 2 - (dec_sum[:, 1:] ** 2).sum(-1)))
    pfsum = ak.sum(pf, axis=1)
    m_file = ak.to_numpy(pfsum.mass).astype(np.float64)
    bound, _ = _mass_bound_file(pf)
    ok = enc & (repair != REPAIR_IMPOSSIBLE)
    rel = np.abs(m_file - m_dec) / m_dec
    assert np.all(rel[ok] <= bound[ok]), (rel[ok].max(), bound[ok][np.argmax(rel[ok])])
    # ... and reconstruct's (a second network evaluation)
    jets = read_nanoaod(src, max_particles=None, flat=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InvalidJetWarning)
        rec = lgae_hep.reconstruct(jets, model)
    m_rec = np.asarray(ak.to_numpy(ak.fill_none(ak.sum(rec, axis=1).mass, np.nan)), np.float64)
    n_part = lgae_hep.load_model(model).config["num_particles"] if isinstance(model, str) else \
        model.config["num_particles"]
    jt = to_tensors(jets, n_part, dtype=np.float64, backend="numpy")
    e_in = (jt.p4[..., 0] * jt.mask).sum(1)
    n = ak.to_numpy(ak.num(dec, axis=1))
    net = _network_mass_bound(dec_sum, n, e_in)
    rel_rec = np.abs(m_file - m_rec) / m_rec
    assert np.all(rel_rec[ok] <= bound[ok] + net[ok] * (1 + bound[ok]))
    # the counts: every decoder output outside the light cone, in the metadata
    with uproot.open(out) as f:
        meta = json.loads(str(f["lgae_hep_metadata"]))["physical"]
    pabs = np.sqrt(dec.px ** 2 + dec.py ** 2 + dec.pz ** 2)
    assert meta["unphysical_particles"] == int(ak.sum(dec.E < pabs))
    assert meta["decoded_particles"] == int(ak.sum(n))
    assert meta["jets_not_repairable"] == int((repair == REPAIR_IMPOSSIBLE).sum())
    assert meta["fit_for_physics"] is (meta["unphysical_particles"] == 0)
    return meta


def test_fixture_decompressed_masses_are_reconstructs(tmp_path):
    if not FIXTURE.exists():
        pytest.skip(f"real CMS PFNano fixture not found at {FIXTURE}")
    comp, out = tmp_path / "c.root", tmp_path / "d.root"
    compress_files([FIXTURE], comp, "lgae-mix", progress=False)
    with pytest.warns(UnphysicalOutputWarning, match="not fit for physics"):
        summary = decompress_file(comp, out, progress=False)
    meta = _check_file_against_reconstruct(FIXTURE, comp, out, "lgae-mix")
    assert meta["unphysical_particles"] > 0 and summary["physical"]["unphysical_particles"] \
        == meta["unphysical_particles"]


@pytest.fixture(scope="module")
def generated_file(tmp_path_factory) -> Path:
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    from lgae_hep.data.generate import generate

    path = tmp_path_factory.mktemp("gen") / "qcd.root"
    generate("qcd", 40, seed=5, fast=True, output=path, progress=False)
    return path


@pytest.mark.parametrize("name", ["lgae-mix", "lgae-compress"])
def test_generated_decompressed_masses_are_reconstructs(tmp_path, generated_file, name):
    comp, out = tmp_path / "c.root", tmp_path / "d.root"
    compress_files([generated_file], comp, name, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnphysicalOutputWarning)
        decompress_file(comp, out, progress=False, step_size=7)  # several chunks
    _check_file_against_reconstruct(generated_file, comp, out, name)


def test_compress_uses_the_compression_model_by_default(tmp_path, generated_file):
    """Without a model, compress uses the bundled model trained for fidelity (lgae-compress,
    zoo.COMPRESSION_MODEL), whose card says what it is for and records its measured fidelity
    beside the paper's target; the anomaly default stays lgae-mix."""
    from lgae_hep.zoo import COMPRESSION_MODEL, DEFAULT_MODEL, model_card

    assert COMPRESSION_MODEL == "lgae-compress" and DEFAULT_MODEL == "lgae-mix"
    card = model_card(COMPRESSION_MODEL)
    assert card["purpose"].startswith("compression")
    fid = card["fidelity"]
    assert fid["rate"] == pytest.approx(card["compression_rate"]["paper"])
    assert fid["rate"] <= fid["paper_target"]["rate"] and fid["mass_iqr"] > 0
    from lgae_hep.compression import read_compressed

    comp = tmp_path / "c.root"
    compress_files([generated_file], comp, progress=False)
    assert read_compressed(comp).metadata["model"]["name"] == COMPRESSION_MODEL
    jets = lgae_hep.read_nanoaod(generated_file, flat=True)[:5]
    assert lgae_hep.compress(jets).metadata["model"]["name"] == COMPRESSION_MODEL


@pytest.mark.parametrize(("name", "kept"), [("lgae-compress", "lgae-compress-v1"),
                                            ("lgae-mix", "lgae-mix-v1"),
                                            ("lgae-mix", "lgae-mix-v2"),
                                            ("lgae-mix", "lgae-mix-v3")])
def test_files_of_a_superseded_compression_model_still_decompress(generated_file, name, kept):
    """A file compressed with a superseded bundle (recorded name "lgae-compress" or
    "lgae-mix", the old weights' file hash) decodes with those weights, kept as
    ``<name>-v1`` / ``-v2`` / ``-v3``, not with today's model of that name (whose checksum
    would not match); a hash no bundled file has falls back to the name, and the checksum
    check still refuses it."""
    from lgae_hep.zoo import bundled_models

    assert {name, kept} <= set(bundled_models())
    jets = lgae_hep.read_nanoaod(generated_file, flat=True)[:8]
    old = lgae_hep.compress(jets, kept)
    old.metadata["model"]["name"] = name  # what a file of that time records
    got = lgae_hep.decompress(old, physical=False)
    want = lgae_hep.decompress(old, kept, physical=False)
    for f in ("E", "px", "py", "pz"):
        assert ak.all(ak.flatten(got[f], axis=None) == ak.flatten(want[f], axis=None))
    with pytest.raises(ValueError, match="model mismatch"):
        lgae_hep.decompress(old, name)
    old.metadata["model"]["file_sha256"] = "0" * 64
    with pytest.raises(ValueError, match="model mismatch"):
        lgae_hep.decompress(old)


def test_compression_model_card_records_the_retrain_chain():
    """The bundled lgae-compress was warm-started from the one before it: its card names that
    run, its training record and the command chain that retrains both."""
    from lgae_hep.zoo import model_card

    card = model_card("lgae-compress")
    start = card["training"]["initialised_from"]
    assert start["run"] == "runs/compression_model/tau_v6/best.pt" and start["epochs"] > 0
    steps = card["retrain"].split(" && ")
    assert steps[1].endswith("--train --tau-v 6")
    assert "--init runs/compression_model/tau_v6/best.pt" in steps[2]
    assert steps[-1].startswith("python benchmarks/compression_model.py --bundle 6")
    assert card["training"]["loss"].startswith("mse + ")


def test_cli_warns_that_decoded_jets_are_not_fit_for_physics(tmp_path, generated_file, capsys):
    comp, out = tmp_path / "c.root", tmp_path / "d.root"
    assert cli_main(["compress", str(generated_file), "-o", str(comp), "--quiet"]) == 0
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnphysicalOutputWarning)  # said by the CLI, not raised
        assert cli_main(["decompress", str(comp), "-o", str(out), "--quiet"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("warning: ") and "not fit for physics" in err[0]
    assert "outside the light cone" in err[0]


@pytest.mark.parametrize("output", ["lightlike", "massive"])
def test_physical_decoder_needs_no_repair(tmp_path, output):
    """A model whose decoder ends on (``output="lightlike"``) or inside (``"massive"``) the
    light cone of the time reference (issue 22.1) emits only physical particles: nothing to
    repair, no warning, and the decompressed-file masses are still ``reconstruct``'s."""
    if not FIXTURE.exists():
        pytest.skip(f"real CMS PFNano fixture not found at {FIXTURE}")
    import torch
    from lgae_hep.models import LGAE

    from lgae_hep.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = LGAE(num_particles=30, references=["time"], output=output).eval()
    path = tmp_path / "lightlike.pt"
    save_checkpoint(path, model, rng_state=False)
    comp, out = tmp_path / "c.root", tmp_path / "d.root"
    compress_files([FIXTURE], comp, path, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnphysicalOutputWarning)
        summary = decompress_file(comp, out, progress=False)
    meta = _check_file_against_reconstruct(FIXTURE, comp, out, str(path))
    assert meta["unphysical_particles"] == 0 and meta["fit_for_physics"] is True
    assert summary["physical"]["unphysical_particles"] == 0
