"""Property-based tests of the data layer: to_tensors / from_tensors / unflatten_like and
write_pfnano -> read_nanoaod, on random awkward structures (1-3 outer levels, empty lists
anywhere, 0-200 particles per jet, float32/float64, |p| from 1e-3 to 1e5 GeV, massless and
massive, collinear and exactly duplicated particles).

Ground truth is computed here in float64 from the stored coordinates (``_strategies``), never
from the code under test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _strategies import (  # noqa: E402
    JetCase,
    bounded,
    flat_particles,
    jet_cases,
    outer_counts,
    pt_order,
)

from lgae_hep.data import (  # noqa: E402
    from_tensors,
    read_nanoaod,
    to_tensors,
    unflatten_like,
    write_pfnano,
)

# float32 arithmetic on the way (pt*sinh(eta), E from mass, float32 file branches) moves each
# component by a few ulp of the particle's energy; 2e-6 * E bounds that with margin (float32
# epsilon is 1.2e-7), and is far below any physics scale.
REL32 = 2e-6
# float64 inputs: conversion from pt/eta/phi/mass only costs a few float64 ulp.
REL64 = 1e-12


def _tol(case: JetCase, p4_truth: np.ndarray) -> np.ndarray:
    rel = REL32 if case.dtype == np.float32 else REL64
    return rel * np.maximum(p4_truth[:, :1], 1e-30)


def _expected_tensor_rows(case: JetCase, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, N, 4) expected p4 (float64 truth, pT-sorted, N hardest) and its mask."""
    order = pt_order(case.p4, case.counts)
    p4 = np.zeros((case.n_jets, n, 4))
    mask = np.zeros((case.n_jets, n), bool)
    for j, sl in enumerate(case.jet_slices()):
        kept = order[sl][:n]
        p4[j, : len(kept)] = case.p4[kept]
        mask[j, : len(kept)] = True
    return p4, mask


@bounded(40)
@given(case=jet_cases(), n=st.sampled_from([1, 3, 30, 200]))
def test_to_tensors_sorts_truncates_and_round_trips(case: JetCase, n: int):
    jt = to_tensors(case.jets, n, dtype=np.float64, backend="numpy")
    p4, mask, scalars = jt
    assert scalars is None
    assert p4.shape == (case.n_jets, n, 4) and mask.shape == (case.n_jets, n)
    # legal jets (massless, heavy, collinear, duplicated, 1e-3..1e5 GeV, float32) stay valid
    assert jt.valid.all(), jt.invalid_reason[~jt.valid][:3]
    np.testing.assert_array_equal(jt.counts, case.counts)
    assert np.isfinite(p4).all()
    # N hardest, pT-descending, zero padded
    exp_p4, exp_mask = _expected_tensor_rows(case, n)
    np.testing.assert_array_equal(mask, exp_mask)
    assert (p4[~mask] == 0).all()
    pt = np.hypot(p4[..., 1], p4[..., 2])
    assert (np.diff(pt, axis=1)[mask[:, 1:]] <= 0).all()
    tol = REL32 if case.dtype == np.float32 else REL64
    scale = np.maximum(exp_p4[..., :1], 1e-30)
    assert (np.abs(p4 - exp_p4) <= tol * scale).all()

    # back to awkward: same outer structure, N hardest particles, exact values
    rebuilt = from_tensors(p4, mask, jt)
    assert len(rebuilt) == len(case.jets) and rebuilt.ndim == case.depth + 1
    for a, b in zip(outer_counts(rebuilt, case.depth - 1), case.structure, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        ak.to_numpy(ak.flatten(ak.num(rebuilt, axis=case.depth), axis=None)),
        np.minimum(case.counts, n),
    )
    flat = flat_particles(rebuilt, case.depth)
    got = np.stack([ak.to_numpy(flat[c]) for c in ("E", "px", "py", "pz")], -1)
    np.testing.assert_array_equal(got, p4[mask])
    # per-jet values come back in the same structure
    per_jet = unflatten_like(np.arange(case.n_jets), jt)
    assert len(per_jet) == len(case.jets) and per_jet.ndim == case.depth
    for a, b in zip(outer_counts(per_jet, case.depth - 1), case.structure, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        ak.to_numpy(ak.flatten(per_jet, axis=None)), np.arange(case.n_jets)
    )


