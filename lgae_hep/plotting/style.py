"""Labels and colours shared by every figure: the experiment label, class order and colours,
axis labels of the reconstruction features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FEATURE_LABELS", "PlotLabel", "class_colors", "sort_names"]


#: axis labels of the reconstruction features (keys of :func:`features_for_plot`)
FEATURE_LABELS: dict[str, str] = {
    "pt_rel": r"Particle $p_{T}^{rel}$",
    "eta_rel": r"Particle $\eta^{rel}$",
    "phi_rel": r"Particle $\phi^{rel}$",
    "jet_mass": r"Jet mass [GeV]",
    "jet_pt": r"Jet $p_{T}$ [GeV]",
    "jet_eta": r"Jet $\eta$",
}



#: Colour cycle for classes (the CMS-recommended 10-colour palette of mplhep's CMS style).
_PALETTE = ("#3f90da", "#ffa90e", "#bd1f01", "#94a4a2", "#832db6", "#a96b59", "#e76300",
            "#b9ac70", "#717581", "#92dadd")



@dataclass(frozen=True)
class PlotLabel:
    """Experiment label of a figure: ``exp`` in bold, ``text`` beside it, and on the right
    ``[lumi fb^-1] (energy TeV)``.

    ``exp=""`` draws no experiment name: use it for generator-level studies (Pythia + FastJet
    jets are not CMS simulation and must not carry the CMS logo); ``rtext`` replaces the
    right-hand label entirely.
    """

    exp: str = "CMS"
    text: str = "Simulation"
    energy: str | float = "13"
    lumi: float | None = None
    rtext: str | None = None

    def right(self) -> str:
        if self.rtext is not None:
            return self.rtext
        lumi = f"{self.lumi:g} fb$^{{-1}}$ " if self.lumi else ""
        return f"{lumi}({self.energy:g} TeV)" if isinstance(self.energy, float) \
            else f"{lumi}({self.energy} TeV)"



def sort_names(names: Any) -> list[str]:
    """Class names in the one order every figure and table uses: case-insensitive, then
    case-sensitive (``QCD, t, W, Z``), independent of executor completion order."""
    return sorted(map(str, names), key=lambda n: (n.lower(), n))



def class_colors(names: Sequence[str]) -> dict[str, str]:
    """A fixed colour per class: the palette in :func:`sort_names` order (reproducible: the
    same classes get the same colours in every figure and every run, whatever order the
    executor returned them in)."""
    return {n: _PALETTE[i % len(_PALETTE)] for i, n in enumerate(sort_names(set(names)))}
