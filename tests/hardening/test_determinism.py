"""CPU determinism of lgae_hep.score: bitwise identical across fresh processes (same seed) and
across torch intra-op thread counts (the processor runs 1 thread per task, the API the default).
Executor agreement (iterative / futures / dask) is tested in tests/processors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import awkward as ak
import numpy as np
import torch

_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, awkward as ak, torch, vector
    vector.register_awkward()
    torch.set_num_threads(int(sys.argv[1]))
    from lgae_hep.models import LGAE
    import lgae_hep
    torch.manual_seed(0)
    m = LGAE(encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4, num_basis=2).eval()
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 60, 300)
    tot = int(counts.sum())
    eta = np.repeat(rng.uniform(-2, 2, 300), counts) + rng.normal(0, 0.2, tot)
    jets = ak.unflatten(ak.zip({"pt": rng.exponential(40, tot) + 1, "eta": eta,
                                "phi": rng.normal(0, 0.3, tot), "mass": np.zeros(tot)},
                               with_name="Momentum4D"), counts)
    s = ak.to_numpy(lgae_hep.score(jets, m, batch_size=64, progress=False))
    sys.stdout.write(s.astype("<f8").tobytes().hex())
    """
)


def _scores_in_fresh_process(threads: int) -> np.ndarray:
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(threads)], capture_output=True,
                         text=True, timeout=300, check=True)
    return np.frombuffer(bytes.fromhex(out.stdout.strip()), dtype="<f8")


def test_scores_bitwise_identical_across_processes_and_thread_counts():
    a = _scores_in_fresh_process(1)
    b = _scores_in_fresh_process(1)
    c = _scores_in_fresh_process(2)
    assert len(a) == 300 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)  # same seed, another run
    np.testing.assert_array_equal(a, c)  # other intra-op thread count


def test_in_process_repeat_is_bitwise():
    from lgae_hep.models import LGAE

    import lgae_hep

    torch.manual_seed(0)
    m = LGAE(encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4, num_basis=2).eval()
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 40, 50)
    tot = int(counts.sum())
    jets = ak.unflatten(ak.zip({"px": rng.normal(0, 20, tot), "py": rng.normal(0, 20, tot),
                                "pz": rng.normal(0, 50, tot),
                                "E": np.zeros(tot)}, with_name="Momentum4D"), counts)
    jets["E"] = np.sqrt(jets.px**2 + jets.py**2 + jets.pz**2) * 1.0001
    first = ak.to_numpy(lgae_hep.score(jets, m, progress=False))
    second = ak.to_numpy(lgae_hep.score(jets, m, progress=False))
    np.testing.assert_array_equal(first, second)
