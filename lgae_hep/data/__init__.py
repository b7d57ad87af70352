"""Jet readers (NanoAOD/PFNano, JetNet HDF5), tensors, and the Pythia 8 + FastJet generator.

Nothing here imports torch at import time (``to_tensors(backend="torch")`` imports it lazily).
"""

from .nanoaod import METADATA_KEY, read_metadata, write_pfnano
from .vectors import (
    cartesian_components,
    eta_rel,
    jet_p4,
    phi_rel,
    pt_rel,
    relative_coordinates,
    wrap_phi,
)

__all__ = [
    "METADATA_KEY",
    "cartesian_components",
    "eta_rel",
    "jet_p4",
    "phi_rel",
    "pt_rel",
    "read_metadata",
    "relative_coordinates",
    "wrap_phi",
    "write_pfnano",
]
