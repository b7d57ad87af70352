"""Equivariance precision of the LGAE: relative deviation vs boost gamma and rotation angle.

For random-weight LGAE-Mix models (float32 and float64) and generated jets, prints

    max |f(L p) - L f(p)| / max |L f(p)|

for boosts along a random axis with gamma = 1 ... 1e4 and for rotations by angles 0 ... pi.

Usage::

    python benchmarks/equivariance.py [--device cuda] [--jets 16]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from lgae_hep.models import LGAE

from lgae_hep.lorentz import lorentz_matrix


def _jets(b, n, dtype, device):
    g = torch.Generator().manual_seed(0)
    pt = torch.rand(b, n, generator=g, dtype=torch.float64) * 200 + 1
    eta = torch.randn(b, n, generator=g, dtype=torch.float64) * 0.3
    phi = torch.randn(b, n, generator=g, dtype=torch.float64) * 0.3
    m = torch.rand(b, n, generator=g, dtype=torch.float64)
    pz = pt * torch.sinh(eta)
    p4 = torch.stack([torch.sqrt(pt**2 + pz**2 + m**2), pt * torch.cos(phi),
                      pt * torch.sin(phi), pz], -1)
    return p4.to(dtype=dtype, device=device), torch.ones(b, n, dtype=torch.bool, device=device)


def deviation(model, p4, mask, lam) -> float:
    """Relative deviation for one transformation ``lam`` (4x4 float64)."""
    lam_t = torch.as_tensor(lam, dtype=p4.dtype, device=p4.device)
    with torch.no_grad():
        ref = model(p4, mask).p4 @ lam_t.T
        got = model(p4 @ lam_t.T, mask).p4
    return float((got - ref).abs().max() / ref.abs().max())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--jets", type=int, default=16)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    rot_axis = rng.normal(size=3)
    rot_axis /= np.linalg.norm(rot_axis)
    gammas = [1.0, 1.5, 3.0, 10.0, 30.0, 100.0, 1e3, 1e4]
    angles = [0.0, 0.1, 0.5, 1.0, 2.0, np.pi]
    res = {}
    for dt in ("float32", "float64"):
        torch.manual_seed(0)
        model = LGAE(aggregation="mix", dtype=dt).to(args.device)
        p4, mask = _jets(args.jets, 30, model.dtype, args.device)
        res[dt] = (
            [deviation(model, p4, mask, lorentz_matrix(rapidity=axis * np.arccosh(g)))
             for g in gammas],
            [deviation(model, p4, mask, lorentz_matrix(angle=rot_axis * a)) for a in angles],
        )
    print(f"LGAE-Mix (random weights), {args.jets} jets x 30 particles, device={args.device}")
    print(f"{'boost gamma':>12} {'float32':>12} {'float64':>12}")
    for i, g in enumerate(gammas):
        print(f"{g:>12.4g} {res['float32'][0][i]:>12.2e} {res['float64'][0][i]:>12.2e}")
    print(f"{'rot. angle':>12} {'float32':>12} {'float64':>12}")
    for i, a in enumerate(angles):
        print(f"{a:>12.3f} {res['float32'][1][i]:>12.2e} {res['float64'][1][i]:>12.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
