"""Model architectures (LGAE, GNNAE baselines) and the bundled model zoo.

``build_model(config)`` builds a fresh model from a config dict (as stored in checkpoints and
model cards), dispatching on ``config["architecture"]`` (``"lgae"`` or ``"gnnae"``).
"""

from __future__ import annotations

from typing import Any

from .gnnae import GNNAE
from .lgae import LGAE

__all__ = ["LGAE", "GNNAE", "build_model", "ARCHITECTURES"]

ARCHITECTURES = {"lgae": LGAE, "gnnae": GNNAE}


def build_model(config: dict[str, Any]):
    """Build an untrained model from its config.

    Parameters
    ----------
    config : dict
        Must contain ``"architecture"``: one of ``"lgae"``, ``"gnnae"``; the other entries are
        the model's constructor arguments (as in ``model.config``).

    Raises
    ------
    ValueError
        Missing/unknown architecture or invalid arguments.
    """
    if not isinstance(config, dict) or "architecture" not in config:
        raise ValueError(f"config must be a dict with an 'architecture' entry "
                         f"({sorted(ARCHITECTURES)}), got {config!r}")
    arch = config["architecture"]
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}")
    try:
        return ARCHITECTURES[arch].from_config(config)
    except TypeError as err:
        raise ValueError(f"invalid config for {arch!r}: {err}") from err
