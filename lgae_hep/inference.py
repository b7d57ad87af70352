"""The scoring engine's public names, importable from here as before.

The engine lives in :mod:`lgae_hep.scoring.engine` (batching, precision, frames, the bad-input
policy), the latent layout in :mod:`lgae_hep.scoring.latent`; this module only re-exports them.
"""

from lgae_hep.scoring.engine import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHUNK_SIZE,
    BatchResult,
    InferenceResult,
    InvalidJetWarning,
    MassOutsideMapWarning,
    apply_invalid_policy,
    check_num_particles,
    decode_batches,
    empty_latent,
    forward_batches,
    jet_status,
    model_decorrelation,
    model_density,
    model_dtype_device,
    run_chunks,
)
from lgae_hep.scoring.latent import LatentColumns, latent_columns, latent_records

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "BatchResult",
    "InferenceResult",
    "InvalidJetWarning",
    "LatentColumns",
    "MassOutsideMapWarning",
    "apply_invalid_policy",
    "check_num_particles",
    "decode_batches",
    "empty_latent",
    "forward_batches",
    "jet_status",
    "latent_columns",
    "latent_records",
    "model_decorrelation",
    "model_density",
    "model_dtype_device",
    "run_chunks",
]
