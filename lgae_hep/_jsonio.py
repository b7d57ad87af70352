"""Reading the small JSON files lgae-hep takes as input (filesets, configs, saved results)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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
