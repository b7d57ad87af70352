"""The result of an evaluation: :class:`EvaluationResult`, its strict-JSON I/O and summary table."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lgae_hep.jsonio import jsonable, read_json
from lgae_hep.metrics.anomaly import DEFAULT_EPS_B, eps_key

__all__ = ["EvaluationResult"]


def _nulls_to_nan(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _nulls_to_nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nulls_to_nan(v) for v in obj]
    return math.nan if obj is None else obj


@dataclasses.dataclass
class EvaluationResult:
    """Everything an evaluation measured, independent of the model's compression rate.

    Attributes
    ----------
    anomaly : dict
        Output of :func:`anomaly_metrics`.
    reconstruction : dict or None
        Output of :func:`reconstruction_metrics` on the background sample, if computed.
    compression_rate : float, dict or None
        Latent size / input size as the model reports it (see DESIGN.md section 3); the models
        report a dict of conventions, e.g. ``{"paper": ..., "p4": ...}`` (over N x 3 as in the
        paper, or over the N x 4 Cartesian inputs).
    model : str or None
        Model name or path.
    metadata : dict
        Free-form provenance (sample sizes, files, timing, versions).

    Non-finite numbers are written to JSON as ``null`` (strict JSON) and read back as NaN inside
    ``anomaly`` and ``reconstruction``.
    """

    anomaly: dict[str, Any]
    reconstruction: dict[str, Any] | None = None
    compression_rate: float | dict[str, float] | None = None
    model: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict (non-finite floats as None)."""
        return jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationResult:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, Mapping) or "anomaly" not in data:
            keys = sorted(data) if isinstance(data, Mapping) else "-"
            raise ValueError(
                "not an EvaluationResult: expected a mapping with an 'anomaly' entry, got "
                f"{type(data).__name__} with keys {keys}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"unknown EvaluationResult fields {sorted(unknown)}; known {sorted(known)}"
            )
        kw = dict(data)
        kw["anomaly"] = _nulls_to_nan(kw["anomaly"])
        if kw.get("reconstruction") is not None:
            kw["reconstruction"] = _nulls_to_nan(kw["reconstruction"])
        kw.setdefault("metadata", {})
        return cls(**kw)

    def to_json(self, path: str | Path) -> Path:
        """Write the result as strict JSON (indent 2); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> EvaluationResult:
        """Read a result written by :meth:`to_json`."""
        return cls.from_dict(read_json(path, "evaluation result file"))

    def summary_table(self) -> str:
        """Markdown table in the paper's format: AUC and eps_s at each eps_b per signal."""
        eps = self.anomaly.get("eps_b", list(DEFAULT_EPS_B))
        head = "| signal | AUC | " + " | ".join(f"eps_s @ eps_b={e:g}" for e in eps) + " |"
        rows = [head, "|" + "---|" * (2 + len(eps))]
        for name, m in self.anomaly["signals"].items():
            effs = " | ".join(f"{m['eps_s'][eps_key(e)]:.3f}" for e in eps)
            rows.append(f"| {name} | {m['auc']:.3f} | {effs} |")
        comparison = self.comparison_table()
        return "\n".join(rows) + (f"\n\n{comparison}" if comparison else "")

    def comparison_table(self) -> str:
        """The model beside the one-observable yardsticks: AUC per signal, combined AUC,
        eps_s at eps_b = 0.1, mass sculpting (1/JSD at eps_b = 0.1) and the Spearman
        correlation with the mass. Empty when the result has no yardsticks."""
        yard = self.anomaly.get("yardsticks")
        if not yard:
            return ""
        names = [k for k in self.anomaly["signals"] if k != "combined"]
        head = ("| score | " + " | ".join(f"{n} AUC" for n in names)
                + " | combined AUC | eps_s @ 0.1 | 1/JSD @ 0.1 | Spearman with mass |")
        rows = [head, "|" + "---|" * (5 + len(names))]

        def row(label: str, m: Mapping[str, Any], sculpt: Mapping[str, Any] | None) -> str:
            sig = m["signals"]
            comb = sig.get("combined", sig[names[0]])
            inv = sculpt["inv_jsd"].get("0.1") if sculpt else None
            rho = sculpt["spearman"] if sculpt else None
            cells = [f"{sig[n]['auc']:.3f}" for n in names]
            cells += [f"{comb['auc']:.3f}", f"{comb['eps_s'].get('0.1', float('nan')):.3f}",
                      "-" if inv is None else f"{inv:.1f}", "-" if rho is None else f"{rho:.2f}"]
            return f"| {label} | " + " | ".join(cells) + " |"

        rows.append(row(f"**{self.model or 'model'}**", self.anomaly,
                        self.anomaly.get("sculpting")))
        for name, m in yard.items():
            rows.append(row(name, m, m.get("sculpting")))
        return "\n".join(rows)
