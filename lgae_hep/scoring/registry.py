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
``"exposure"``
    The logit of the model's exposure head: does the jet's latent look like a QCD jet's or like
    a QCD jet given extra hard prongs at its own mass (:mod:`lgae_hep.scoring.exposure`);
    ``compute`` is None, the engine asks the model's head.
``"decorrelated"``
    ``"<base>-decorrelated"``: the QCD quantile of the score ``base`` among QCD jets of the same
    mass (:class:`lgae_hep.scoring.decorrelation.MassDecorrelation`, a map stored in the model
    file), reported as ``-log(1 - F)``; a cut keeps the QCD mass shape by construction.

>>> from lgae_hep.scoring.registry import SCORES, score_names
>>> SCORES["chamfer"].kind, SCORES["chamfer"].unit
('reconstruction', 'GeV^2')
>>> score_names("density")
('latent-density', 'latent-density-given-mass', 'latent-density-joint')
>>> SCORES["chamfer-dr-decorrelated"].base
'chamfer-dr'

"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from lgae_hep.losses import chamfer, chamfer_dr

__all__ = ["SCORES", "ScoreSpec", "check_score", "is_density_score", "is_exposure_score",
           "score_names"]

Kind = Literal["reconstruction", "density", "exposure", "decorrelated"]


@dataclass(frozen=True)
class ScoreSpec:
    """One registered anomaly score (module docstring)."""

    #: registry key, e.g. ``"chamfer"``
    name: str
    #: ``"reconstruction"``, ``"density"``, ``"exposure"`` or ``"decorrelated"``
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
    #: the score a ``"decorrelated"`` entry maps (None for the others)
    base: str | None = None


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
        ScoreSpec("exposure", "exposure", r"Anomaly score (exposure-head logit)", "",
                  (200, -30.0, 30.0), False, None,
                  "logit of the model's exposure head: QCD jet or QCD jet with extra hard "
                  "prongs at its own mass, from the latent invariants and log m"),
    )
}


#: Axis of the decorrelated scores ``-log(1 - F)``: 0 (QCD median region) to ~9 (the fit's
#: resolution, 1 / (2 n_bin)) plus the tail beyond the largest QCD value.
_DECORRELATED_AXIS = (120, 0.0, 15.0)
for _base in list(SCORES):
    SCORES[f"{_base}-decorrelated"] = ScoreSpec(
        f"{_base}-decorrelated", "decorrelated",
        rf"$-\log(1 - F_{{QCD}})$ of {_base} given $m$", "", _DECORRELATED_AXIS, False, None,
        f"QCD quantile of {_base} among QCD jets of the same mass (-log(1 - F); needs a model "
        "file with a mass decorrelation map)", base=_base)
del _base


def score_names(kind: Kind | None = None) -> tuple[str, ...]:
    """Registered score names (of one ``kind``), in registry order."""
    return tuple(n for n, s in SCORES.items() if kind is None or s.kind == kind)


def check_score(name: Any) -> ScoreSpec:
    """The :class:`ScoreSpec` of ``name``; ``ValueError`` listing the valid names otherwise."""
    if not isinstance(name, str) or name not in SCORES:
        raise ValueError(f"unknown anomaly-score metric {name!r}; choose one of "
                         f"{list(SCORES)}")
    return SCORES[name]


def _own_kind(name: str) -> str | None:
    spec = SCORES.get(name)
    if spec is not None and spec.kind == "decorrelated":
        spec = SCORES[spec.base]
    return None if spec is None else spec.kind


def is_exposure_score(name: str) -> bool:
    """Whether ``name`` is the exposure score (needs a model with an exposure head), itself or
    as the base of a decorrelated score."""
    return _own_kind(name) == "exposure"


def is_density_score(name: str) -> bool:
    """Whether ``name`` is a registered density score (needs a model with a latent density),
    itself or as the base of a decorrelated score."""
    return _own_kind(name) == "density"
