"""Group theory of SO+(3,1): irreps, Clebsch-Gordan coefficients, representation matrices.

Everything here is float64/complex128 numpy (the torch CG tables of :func:`cg_tables` are cast
from those). See :mod:`lgae_hep.lorentz.group` for the conventions.

>>> from lgae_hep.lorentz import boost, fourvec_to_irrep, irrep_matrix
>>> import numpy as np
>>> p = np.array([5.0, 1.0, 2.0, 3.0])
>>> lam = boost([0.0, 0.0, 1.0])
>>> z1 = fourvec_to_irrep(lam @ p)
>>> z2 = irrep_matrix((1, 1), rapidity=[0.0, 0.0, 1.0]) @ fourvec_to_irrep(p)
>>> bool(np.allclose(z1, z2))
True
"""

from .cg import (
    MINKOWSKI_CG_CONSTANT,
    allowed_products,
    cg_tables,
    cg_triples,
    clebsch_gordan,
    invariant_form,
)
from .group import (
    FOURVEC_TO_IRREP,
    MINKOWSKI,
    Irrep,
    boost,
    cartesian_generators,
    check_irrep,
    fourvec_to_irrep,
    irrep_dim,
    irrep_generators,
    irrep_matrix,
    irrep_spins,
    irrep_to_fourvec,
    irreps_up_to,
    lorentz_matrix,
    rotation,
    spinor_to_canonical,
)
from .su2 import spin_matrices, su2_cg, su2_cg_table

__all__ = [
    "FOURVEC_TO_IRREP",
    "MINKOWSKI",
    "MINKOWSKI_CG_CONSTANT",
    "Irrep",
    "allowed_products",
    "boost",
    "cartesian_generators",
    "cg_tables",
    "cg_triples",
    "check_irrep",
    "clebsch_gordan",
    "fourvec_to_irrep",
    "invariant_form",
    "irrep_dim",
    "irrep_generators",
    "irrep_matrix",
    "irrep_spins",
    "irrep_to_fourvec",
    "irreps_up_to",
    "lorentz_matrix",
    "rotation",
    "spin_matrices",
    "spinor_to_canonical",
    "su2_cg",
    "su2_cg_table",
]
