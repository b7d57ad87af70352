"""Small synthetic jets for the training tests (physical massless particles, GeV)."""

from __future__ import annotations

import torch

TINY_GNNAE = {
    "architecture": "gnnae", "encoding": "jet", "num_particles": 8, "latent_dim": 4,
    "hidden_dim": 8, "num_layers_encoder": 1, "num_layers_decoder": 1,
}


#: a one-layer LGAE-Mix and fit keywords shared by the tests of the extra objectives
#: (contrastive, normalised autoencoder)
TINY_LGAE = {"architecture": "lgae", "num_particles": 8, "tau_v": 2, "aggregation": "mix",
             "encoder_channels": [2], "decoder_channels": [2], "mlp_hidden": 4, "num_basis": 3}
OBJECTIVE_FIT_KW = dict(batch_size=16, lr=3e-3, patience=50, device="cpu", progress=False,
                        log=lambda m: None, loss="chamfer-dr", seed=0)


def make_jets(n: int, seed: int, num_particles: int = 8, spread: float = 0.2):
    """(p4, mask): pT-sorted massless particles around a common axis, 2..N per jet."""
    g = torch.Generator().manual_seed(seed)
    cnt = torch.randint(2, num_particles + 1, (n,), generator=g)
    mask = torch.arange(num_particles)[None] < cnt[:, None]
    pt = torch.rand(n, num_particles, generator=g).pow(3) * 200 + 1
    pt, _ = pt.sort(1, descending=True)
    eta = torch.randn(n, num_particles, generator=g) * spread
    phi = torch.randn(n, num_particles, generator=g) * spread
    p4 = torch.stack(
        [pt * torch.cosh(eta), pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)], -1
    )
    return p4 * mask[..., None], mask


def perturbed_latents(cols: dict, rel: float, seed: int = 0, n: int = 5):
    """``n`` copies of latent columns ``cols`` whose every latent component moved by a uniform
    random amount up to ``rel`` times the jet's largest component (the premise of the heads'
    error bounds), the other columns unchanged."""
    import numpy as np

    from lgae_hep.density import is_latent_component

    comps = [k for k in cols if is_latent_component(k)]
    a = np.max(np.stack([np.abs(cols[k]) for k in comps], 1), 1)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield {k: (v + rng.uniform(-1, 1, len(v)) * rel * a if k in comps else v)
               for k, v in cols.items()}
