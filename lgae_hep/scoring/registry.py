"""The one registry of anomaly scores: name -> kind, how it is computed, axis, label, unit.

Every entry point reads it: :func:`lgae_hep.score` and the other API functions (which names are
valid), the scoring engine (how to compute one), the coffea processor and ``lgae-hep run`` (the
histogram axis), the CLI (``--metric`` choices) and the plots (axis labels).

Kinds
-----
``"reconstruction"``
    A per-jet distance between the jet and the model's reconstruction of it
    (:mod:`lgae_hep.losses`); ``compute(x, y, mask_x, mask_y)`` on float64 clouds.
``"density"``
    ``-log p`` of the jet's latent invariants (and its log mass) under the QCD density stored
    in the model file (:class:`lgae_hep.density.LatentDensity`); ``compute`` is None, the
    engine asks the model's density for the score ``name``.

>>> from lgae_hep.scoring.registry import SCORES, score_names
>>> SCORES["chamfer"].kind, SCORES["chamfer"].unit
('reconstruction', 'GeV^2')
>>> score_names("density")
('latent-density', 'latent-density-given-mass', 'latent-density-joint')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from lgae_hep.losses import chamfer, chamfer_dr

__all__ = ["SCORES", "ScoreSpec", "check_score", "is_density_score", "score_names"]

Kind = Literal["reconstruction", "density"]


@dataclass(frozen=True)
class ScoreSpec:
    """One registered anomaly score (module docstring)."""

    #: registry key, e.g. ``"chamfer"``
    name: str
    #: ``"reconstruction"`` or ``"density"``
    kind: Kind
    #: plot / histogram axis label (matplotlib mathtext)
    label: str
    #: unit of the value (``""``: dimensionless)
    unit: str
    #: default histogram binning ``(bins, lo, hi)``
    axis: tuple[int, float, float]
    #: whether :attr:`axis` is log-spaced
    log_axis: bool
    #: ``compute(x, y, mask_x, mask_y) -> (B,)`` for reconstruction scores, else None
    compute: Callable[..., Any] | None
    #: one line for ``--help`` and docs
    description: str


#: Linear axis of the ``-log p`` density scores (a few units wide, any sign).
_DENSITY_AXIS = (200, -20.0, 80.0)

SCORES: dict[str, ScoreSpec] = {
    s.name: s
    for s in (
        ScoreSpec("chamfer", "reconstruction", "Anomaly score (Chamfer) [GeV$^2$]", "GeV^2",
                  (120, 1e-2, 1e10), True, chamfer,
                  "Cartesian 4-vector Chamfer distance of jet and reconstruction (GeV^2; units "
                  "of the jet mass for a mass-normalised model)"),
        ScoreSpec("chamfer-dr", "reconstruction",
                  r"Anomaly score (Chamfer $\Delta R$, $p_T$-weighted)", "", (100, 1e-4, 10.0),
                  True, chamfer_dr, "pT-weighted angular Chamfer distance (dimensionless)"),
        ScoreSpec("latent-density", "density", r"Anomaly score ($-\log p$ of the latent)", "",
                  _DENSITY_AXIS, False, None,
                  "-log p of the latent invariants under the QCD density (mass integrated out)"),
        ScoreSpec("latent-density-given-mass", "density",
                  r"Anomaly score ($-\log p$ of the latent given $m$)", "", _DENSITY_AXIS,
                  False, None, "-log p(latent | m) under the QCD density: the mass conditioned "
                  "out"),
        ScoreSpec("latent-density-joint", "density",
                  r"Anomaly score ($-\log p$ of latent and $m$)", "", _DENSITY_AXIS, False, None,
                  "-log p(m, latent) under the QCD density"),
    )
}


def score_names(kind: Kind | None = None) -> tuple[str, ...]:
    """Registered score names (of one ``kind``), in registry order."""
    return tuple(n for n, s in SCORES.items() if kind is None or s.kind == kind)


def check_score(name: Any) -> ScoreSpec:
    """The :class:`ScoreSpec` of ``name``; ``ValueError`` listing the valid names otherwise."""
    if not isinstance(name, str) or name not in SCORES:
        raise ValueError(f"unknown anomaly-score metric {name!r}; choose one of "
                         f"{list(SCORES)}")
    return SCORES[name]


def is_density_score(name: str) -> bool:
    """Whether ``name`` is a registered density score (needs a model with a latent density)."""
    return name in SCORES and SCORES[name].kind == "density"
