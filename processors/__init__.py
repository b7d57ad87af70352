"""coffea processors (installed as ``lgae_hep.processors``)."""

from .lgae import BadInputFileError, LGAEProcessor, LGAEScorer

__all__ = ["BadInputFileError", "LGAEProcessor", "LGAEScorer"]
