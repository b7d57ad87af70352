"""Input validation and the output container shared by the autoencoder models."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["MIN_RELATIVE_MASS", "AutoencoderOutput", "check_inputs", "first_n_mask", "jet_mass",
           "parse_dtype"]

#: Smallest resolved jet mass, relative to the jet energy, wherever a jet's mass divides
#: something (mass-normalised LGAE input, mass-conditional densities). ``m^2 = E^2 - |p|^2``
#: computed from float32 momenta carries an absolute error of a few ``u E^2`` (u = 2^-24, the
#: float32 unit roundoff: one rounding per summed component, then the difference of two
#: squares), i.e. ``dm ~ E sqrt(u) = 2^-12 E``; below 2^-10 E the mass is not resolved (one
#: particle, collinear particles). Physical AK8 jets have m / E >~ 10^-2, far above it.
MIN_RELATIVE_MASS = 2.0**-10

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Map ``"float32"``/``"float64"`` (or the torch dtypes) to a real torch dtype.

    Raises
    ------
    ValueError
        For anything else (float16/bfloat16 are not supported: equivariance needs >= float32).
    """
    if isinstance(dtype, torch.dtype):
        for v in _DTYPES.values():
            if dtype == v:
                return v
    elif dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")


def dtype_name(dtype: torch.dtype) -> str:
    """Inverse of :func:`parse_dtype` (for JSON configs)."""
    return {torch.float32: "float32", torch.float64: "float64"}[dtype]


@dataclass
class AutoencoderOutput:
    """What an autoencoder's ``forward`` returns.

    Attributes
    ----------
    p4 : torch.Tensor
        Reconstructed particles (B, N_out, 4), ``(E, px, py, pz)`` in GeV.
    mask : torch.Tensor
        bool (B, N_out): reconstructed particles that count (compare with the input's mask).
    latent : dict
        The latent representation. LGAE: irrep ``(k, n)`` -> complex tensor (B, tau, d).
        GNNAE: ``{"jet": (B, L)}`` or ``{"particle": (B, N, L)}`` (real).
    features : torch.Tensor or None
        Model-specific per-particle output features (GNNAE: eta_rel, phi_rel, pT_rel [, scalars]).
    input_features : torch.Tensor or None
        The same features computed from the input (GNNAE), so a loss can compare like with like.
    scalars : torch.Tensor or None
        Reconstructed per-particle scalars (B, N_out, S) when the model was given input scalars.
    extras : dict
        Anything else a model wants to expose.
    """

    p4: torch.Tensor
    mask: torch.Tensor
    latent: dict
    features: torch.Tensor | None = None
    input_features: torch.Tensor | None = None
    scalars: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)


def jet_mass(p4: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Invariant mass (B,) of each jet's masked particles, summed in float64, and whether it is
    resolved (``m > MIN_RELATIVE_MASS * E``, finite). Empty jets are not resolved."""
    zero = torch.zeros((), dtype=p4.dtype, device=p4.device)
    jet = torch.where(mask.unsqueeze(-1), p4, zero).double().sum(1)
    e = jet[:, 0]
    m = (e**2 - (jet[:, 1:] ** 2).sum(-1)).clamp(min=0).sqrt()
    return m, torch.isfinite(m) & (m > MIN_RELATIVE_MASS * e.abs())


def first_n_mask(mask: torch.Tensor, num_out: int) -> torch.Tensor:
    """Boolean (B, num_out) mask selecting the first ``n_b`` output slots, n_b = real inputs."""
    n = mask.sum(1, keepdim=True)
    return torch.arange(num_out, device=mask.device).unsqueeze(0) < n


def check_inputs(
    p4,
    mask,
    scalars,
    *,
    num_particles: int,
    num_scalars: int,
    dtype: torch.dtype,
    device: torch.device,
    model: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate model inputs and bring them to the model's dtype/device and particle count.

    Padded particles (``mask`` False) are replaced by zeros, whatever they contained (even
    NaN/inf), so they can never reach the network; real particles must be finite. Inputs with
    fewer than ``num_particles`` slots are zero-padded to ``num_particles``.

    Returns
    -------
    p4 (B, num_particles, 4), mask (B, num_particles), scalars (B, num_particles, S) or None.

    Raises
    ------
    ValueError
        Wrong types/shapes, non-boolean mask, more particles than ``num_particles``, non-finite
        real particles, scalars given to a model built without them (or vice versa).
    """
    if not isinstance(p4, torch.Tensor):
        raise ValueError(f"{model}: p4 must be a torch.Tensor (B, N, 4), got {type(p4).__name__}")
    if p4.ndim != 3 or p4.shape[-1] != 4:
        raise ValueError(
            f"{model}: p4 must have shape (B, N, 4) with (E, px, py, pz) in GeV, "
            f"got {tuple(p4.shape)}"
        )
    if not p4.is_floating_point():
        raise ValueError(f"{model}: p4 must be floating point, got dtype {p4.dtype}")
    b, n, _ = p4.shape
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{model}: mask must be a bool torch.Tensor (B, N), got {got}")
    if tuple(mask.shape) != (b, n):
        raise ValueError(f"{model}: mask must have shape {(b, n)} like p4, got {tuple(mask.shape)}")
    if n > num_particles:
        raise ValueError(
            f"{model}: got {n} particle slots but the model was built for at most "
            f"num_particles={num_particles}; keep the {num_particles} hardest particles"
        )
    mask = mask.to(device)
    p4 = p4.to(device=device, dtype=dtype)
    m4 = mask.unsqueeze(-1)
    if not bool(torch.isfinite(p4).logical_or(~m4).all()):
        raise ValueError(f"{model}: p4 contains non-finite (NaN/inf) momenta in real particles")
    p4 = torch.where(m4, p4, torch.zeros((), dtype=dtype, device=device))
    if num_scalars == 0 and scalars is not None:
        raise ValueError(f"{model}: built without input scalars (num_scalars=0) but got scalars")
    if num_scalars > 0:
        if scalars is None:
            raise ValueError(f"{model}: built with num_scalars={num_scalars}; scalars are required")
        if not isinstance(scalars, torch.Tensor) or tuple(scalars.shape) != (b, n, num_scalars):
            got = tuple(scalars.shape) if isinstance(scalars, torch.Tensor) else type(scalars)
            raise ValueError(
                f"{model}: scalars must be a tensor of shape {(b, n, num_scalars)}, got {got}"
            )
        scalars = scalars.to(device=device, dtype=dtype)
        if not bool(torch.isfinite(scalars).logical_or(~m4).all()):
            raise ValueError(f"{model}: scalars contain non-finite values in real particles")
        scalars = torch.where(m4, scalars, torch.zeros((), dtype=dtype, device=device))
    if n < num_particles:
        pad = num_particles - n
        p4 = torch.nn.functional.pad(p4, (0, 0, 0, pad))
        mask = torch.nn.functional.pad(mask, (0, pad), value=False)
        if scalars is not None:
            scalars = torch.nn.functional.pad(scalars, (0, 0, 0, pad))
    return p4, mask, scalars
