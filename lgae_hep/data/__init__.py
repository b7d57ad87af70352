"""Jet readers (NanoAOD/PFNano, JetNet HDF5), tensors, and the Pythia 8 + FastJet generator.

Nothing here imports torch at import time (``to_tensors(backend="torch")`` imports it lazily),
and jetnet is never imported unless asked for.
"""

from .files import InputFile, check_input_files
from .jetnet import read_jetnet
from .nanoaod import (
    NanoLayout,
    constituents_from_events,
    detect_layout,
    iter_nanoaod,
    read_nanoaod,
    resolve_puppi,
)
from .pfnano import METADATA_KEY, read_metadata, write_pfnano
from .tensors import (
    ABS_TOL,
    DEFAULT_NUM_PARTICLES,
    REL_TOL,
    JetTensors,
    from_tensors,
    to_tensors,
    unflatten_like,
)
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
    "DEFAULT_NUM_PARTICLES",
    "ABS_TOL",
    "METADATA_KEY",
    "REL_TOL",
    "InputFile",
    "JetTensors",
    "NanoLayout",
    "cartesian_components",
    "check_input_files",
    "constituents_from_events",
    "detect_layout",
    "eta_rel",
    "from_tensors",
    "iter_nanoaod",
    "jet_p4",
    "phi_rel",
    "pt_rel",
    "read_jetnet",
    "read_metadata",
    "read_nanoaod",
    "relative_coordinates",
    "resolve_puppi",
    "to_tensors",
    "unflatten_like",
    "wrap_phi",
    "write_pfnano",
]
