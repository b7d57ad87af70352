"""Reference vectors ("spurions"): fixed lab-frame 4-vectors that break SO+(3,1) on purpose.

A fully equivariant network sees only the Lorentz invariants of a jet; the lab frame (how the
energy is shared, the decay angle relative to the jet's boost) is invisible to it. Feeding it
fixed 4-vectors ``r_a`` as well keeps it exactly *covariant*, ``f(L p, L r) = L f(p, r)``,
while the function of the particles alone, ``p -> f(p, r)``, is equivariant only under the
subgroup that fixes every ``r_a``:

* ``"time"``: the lab time direction ``(1, 0, 0, 0)``; kept by the rotations SO(3);
* ``"beam"``: the beam axis ``(0, 0, 0, 1)``; kept by SO+(2, 1): rotations about z and boosts
  *transverse* to z;
* both: rotations about z only.

Note (against DESIGN 5b / issue 21, which say the beam axis keeps boosts along z): a boost
along z maps ``(0, 0, 0, 1)`` to ``(sinh y, 0, 0, cosh y)``; no fixed 4-vector is kept by
z-boosts (the light-like beams ``(1, 0, 0, +-1)`` of LorentzNet/PELICAN are only rescaled).
What rotations about and boosts along z keep is the (t, z) plane, i.e. the bivector
``t ^ z`` (a (2, 0) + (0, 2) tensor) or the projector onto the plane; a reference of that kind
would enter as the per-node vectors ``(p_i . z) t - (p_i . t) z`` and ``(p_i . t) t - (p_i . z)
z`` and the invariant ``E_i^2 - p_z,i^2`` (not implemented; tests/models/test_references.py
checks the subgroup that the 4-vector actually keeps).

This is LorentzNet's / PELICAN's beam particles and L-GATr's reference multivectors. How the
LGAE consumes them is described in :mod:`lgae_hep.models.lgae`. The vectors are dimensionless
directions (their scale never mixes with the jet's momentum scale: a global rescaling of the
momenta commutes with every Lorentz transformation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["REFERENCE_VECTORS", "check_references", "minkowski_products", "parse_references",
           "reference_matrix"]

#: name -> Cartesian ``(E, px, py, pz)`` of the lab reference vector, and what keeps it
REFERENCE_VECTORS: dict[str, tuple[float, float, float, float]] = {
    "time": (1.0, 0.0, 0.0, 0.0),
    "beam": (0.0, 0.0, 0.0, 1.0),
}
_KEEPS = {"time": "lab time direction (1, 0, 0, 0): keeps rotations",
          "beam": "beam axis (0, 0, 0, 1): keeps rotations about z and transverse boosts"}


def _valid() -> str:
    return "; ".join(f"{n!r} ({_KEEPS[n]})" for n in REFERENCE_VECTORS)


def parse_references(references: Sequence[str] | None) -> tuple[str, ...]:
    """Validate a list of reference-vector names (config key ``"references"``).

    ``None`` and ``[]`` mean none (the exactly equivariant model). Order is kept (it is the
    order of the network's reference channels); names may not repeat.

    Raises
    ------
    ValueError
        Not a list of strings, an unknown name (the message lists the valid ones), or a repeat.
    """
    if references is None:
        return ()
    if isinstance(references, str) or not isinstance(references, (list, tuple)):
        raise ValueError(f"references must be a list of reference-vector names, e.g. ['time'] "
                         f"or ['time', 'beam'], got {references!r}; valid names: {_valid()}")
    names = tuple(references)
    for n in names:
        if n not in REFERENCE_VECTORS:
            raise ValueError(f"unknown reference vector {n!r} in references={list(names)!r}; "
                             f"valid names: {_valid()}")
    if len(set(names)) != len(names):
        raise ValueError(f"references={list(names)!r} repeats a name")
    return names


def reference_matrix(names: Sequence[str], dtype=torch.float64,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """The lab reference vectors of ``names`` as a real (R, 4) Cartesian tensor."""
    return torch.tensor([REFERENCE_VECTORS[n] for n in names], dtype=dtype,
                        device=device).reshape(len(names), 4)


def check_references(references, names: Sequence[str], batch: int, *, dtype: torch.dtype,
                     device: torch.device, model: str = "LGAE") -> torch.Tensor | None:
    """Validate per-jet reference vectors for a model built with ``names``.

    ``references``: None (the lab vectors of ``names`` for every jet) or a real tensor
    (B, R, 4), ``(E, px, py, pz)``, R = ``len(names)`` in that order (e.g. the lab vectors
    transformed into the frame the jets were transformed into). Returns (B, R, 4) in
    ``dtype`` on ``device``, or None for a model without references.

    Raises
    ------
    ValueError
        References given to a model built without them, wrong type/shape, non-finite values.
    """
    if not names:
        if references is not None:
            raise ValueError(
                f"{model}: got references= but the model was built without reference vectors "
                f"(config references=[]): it is exactly Lorentz equivariant and has no reference "
                f"inputs. Reference vectors must be chosen when the model is built and trained "
                f"(LGAE(references=['time'])); valid names: {_valid()}")
        return None
    r = len(names)
    if references is None:
        return reference_matrix(names, dtype, device).expand(batch, r, 4)
    if not isinstance(references, torch.Tensor):
        raise ValueError(f"{model}: references must be a torch.Tensor (B, {r}, 4), got "
                         f"{type(references).__name__}")
    if tuple(references.shape) != (batch, r, 4) or not references.is_floating_point():
        raise ValueError(
            f"{model}: references must be a real tensor of shape {(batch, r, 4)} (per jet, the "
            f"4-vectors {list(names)} in (E, px, py, pz)), got {tuple(references.shape)} "
            f"{references.dtype}")
    references = references.to(device=device, dtype=dtype)
    if not bool(torch.isfinite(references).all()):
        raise ValueError(f"{model}: references contain non-finite values")
    return references


def minkowski_products(p: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
    """``p_i . r_a`` (metric +---) of real (B, N, 4) momenta and (B, R, 4) references ->
    (B, N, R): Lorentz invariants when both transform together."""
    metric = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=p.dtype, device=p.device)
    return (p * metric) @ refs.transpose(1, 2)
