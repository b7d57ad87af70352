"""GNNAE baselines of the LGAE paper: fully connected message-passing autoencoders (MPGAN style).

Both variants work on per-particle relative coordinates, as JetNet:

* ``eta_rel = eta - eta_jet``, ``phi_rel = phi - phi_jet`` wrapped to [-pi, pi),
  ``pT_rel = pT / pT_jet``, where the jet axis is the sum of the real particles' 4-vectors;
* optional per-particle input scalars are appended as further features.

``forward(p4, mask, scalars=None)`` nevertheless takes GeV 4-vectors (the project-wide model
contract) and returns ``.p4`` in GeV: the decoded relative coordinates are converted back with
the *input* jet's axis (pT_jet, eta_jet, phi_jet) into **massless** 4-vectors
``pT = |pT_rel| pT_jet, eta = eta_rel + eta_jet, phi = phi_rel + phi_jet``, so a Chamfer
distance on 4-vectors is comparable with the LGAE's. (The jet axis is side information that is
not part of the latent; neither is the particle multiplicity, see below.) ``.features`` holds the
decoded relative coordinates and ``.input_features`` those of the input, for losses in the
coordinates the network actually sees. These models are not Lorentz equivariant.

Message passing layer (MPGAN): for every ordered pair i != j of real particles,
``m_ij = f_e([h_i, h_j, |h_i - h_j|])``; ``h_i' = f_n([h_i, mean_j m_ij])`` with two-layer
MLPs and LeakyReLU(0.2). Padded particles send and receive nothing and are zeroed after every
layer.

* ``encoding="jet"`` (GNNAE-JL): the per-node encodings are averaged over real particles to a
  latent vector of size ``latent_dim``; the decoder maps it to ``num_particles`` nodes with a
  learned linear map, runs message passing over all of them (it sees only the latent) and the
  output mask keeps the first ``n`` nodes, ``n`` the input multiplicity.
* ``encoding="particle"`` (GNNAE-PL): a latent of size ``latent_dim`` per particle; the decoder
  message-passes on the input's mask and the output mask equals the input mask.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from lgae_hep.data import DEFAULT_NUM_PARTICLES
from lgae_hep.nn.io import AutoencoderOutput, check_inputs, dtype_name, first_n_mask, parse_dtype

__all__ = ["GNNAE", "relative_coordinates", "relative_to_p4"]

_EPS = 1e-12


def _jet_axis(p4: torch.Tensor, mask: torch.Tensor):
    jet = (p4 * mask.unsqueeze(-1)).sum(1)  # (B, 4)
    px, py, pz = jet[:, 1], jet[:, 2], jet[:, 3]
    pt = torch.sqrt(px * px + py * py)
    eta = torch.asinh(pz / pt.clamp(min=_EPS))
    phi = torch.atan2(py, px)
    return pt, eta, phi


def _wrap(phi: torch.Tensor) -> torch.Tensor:
    return torch.remainder(phi + math.pi, 2 * math.pi) - math.pi


def relative_coordinates(p4: torch.Tensor, mask: torch.Tensor):
    """JetNet relative coordinates of the particles of each jet.

    Parameters
    ----------
    p4 : torch.Tensor
        (B, N, 4) ``(E, px, py, pz)``; padded entries must be zero.
    mask : torch.Tensor
        bool (B, N).

    Returns
    -------
    features : torch.Tensor
        (B, N, 3) ``(eta_rel, phi_rel, pT_rel)``, zero for padded particles.
    axis : tuple of torch.Tensor
        ``(pT_jet, eta_jet, phi_jet)``, each (B,), of the summed real 4-vectors.
    """
    pt_j, eta_j, phi_j = _jet_axis(p4, mask)
    px, py, pz = p4[..., 1], p4[..., 2], p4[..., 3]
    pt = torch.sqrt(px * px + py * py)
    eta = torch.asinh(pz / pt.clamp(min=_EPS))
    phi = torch.atan2(py, px)
    feats = torch.stack(
        [eta - eta_j[:, None], _wrap(phi - phi_j[:, None]), pt / pt_j.clamp(min=_EPS)[:, None]],
        dim=-1,
    )
    return feats * mask.unsqueeze(-1), (pt_j, eta_j, phi_j)


def relative_to_p4(features: torch.Tensor, axis) -> torch.Tensor:
    """Massless GeV 4-vectors from ``(eta_rel, phi_rel, pT_rel)`` and a jet axis.

    ``pT = |pT_rel| pT_jet`` (a negative decoded pT_rel is read as its magnitude).
    """
    pt_j, eta_j, phi_j = axis
    pt = features[..., 2].abs() * pt_j[:, None]
    eta = features[..., 0] + eta_j[:, None]
    phi = features[..., 1] + phi_j[:, None]
    return torch.stack(
        [pt * torch.cosh(eta), pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)],
        dim=-1,
    )


class _MPLayer(nn.Module):
    """One fully connected MPGAN-style message-passing layer (masked)."""

    def __init__(self, dim_in: int, dim_out: int, hidden: int, dtype: torch.dtype):
        super().__init__()
        # first edge linear split as W_i h_i + W_j h_j + w_d |h_i - h_j| (no (B,N,N,2H) concat)
        self.e_i = nn.Linear(dim_in, hidden, dtype=dtype)
        self.e_j = nn.Linear(dim_in, hidden, bias=False, dtype=dtype)
        self.e_d = nn.Parameter(torch.randn(hidden, dtype=dtype) / math.sqrt(2 * dim_in + 1))
        self.e_2 = nn.Linear(hidden, hidden, dtype=dtype)
        self.n_1 = nn.Linear(dim_in + hidden, hidden, dtype=dtype)
        self.n_2 = nn.Linear(hidden, dim_out, dtype=dtype)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, _ = h.shape
        diff = h.unsqueeze(2) - h.unsqueeze(1)
        dist = torch.sqrt((diff * diff).sum(-1) + _EPS)  # (B, N, N), smooth at 0
        pre = self.e_i(h).unsqueeze(2) + self.e_j(h).unsqueeze(1) + dist.unsqueeze(-1) * self.e_d
        msg = self.act(self.e_2(self.act(pre)))  # (B, N, N, H)
        eye = torch.eye(n, dtype=torch.bool, device=h.device)
        pair = (mask.unsqueeze(2) & mask.unsqueeze(1) & ~eye).to(h.dtype)  # (B, N, N)
        cnt = pair.sum(2, keepdim=True).clamp(min=1)
        # an explicit weighted sum rather than einsum: einsum's GEMM blocking depends on the
        # batch size, which made a jet's output differ by 1 ulp with its batch mates
        agg = ((pair / cnt).unsqueeze(-1) * msg).sum(2)
        out = self.n_2(self.act(self.n_1(torch.cat([h, agg], -1))))
        return out * mask.unsqueeze(-1).to(h.dtype)


class GNNAE(nn.Module):
    """GNNAE-JL / GNNAE-PL baseline autoencoder (see the module docstring).

    Parameters
    ----------
    encoding : {"jet", "particle"}
        Jet-level (JL) or particle-level (PL) latent.
    num_particles : int
        Particles per jet the model is built for (inputs may have fewer slots).
    latent_dim : int
        Latent size: per jet (JL) or per particle (PL). Defaults: 18 for JL (the number of real
        latent numbers of LGAE-Mix with tau_v = 2, i.e. the same 20 % compression), 2 for PL.
    hidden_dim : int
        Node and edge hidden size.
    num_layers_encoder, num_layers_decoder : int
        Message-passing layers on each side (>= 1).
    num_scalars : int
        Number of per-particle input scalars appended to the features (0 = none).
    dtype : {"float32", "float64"}
    """

    #: ``config["architecture"]``: the key of this class in :data:`lgae_hep.models.ARCHITECTURES`
    architecture = "gnnae"
    #: 4-vectors enter the training loss in TeV; used only for an output without
    #: :meth:`loss_features` (the GNNAE loss compares the relative coordinates)
    loss_p4_scale = 1e-3

    def __init__(
        self,
        encoding: str = "jet",
        num_particles: int = DEFAULT_NUM_PARTICLES,
        latent_dim: int | None = None,
        hidden_dim: int = 32,
        num_layers_encoder: int = 2,
        num_layers_decoder: int = 2,
        num_scalars: int = 0,
        dtype: str | torch.dtype = "float32",
    ):
        super().__init__()
        if encoding not in ("jet", "particle"):
            raise ValueError(f"encoding must be 'jet' or 'particle', got {encoding!r}")
        for name, v, lo in [("num_particles", num_particles, 1), ("hidden_dim", hidden_dim, 1),
                            ("num_layers_encoder", num_layers_encoder, 1),
                            ("num_layers_decoder", num_layers_decoder, 1),
                            ("num_scalars", num_scalars, 0)]:
            if not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if latent_dim is None:
            latent_dim = 18 if encoding == "jet" else 2
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be an integer >= 1, got {latent_dim!r}")
        self.encoding = encoding
        self.num_particles = num_particles
        self.latent_dim = latent_dim
        self.hidden_dim = hidden_dim
        self.num_layers_encoder = num_layers_encoder
        self.num_layers_decoder = num_layers_decoder
        self.num_scalars = num_scalars
        self.dtype = parse_dtype(dtype)
        dt, h, f = self.dtype, hidden_dim, 3 + num_scalars

        self.encoder = nn.ModuleList(
            [_MPLayer(f if i == 0 else h, h, h, dt) for i in range(num_layers_encoder)]
        )
        self.to_latent = nn.Linear(h, latent_dim, dtype=dt)
        if encoding == "jet":
            self.from_latent = nn.Linear(latent_dim, num_particles * h, dtype=dt)
        else:
            self.from_latent = nn.Linear(latent_dim, h, dtype=dt)
        self.decoder = nn.ModuleList([_MPLayer(h, h, h, dt) for _ in range(num_layers_decoder)])
        self.to_features = nn.Linear(h, f, dtype=dt)

    # ------------------------------------------------------------------ config
    @property
    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments plus ``"architecture": "gnnae"``."""
        return {
            "architecture": self.architecture,
            "encoding": self.encoding,
            "num_particles": self.num_particles,
            "latent_dim": self.latent_dim,
            "hidden_dim": self.hidden_dim,
            "num_layers_encoder": self.num_layers_encoder,
            "num_layers_decoder": self.num_layers_decoder,
            "num_scalars": self.num_scalars,
            "dtype": dtype_name(self.dtype),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GNNAE:
        """Build a fresh (untrained) model from :attr:`config`."""
        cfg = dict(config)
        arch = cfg.pop("architecture", cls.architecture)
        if arch != cls.architecture:
            raise ValueError(f"config architecture must be {cls.architecture!r}, got {arch!r}")
        return cls(**cfg)

    def loss_features(self, out: AutoencoderOutput) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(output, input) features the training loss compares: the relative coordinates
        ``(eta_rel, phi_rel, pT_rel[, scalars])`` the network sees, as in the paper's GNNAE
        baselines (None when the output lacks them: the 4-vectors are compared then)."""
        if out.features is None or out.input_features is None:
            return None
        return out.features, out.input_features

    @property
    def compression_rate(self) -> dict[str, float]:
        """Latent real numbers over input real numbers, in the paper's and the literal convention.

        ``"paper"``: over ``num_particles x 3`` (eta_rel, phi_rel, pT_rel);
        ``"p4"``: over ``num_particles x 4`` Cartesian inputs.
        """
        n_lat = self.latent_dim * (1 if self.encoding == "jet" else self.num_particles)
        return {"paper": n_lat / (3 * self.num_particles),
                "p4": n_lat / (4 * self.num_particles)}

    # ----------------------------------------------------------------- forward
    def encode(self, p4, mask, scalars=None):
        """Latent of the validated inputs: ``(latent, features, axis, mask)``."""
        p4, mask, scalars = check_inputs(
            p4, mask, scalars, num_particles=self.num_particles, num_scalars=self.num_scalars,
            dtype=self.dtype, device=self.to_latent.weight.device, model="GNNAE",
        )
        feats, axis = relative_coordinates(p4, mask)
        if scalars is not None:
            feats = torch.cat([feats, scalars], -1)
        h = feats
        for layer in self.encoder:
            h = layer(h, mask)
        z = self.to_latent(h)
        mf = mask.unsqueeze(-1).to(z.dtype)
        if self.encoding == "jet":
            z = (z * mf).sum(1) / mf.sum(1).clamp(min=1)
        else:
            z = z * mf
        return z, feats, axis, mask

    def decode(self, z: torch.Tensor, mask: torch.Tensor):
        """Decoded per-particle features (B, N, 3 + S) and the output mask."""
        if self.encoding == "jet":
            h = self.from_latent(z).view(z.shape[0], self.num_particles, self.hidden_dim)
            dec_mask = torch.ones_like(mask)
            out_mask = first_n_mask(mask, self.num_particles)
        else:
            h = self.from_latent(z) * mask.unsqueeze(-1).to(z.dtype)
            dec_mask = out_mask = mask
        for layer in self.decoder:
            h = layer(h, dec_mask)
        return self.to_features(h) * out_mask.unsqueeze(-1).to(h.dtype), out_mask

    def forward(self, p4, mask, scalars=None) -> AutoencoderOutput:
        """Encode and decode a batch of jets.

        Parameters
        ----------
        p4 : torch.Tensor
            (B, N, 4) ``(E, px, py, pz)`` in GeV, N <= ``num_particles``.
        mask : torch.Tensor
            bool (B, N).
        scalars : torch.Tensor, optional
            (B, N, num_scalars).

        Returns
        -------
        AutoencoderOutput
            ``.p4`` massless GeV 4-vectors (B, num_particles, 4), ``.mask``, ``.latent``
            (``{"jet": (B, L)}`` or ``{"particle": (B, N, L)}``), ``.features`` /
            ``.input_features`` (B, num_particles, 3 + S) in relative coordinates,
            ``.scalars`` the decoded scalars (or None).
        """
        z, feats, axis, mask = self.encode(p4, mask, scalars)
        out, out_mask = self.decode(z, mask)
        p4_out = relative_to_p4(out, axis) * out_mask.unsqueeze(-1).to(out.dtype)
        return AutoencoderOutput(
            p4=p4_out,
            mask=out_mask,
            latent={self.encoding: z},
            features=out,
            input_features=feats,
            scalars=out[..., 3:] if self.num_scalars else None,
            extras={"jet_axis": axis},
        )
