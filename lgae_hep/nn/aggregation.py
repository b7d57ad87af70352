"""Permutation-invariant (and ``mix``) aggregations of node features to a jet latent."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lgae_hep.lorentz import invariant_form

from .cg_product import Feats, complex_dtype
from .mixreps import MixReps

__all__ = ["Aggregation", "AGGREGATIONS", "parse_aggregation"]

AGGREGATIONS = ("mean", "sum", "min", "max", "mix")


def parse_aggregation(method: str) -> list[str]:
    """Split ``"min&max"`` into ``["min", "max"]`` and validate every part."""
    if not isinstance(method, str) or not method:
        raise ValueError(f"aggregation must be a non-empty string like 'mean' or 'min&max', "
                         f"got {method!r}")
    parts = [m.strip() for m in method.split("&")]
    for m in parts:
        if m not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {m!r} in {method!r}; expected one of "
                             f"{AGGREGATIONS} or '&'-combinations such as 'min&max'")
    if len(set(parts)) != len(parts):
        raise ValueError(f"aggregation {method!r} repeats a method")
    return parts


class Aggregation(nn.Module):
    """Aggregate node features (B, N, tau, d) over particles to a latent (B, tau', d).

    * ``mean`` / ``sum``: over real particles (a jet without particles gives zeros).
    * ``min`` / ``max``: per channel, the particle whose vector has the smallest / largest
      invariant norm ``Re(v^T M v)`` (``M`` the invariant bilinear form of the irrep; for (1, 1)
      the Minkowski metric, so for ``v = a + i b`` the norm is ``a.a - b.b``; for (0, 0) it is
      ``Re(v^2)``). The whole complex vector of that particle is taken (real and imaginary parts
      together), so the choice is equivariant. Ties go to the first such particle.
    * ``mix``: the N particle slots are concatenated along the channel axis and mixed with one
      learned complex matrix per irrep (:class:`MixReps`); not permutation invariant.
    * ``"a&b"``: the results are concatenated along the channel axis (latent channels add up).

    Parameters
    ----------
    method : str
    num_particles : int
        N (needed by ``mix``).
    tau : dict
        Node channels per irrep (= latent channels per method).
    """

    def __init__(self, method: str, num_particles: int, tau: dict, dtype=torch.float32):
        super().__init__()
        self.methods = parse_aggregation(method)
        self.num_particles = num_particles
        self.tau = dict(tau)
        cdt = complex_dtype(dtype)
        for r in self.tau:
            m = np.array(invariant_form(r))
            m[np.abs(m) < 1e-12] = 0.0
            self.register_buffer(f"form_{r[0]}_{r[1]}", torch.as_tensor(m, dtype=cdt),
                                 persistent=False)
        if "mix" in self.methods:
            self.mixer = MixReps({r: num_particles * t for r, t in self.tau.items()}, self.tau,
                                 dtype=dtype, bias=False)

    @property
    def tau_latent(self) -> dict:
        """Latent channels per irrep (node channels x number of methods)."""
        return {r: t * len(self.methods) for r, t in self.tau.items()}

    def norm(self, x: torch.Tensor, rep) -> torch.Tensor:
        """Real invariant ``Re(v^T M v)`` per node and channel: (B, N, tau)."""
        m = getattr(self, f"form_{rep[0]}_{rep[1]}")
        return ((x @ m.T) * x).sum(-1).real

    def _select(self, x, rep, mask, largest: bool):
        q = self.norm(x, rep)
        fill = float("-inf") if largest else float("inf")
        q = q.masked_fill(~mask.unsqueeze(-1), fill)
        idx = q.argmax(1) if largest else q.argmin(1)  # (B, tau)
        b, _, tau, d = x.shape
        return x.gather(1, idx.view(b, 1, tau, 1).expand(b, 1, tau, d)).squeeze(1)

    def forward(self, feats: Feats, mask: torch.Tensor) -> Feats:
        """``feats`` irrep -> (B, N, tau, d) with padded nodes zero; ``mask`` (B, N)."""
        out: dict = {r: [] for r in self.tau}
        mf = mask.to(next(iter(feats.values())).real.dtype)[:, :, None, None]
        n = mf.sum(1).clamp(min=1)
        for m in self.methods:
            if m == "mix":
                b = mask.shape[0]
                flat = {r: feats[r].reshape(b, -1, feats[r].shape[-1]) for r in self.tau}
                for r, y in self.mixer(flat).items():
                    out[r].append(y)
                continue
            for r in self.tau:
                x = feats[r]
                if m == "sum":
                    y = (x * mf).sum(1)
                elif m == "mean":
                    y = (x * mf).sum(1) / n
                else:
                    y = self._select(x, r, mask, largest=(m == "max"))
                out[r].append(y)
        return {r: torch.cat(ys, dim=1) for r, ys in out.items()}

    def forward_packed(self, feats: Feats, mask: torch.Tensor) -> Feats:
        """:meth:`forward` for packed node features ``(tau, B, d, N)`` (padded nodes zero);
        returns the latent in the public layout irrep -> ``(B, tau', d)``."""
        out: dict = {r: [] for r in self.tau}
        x0 = next(iter(feats.values()))
        mf = mask.to(x0.real.dtype)[None, :, None, :]
        n = mf.sum(-1).clamp(min=1)  # (1, B, 1)
        b = mask.shape[0]
        for m in self.methods:
            if m == "mix":
                # slot n, channel c -> mixer input channel n * tau + c, as in forward
                for r in self.tau:
                    x = feats[r]
                    t, _, d, npart = x.shape
                    flat = x.permute(3, 0, 1, 2).reshape(npart * t, b * d)
                    w = self.mixer.weights[f"{r[0]}_{r[1]}"]
                    out[r].append((w @ flat).view(-1, b, d).transpose(0, 1))
                continue
            for r in self.tau:
                x = feats[r]
                if m == "sum":
                    y = (x * mf).sum(-1).transpose(0, 1)
                elif m == "mean":
                    y = ((x * mf).sum(-1) / n).transpose(0, 1)
                else:
                    y = self._select(x.permute(1, 3, 0, 2), r, mask, largest=(m == "max"))
                out[r].append(y)
        return {r: torch.cat(ys, dim=1) for r, ys in out.items()}