@bounded(20)
@given(case=jet_cases(max_depth=2), n=st.sampled_from([5, 30]))
def test_backends_and_dtypes_agree_bitwise(case: JetCase, n: int):
    ref = to_tensors(case.jets, n, dtype=np.float64, backend="numpy")
    t64 = to_tensors(case.jets, n, dtype=torch.float64, backend="torch")
    np.testing.assert_array_equal(t64.p4.numpy(), ref.p4)
    np.testing.assert_array_equal(t64.mask.numpy(), ref.mask)
    np.testing.assert_array_equal(t64.valid.numpy(), ref.valid)
    f32 = to_tensors(case.jets, n, dtype=np.float32, backend="numpy")
    assert f32.p4.dtype == np.float32
    # float32 output is the float64 computation rounded once (no float32 arithmetic on the way)
    np.testing.assert_array_equal(f32.p4, ref.p4.astype(np.float32))
    assert np.isfinite(f32.p4).all()


# ---- non-finite / unphysical particles: flagged per jet, nothing leaks ---------------------

CORRUPTIONS_CART = ("nan", "inf", "-inf", "negative_energy", "spacelike")
CORRUPTIONS_PEPM = ("nan", "inf", "negative_pt", "negative_mass", "nan_mass")


def _corrupt(case: JetCase, rng: np.random.Generator, kind: str, fraction: float):
    """Copy of the jets with one particle corrupted in a random subset of non-empty jets."""
    fields = {f: ak.to_numpy(ak.flatten(case.jets[f], axis=None)).copy()
              for f in ak.fields(case.jets)}
    starts = np.concatenate([[0], np.cumsum(case.counts)])
    bad_jets = np.flatnonzero((case.counts > 0) & (rng.random(case.n_jets) < fraction))
    for j in bad_jets:
        i = int(starts[j] + rng.integers(0, case.counts[j]))  # any particle, also the softest
        if case.coords == "cartesian":
            comp = ("E", "px", "py", "pz")[int(rng.integers(0, 4))]
            e, p = fields["E"][i], np.sqrt(fields["px"][i] ** 2 + fields["py"][i] ** 2
                                           + fields["pz"][i] ** 2)
            if kind == "nan":
                fields[comp][i] = np.nan
            elif kind == "inf":
                fields[comp][i] = np.inf
            elif kind == "-inf":
                fields[comp][i] = -np.inf
            elif kind == "negative_energy":
                fields["E"][i] = -max(e, 1e-3)
            elif kind == "spacelike":
                fields["E"][i] = 0.5 * p
        else:
            if kind == "nan":
                fields[("pt", "eta", "phi")[int(rng.integers(0, 3))]][i] = np.nan
            elif kind == "inf":
                fields[("pt", "eta")[int(rng.integers(0, 2))]][i] = np.inf
            elif kind == "negative_pt":
                fields["pt"][i] = -fields["pt"][i]
            elif kind == "negative_mass":
                # m^2 < 0 well beyond the float tolerance: E < |p| or E imaginary
                p = fields["pt"][i] * np.cosh(np.float64(fields["eta"][i]))
                fields["mass"][i] = -0.5 * p
            elif kind == "nan_mass":
                fields["mass"][i] = np.nan
    flat = ak.zip(fields, with_name="Momentum4D")
    jets = ak.unflatten(flat, case.counts)
    for level in reversed(case.structure):
        jets = ak.unflatten(jets, level)
    bad = np.zeros(case.n_jets, bool)
    bad[bad_jets] = True
    return jets, bad


