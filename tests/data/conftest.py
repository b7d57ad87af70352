"""Shared helpers for the data-layer tests: small deterministic jets and the real fixture path."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import vector

vector.register_awkward()

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
#: the real CMS PFNano fixture: $LGAE_HEP_PFNANO, default ../shared/fixtures/pfnano.root
PFNANO = Path(os.environ.get("LGAE_HEP_PFNANO") or FIXTURES / "pfnano.root")


def make_jets(
    seed: int = 0,
    n_events: int = 20,
    *,
    jets_per_event: tuple[int, int] = (0, 3),
    particles: tuple[int, int] = (0, 45),
    massive: bool = True,
) -> ak.Array:
    """[event][jet][particle] Momentum4D with charge/pdgId; unsorted, incl. 0-jet events."""
    rng = np.random.default_rng(seed)
    nj = rng.integers(jets_per_event[0], jets_per_event[1] + 1, n_events)
    n_jets = int(nj.sum())
    npart = rng.integers(particles[0], particles[1] + 1, n_jets)
    total = int(npart.sum())
    axis_eta = np.repeat(rng.uniform(-2, 2, n_jets), npart)
    axis_phi = np.repeat(rng.uniform(-np.pi, np.pi, n_jets), npart)
    p = ak.zip(
        {
            "pt": rng.exponential(30.0, total) + 0.5,
            "eta": axis_eta + rng.normal(0, 0.3, total),
            "phi": (axis_phi + rng.normal(0, 0.3, total) + np.pi) % (2 * np.pi) - np.pi,
            "mass": rng.choice([0.0, 0.13957, 0.49368], total) if massive else np.zeros(total),
            "charge": rng.integers(-1, 2, total).astype(np.int32),
            "pdgId": rng.choice([211, -211, 22, 130], total).astype(np.int32),
        },
        with_name="Momentum4D",
    )
    return ak.unflatten(ak.unflatten(p, npart), nj)


def sort_truncate(jets: ak.Array, n: int | None) -> ak.Array:
    """Reference: sort each jet by pT (descending, stable) and keep n (plain awkward)."""
    out = jets[ak.argsort(jets.pt, axis=-1, ascending=False, stable=True)]
    return out if n is None else out[..., :n]


@pytest.fixture
def jets_factory():
    return make_jets


@pytest.fixture
def reference_sort():
    return sort_truncate


@pytest.fixture
def pfnano_fixture() -> Path:
    path = PFNANO
    if not path.exists():
        pytest.skip(f"real CMS PFNano fixture not found at {path} (set LGAE_HEP_PFNANO)")
    return path


@pytest.fixture
def quiet_coffea():
    """coffea warns about every cross-reference missing from a small file; silence that."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Missing cross-reference")
        warnings.filterwarnings("ignore", message="Branch .* already exists")
        yield
