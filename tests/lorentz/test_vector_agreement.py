"""lgae_hep.lorentz.boost agrees with scikit-hep `vector` on awkward Momentum4D jets."""

import awkward as ak
import numpy as np
import pytest
import vector

from lgae_hep import lorentz as lz

vector.register_awkward()


@pytest.mark.parametrize("rapidity", [[0.5, -1.0, 2.0], [0.0, 0.0, 3.0], [1e-3, 0.0, 0.0]])
def test_boost_matches_vector(rapidity):
    rng = np.random.default_rng(7)
    counts = [3, 0, 5, 1]
    n = sum(counts)
    p3 = rng.normal(scale=50.0, size=(n, 3))
    mass = rng.uniform(0.0, 5.0, size=n)
    e = np.sqrt((p3**2).sum(1) + mass**2)
    jets = ak.unflatten(
        ak.zip({"E": e, "px": p3[:, 0], "py": p3[:, 1], "pz": p3[:, 2]}, with_name="Momentum4D"),
        counts,
    )
    r = np.asarray(rapidity, dtype=float)
    beta = np.tanh(np.linalg.norm(r)) * r / np.linalg.norm(r)
    boosted = jets.boost_beta3(vector.obj(x=beta[0], y=beta[1], z=beta[2]))
    fields = ("E", "px", "py", "pz")
    got = np.stack([ak.to_numpy(ak.flatten(getattr(boosted, f))) for f in fields], 1)
    want = np.stack([e, *p3.T], 1) @ lz.boost(r).T
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