@bounded(40)
@given(
    case=jet_cases(max_particles=60),
    kind_index=st.integers(0, 4),
    fraction=st.sampled_from([0.3, 1.0]),
    seed=st.integers(0, 2**16),
    n=st.sampled_from([1, 30]),
)
def test_invalid_jets_are_flagged_zeroed_and_isolated(case, kind_index, fraction, seed, n):
    kinds = CORRUPTIONS_CART if case.coords == "cartesian" else CORRUPTIONS_PEPM
    kind = kinds[kind_index]
    jets, bad = _corrupt(case, np.random.default_rng(seed), kind, fraction)
    clean = to_tensors(case.jets, n, dtype=np.float64, backend="numpy")
    with np.errstate(all="raise"):  # no floating-point warnings escape to the user
        jt = to_tensors(jets, n, dtype=np.float64, backend="numpy")
    np.testing.assert_array_equal(jt.valid, ~bad)
    np.testing.assert_array_equal(jt.counts, case.counts)
    assert np.isfinite(jt.p4).all()
    assert (jt.p4[bad] == 0).all() and not jt.mask[bad].any()
    assert all(jt.invalid_reason[bad]) and not any(jt.invalid_reason[~bad])
    # the other jets are untouched (bitwise)
    np.testing.assert_array_equal(jt.p4[~bad], clean.p4[~bad])
    np.testing.assert_array_equal(jt.mask[~bad], clean.mask[~bad])
    if bad.any():
        with pytest.raises(ValueError, match=rf"{int(bad.sum())} invalid jet"):
            to_tensors(jets, n, on_invalid="raise", backend="numpy")
    else:
        to_tensors(jets, n, on_invalid="raise", backend="numpy")


# ---- write_pfnano -> read_nanoaod -------------------------------------------------------------


@bounded(15)
@given(case=jet_cases(min_depth=2, max_depth=2, max_outer=6), step=st.sampled_from([1, 3, 1000]))
def test_read_nanoaod_reads_back_what_write_pfnano_wrote(case: JetCase, step: int, tmp_path):
    path = tmp_path / f"jets_{np.random.default_rng().integers(1 << 30)}.root"
    write_pfnano(path, case.jets)
    if len(case.jets) == 0:
        with pytest.raises(ValueError, match="empty tree"):
            read_nanoaod(path)
        return
    consts, fatjets = read_nanoaod(path, max_particles=None, with_jets=True, step_size=step)
    # structure: events, jets per event, particles per jet
    assert len(consts) == len(case.jets)
    for a, b in zip(outer_counts(consts, 2), outer_counts(case.jets, 2)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        ak.to_numpy(ak.flatten(fatjets.nConstituents, axis=None)), case.counts
    )
    # values: float32 branches, pT sorted; compare Cartesian components with the truth
    order = pt_order(case.p4, case.counts)
    truth = case.p4[order]
    flat = flat_particles(consts, 2)
    got = np.stack([np.asarray(ak.to_numpy(getattr(flat, c)), np.float64)
                    for c in ("E", "px", "py", "pz")], -1)
    assert got.shape == truth.shape
    scale = np.maximum(truth[:, :1], 1e-30)
    assert (np.abs(got - truth) <= REL32 * scale).all()
    # chunked and whole reads agree exactly; reading with N keeps the N hardest
    whole = read_nanoaod(path, max_particles=None)
    assert ak.array_equal(whole, consts)
    top = read_nanoaod(path, max_particles=30, step_size=step)
    assert ak.array_equal(top, consts[:, :, :30])
    # and they are all legal jets for the network
    jt = to_tensors(top, 30, backend="numpy")
    assert jt.valid.all(), jt.invalid_reason[~jt.valid][:3]
    assert case.n_jets == len(jt)


@bounded(10)
@given(
    case=jet_cases(min_depth=2, max_depth=2, max_outer=5, max_particles=60),
    kind_index=st.integers(0, 4),
    seed=st.integers(0, 2**16),
)
def test_invalid_particles_survive_the_file_and_are_flagged(case, kind_index, seed, tmp_path):
    assume(len(case.jets) > 0)
    kinds = CORRUPTIONS_CART if case.coords == "cartesian" else CORRUPTIONS_PEPM
    kind = kinds[kind_index]
    jets, bad = _corrupt(case, np.random.default_rng(seed), kind, 0.5)
    path = tmp_path / f"bad_{np.random.default_rng().integers(1 << 30)}.root"
    if kind == "negative_energy" and bad.any():
        # pt/eta/phi/mass cannot hold E < 0; writing it would make it a physical particle
        with pytest.raises(ValueError, match="negative energy"):
            write_pfnano(path, jets)
        return
    with np.errstate(all="raise"):  # no floating-point warnings escape to the user
        write_pfnano(path, jets)
    # truncation to 3 particles must not hide a bad soft particle (the reader sorts it first)
    with np.errstate(all="raise"):
        read = read_nanoaod(path, max_particles=3)
        jt = to_tensors(read, 3, backend="numpy")
    np.testing.assert_array_equal(jt.valid, ~bad)
    assert np.isfinite(jt.p4).all()
