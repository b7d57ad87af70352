"""Equivariant neural-network building blocks on irreps of SO+(3,1).

Features are dicts ``irrep (k, n) -> complex tensor (B, N, tau, d)`` in the canonical basis of
:mod:`lgae_hep.lorentz`.
"""

from .aggregation import AGGREGATIONS, Aggregation, parse_aggregation
from .cg_product import CGProduct, Feats, cg_pair, complex_dtype
from .io import AutoencoderOutput, check_inputs, first_n_mask, parse_dtype
from .lmp import VECTOR, LMPLayer
from .mixreps import SCALAR, InvariantMLP, MixReps, mask_feats
from .radial import RadialBasis, RadialFilter, pair_invariant
from .references import REFERENCE_VECTORS, parse_references

__all__ = [
    "AGGREGATIONS", "Aggregation", "AutoencoderOutput", "CGProduct", "Feats", "InvariantMLP",
    "LMPLayer", "MixReps", "REFERENCE_VECTORS", "RadialBasis", "RadialFilter", "SCALAR",
    "VECTOR", "cg_pair",
    "check_inputs", "complex_dtype", "first_n_mask", "mask_feats", "pair_invariant",
    "parse_aggregation", "parse_dtype", "parse_references",
]
