"""Invalid labels, parameters and shapes raise ValueError naming the offending value."""

import numpy as np
import pytest

from lgae_hep import lorentz as lz
from lgae_hep.precision import unit_roundoff


@pytest.mark.parametrize("rep", [(1, 0), (2, 1), (-1, 1), (0, -2), (1.0, 1), "ab", (1, 1, 1)])
def test_bad_irreps(rep):
    with pytest.raises(ValueError, match=r"irrep|integers"):
        lz.irrep_matrix(rep, rapidity=[0, 0, 0.1])


def test_bad_irrep_in_cg():
    with pytest.raises(ValueError, match=r"\(1, 0\)"):
        lz.clebsch_gordan((1, 0), (1, 1), (0, 1))


@pytest.mark.parametrize("bad", [[np.nan, 0, 0], [0, np.inf, 0], [1, 2]])
def test_bad_rapidity_and_angle(bad):
    with pytest.raises(ValueError, match="rapidity"):
        lz.boost(bad)
    with pytest.raises(ValueError, match="angle"):
        lz.rotation(bad)
    with pytest.raises(ValueError, match="rapidity"):
        lz.irrep_matrix((1, 1), rapidity=bad)


@pytest.mark.parametrize("shape", [(3,), (5, 3), (2, 4, 5), ()])
def test_bad_fourvector_shapes(shape):
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        lz.fourvec_to_irrep(np.zeros(shape))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        lz.irrep_to_fourvec(np.zeros(shape))


def test_bad_maxdim():
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="maxdim"):
            lz.irreps_up_to(bad)


def test_torch_fourvec_map():
    torch = pytest.importorskip("torch")
    p = torch.randn(3, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    z = lz.fourvec_to_irrep(p)
    assert z.dtype == torch.complex128
    # float64 round trip, two 4-term complex products: 2 (4 + 2) u sum_j |p_j| <= 48 u max|p|
    # (assert_close's float64 default, 1e-7, was float32-sized)
    atol = 48 * unit_roundoff("float64") * p.abs().max().item()
    torch.testing.assert_close(lz.irrep_to_fourvec(z).real, p, rtol=0, atol=atol)
    assert lz.fourvec_to_irrep(p.float()).dtype == torch.complex64
