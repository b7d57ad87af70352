"""JSON in and out: reading the small JSON files lgae-hep takes as input (filesets, configs,
saved results) and the one sanitiser that turns results into strict JSON.

:func:`jsonable` is the only place that decides how numpy / torch values and non-finite floats
are written (``NaN`` and infinities become ``null``, so ``json.dumps(..., allow_nan=False)``
always succeeds on its output); evaluation results, ``lgae-hep run`` summaries and checkpoint
metadata all go through it.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["jsonable", "read_json"]


def read_json(path: str | Path, what: str, hint: str = "") -> Any:
    """Parse the JSON file ``path``; ``ValueError`` naming ``what`` and the path otherwise.

    Parameters
    ----------
    path : str or Path
    what : str
        What the file is, for messages (``"fileset"``, ``"--config"``, ...).
    hint : str
        Appended to the "does not exist" message (e.g. ``"; expected a JSON file"``).
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{what} {str(p)!r} does not exist{hint}")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {str(p)!r} is not valid JSON: {err}") from None


def _is_torch_tensor(obj: Any) -> bool:
    # torch is never imported here: if it is not loaded yet, obj cannot be a tensor
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def jsonable(obj: Any) -> Any:
    """Copy of ``obj`` made of plain JSON types.

    Mappings become dicts with ``str`` keys; lists, tuples and sets become lists; numpy arrays
    and torch tensors become (nested) lists; numpy scalars become Python ``bool`` / ``int`` /
    ``float`` / ``str``; non-finite floats become ``None`` (strict JSON ``null``; read back as
    NaN by :meth:`lgae_hep.metrics.EvaluationResult.from_dict`). Anything else is returned
    unchanged.
    """
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray) or _is_torch_tensor(obj):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    return obj
