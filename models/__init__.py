"""Model architectures (LGAE, GNNAE baselines) and the bundled model zoo.

``build_model(config)`` builds a fresh model from a config dict (as stored in checkpoints and
model cards), dispatching on ``config["architecture"]`` through the registry
:data:`ARCHITECTURES` (``"lgae"`` or ``"gnnae"``). It is the one model builder of lgae-hep;
:func:`lgae_hep.checkpoint.build_model` delegates to it.

What training needs to know about an architecture is asked of the model class, not of its
name: each class has ``architecture`` (its registry key), ``from_config(config)``,
``config``, ``loss_p4_scale`` (the unit of the 4-vectors in the loss) and
``loss_features(out)`` (the features the loss compares instead of the 4-vectors, or None).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from .gnnae import GNNAE
from .lgae import LGAE

__all__ = ["LGAE", "GNNAE", "build_model", "ARCHITECTURES"]

#: architecture name (``config["architecture"]``) -> model class
ARCHITECTURES: dict[str, type[nn.Module]] = {cls.architecture: cls for cls in (LGAE, GNNAE)}


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """Build an untrained model from its config.

    Parameters
    ----------
    config : mapping
        Must contain ``"architecture"``: one of ``"lgae"``, ``"gnnae"``; the other entries are
        the model's constructor arguments (as in ``model.config``).

    Raises
    ------
    ValueError
        Missing/unknown architecture (the message lists the known ones) or invalid arguments.
    """
    if not isinstance(config, Mapping) or "architecture" not in config:
        raise ValueError(f"config must be a dict with an 'architecture' entry "
                         f"({', '.join(sorted(ARCHITECTURES))}), got {config!r}")
    arch = config["architecture"]
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown model architecture {arch!r} in the config; known "
                         f"architectures: {', '.join(sorted(ARCHITECTURES))}")
    try:
        return ARCHITECTURES[arch].from_config(dict(config))
    except TypeError as err:  # unexpected/missing constructor arguments
        raise ValueError(f"config does not fit architecture {arch!r}: {err}") from None
