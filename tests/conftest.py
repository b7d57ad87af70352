"""Shared test fixtures: small generated jets and Lorentz transformations for the network tests.

The tests under tests/nn and tests/models run with one torch intra-op thread (see
``one_torch_thread``); everything else keeps torch's default.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lgae_hep.lorentz import lorentz_matrix


def _make_jets(b: int, n: int, seed: int = 0, dtype=torch.float64, fill: float = 0.8):
    """Jet-like clouds: collinear-ish massive particles with pT 1-200 GeV, random multiplicity."""
    g = torch.Generator().manual_seed(seed)
    pt = torch.rand(b, n, generator=g, dtype=torch.float64) * 200 + 1
    eta = torch.randn(b, n, generator=g, dtype=torch.float64) * 0.3
    phi = torch.randn(b, n, generator=g, dtype=torch.float64) * 0.3
    m = torch.rand(b, n, generator=g, dtype=torch.float64) * 0.5
    pz = pt * torch.sinh(eta)
    e = torch.sqrt(pt**2 + pz**2 + m**2)
    p4 = torch.stack([e, pt * torch.cos(phi), pt * torch.sin(phi), pz], -1)
    counts = torch.randint(1, n + 1, (b,), generator=g)
    counts[0] = n
    mask = torch.arange(n)[None, :] < (counts[:, None] * fill).ceil().long()
    p4 = p4 * mask[..., None]
    return p4.to(dtype), mask


def _random_lorentz(rng: np.random.Generator, max_rapidity: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    rap = axis * rng.uniform(0.5, 1.0) * max_rapidity
    ang = rng.normal(size=3)
    ang = ang / np.linalg.norm(ang) * rng.uniform(0, np.pi)
    return lorentz_matrix(rapidity=rap, angle=ang)


@pytest.fixture
def make_jets():
    """``make_jets(b, n, seed=0, dtype=torch.float64, fill=0.8) -> (p4, mask)``."""
    return _make_jets


@pytest.fixture
def random_lorentz():
    """``random_lorentz(rng, max_rapidity) -> (4, 4)`` boost along a random axis + rotation."""
    return _random_lorentz


_ONE_THREAD_DIRS = ("nn", "models")


def _single_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def one_torch_thread():
    """One intra-op thread for a test; a module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    yield from _single_torch_thread()


@pytest.fixture(autouse=True)
def _one_torch_thread_for_network_tests(request):
    """One intra-op thread for tests/nn and tests/models: on a shared, oversubscribed CI
    machine OpenMP barriers with two threads make these small-tensor tests ~30x slower.
    Other tests keep torch's default (or opt in with the ``one_torch_thread`` fixture)."""
    folder = request.node.path.parent
    if folder.name not in _ONE_THREAD_DIRS or folder.parent.name != "tests":
        yield
        return
    yield from _single_torch_thread()
