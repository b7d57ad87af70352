"""The auxiliary substructure head of an LGAE latent (issue 21): a small MLP from the latent's
Lorentz invariants to the jet's own log m, tau21, tau32 and log D2.

Trained jointly with the autoencoder (``lgae_hep.train.fit(aux_targets=..., aux_weight=...)``,
:mod:`lgae_hep.objectives`); stored as ``extra["aux_head"]`` of a checkpoint or model file and
loaded with it (:func:`lgae_hep.checkpoint.load_model_file`, as ``model.aux_head``). Its
predictions (:func:`aux_head_columns`) are latent columns ``pred_<target>`` that a model's
latent density can use as features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["AUX_TARGETS", "AuxHead", "TrainingHead", "aux_head_columns", "aux_head_errors",
           "latent_invariants", "silu_mlp"]

#: the targets of the head, in its output order (standardised log m, tau21, tau32, log D2)
AUX_TARGETS = ("log_mass", "tau21", "tau32", "log_d2")


def latent_invariants(latent: Any) -> torch.Tensor:
    """The Lorentz invariants of an LGAE latent, differentiably in torch: (B, F) real.

    The ``"gram"`` feature set of :func:`lgae_hep.density.invariant_features` in its column
    order: the real and imaginary parts of every latent scalar ``(0, 0)`` (``s{i}_re``,
    ``s{i}_im``), then the Minkowski products ``a.b`` of the real 4-vectors ``v{i}_re``,
    ``v{i}_im`` (real and imaginary parts of the Cartesian latent 4-vectors, in layout order,
    ``a`` before or equal to ``b``). The complex Minkowski squares ``v.v`` of
    :func:`lgae_hep.inference.latent_columns` are functions of these
    (``re.re - im.im + 2i re.im``).
    """
    from lgae_hep.lorentz.group import irrep_to_fourvec

    parts = []
    s = latent.get((0, 0)) if hasattr(latent, "get") else None
    if s is not None:
        flat = s.reshape(s.shape[0], -1)
        parts.append(torch.stack([flat.real, flat.imag], -1).reshape(s.shape[0], -1))
    v = latent.get((1, 1)) if hasattr(latent, "get") else None
    if v is None or not torch.is_complex(v):
        raise ValueError("the auxiliary head needs an LGAE latent with (1, 1) 4-vectors")
    cart = irrep_to_fourvec(v)  # (B, tau, 4) complex Cartesian
    vecs = torch.stack([cart.real, cart.imag], 2).reshape(v.shape[0], -1, 4)  # v0_re, v0_im..
    metric = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=vecs.dtype, device=vecs.device)
    gram = torch.einsum("bid,bjd->bij", vecs * metric, vecs)
    i, j = torch.triu_indices(vecs.shape[1], vecs.shape[1], device=vecs.device)
    parts.append(gram[:, i, j])
    return torch.cat(parts, 1)


def silu_mlp(n_in: int, hidden: int, depth: int, n_out: int) -> nn.Sequential:
    """``depth`` hidden ``Linear -> SiLU`` layers of width ``hidden``, then ``Linear`` to
    ``n_out``: the MLP of the training heads (auxiliary, contrastive, exposure)."""
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class TrainingHead(nn.Module):
    """A training-time head stored beside its model (a checkpoint's ``extra[...]``): plain
    ``config`` + ``state_dict`` (:meth:`to_state`), rebuilt by :meth:`from_state` through the
    subclass's :meth:`from_config`."""

    config: dict[str, Any]

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> TrainingHead:
        raise NotImplementedError

    def to_state(self) -> dict[str, Any]:
        """Plain data for a checkpoint's ``extra``."""
        return {"config": dict(self.config),
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}

    @classmethod
    def from_state(cls, state: Any) -> Any:
        head = cls.from_config(dict(state["config"]))
        sd = state["state_dict"]
        head.to(next(iter(sd.values())).dtype)
        head.load_state_dict(sd)
        return head


class AuxHead(TrainingHead):
    """A small MLP from the latent invariants to the standardised auxiliary targets.

    ``asinh`` of the invariants (they span orders of magnitude and either sign), then
    ``depth`` hidden SiLU layers of width ``hidden``. It sees only :func:`latent_invariants`,
    so its prediction is Lorentz invariant when the encoder is equivariant. ``mean`` / ``std``
    (buffers) standardise the raw targets; they are computed once from the training jets.
    """

    def __init__(self, n_in: int, n_out: int, hidden: int = 32, depth: int = 2,
                 mean: Any = None, std: Any = None,
                 names: tuple[str, ...] | list[str] = AUX_TARGETS) -> None:
        super().__init__()
        self.config = {"n_in": int(n_in), "n_out": int(n_out), "hidden": int(hidden),
                       "depth": int(depth), "names": [str(x) for x in names]}
        self.mlp = silu_mlp(n_in, hidden, depth, n_out)
        self.register_buffer("mean", torch.zeros(n_out) if mean is None
                             else torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer("std", torch.ones(n_out) if std is None
                             else torch.as_tensor(std, dtype=torch.float32).clone())

    def forward(self, latent: Any) -> torch.Tensor:
        """Predicted standardised targets (B, n_out) from a model output's latent."""
        x = latent_invariants(latent)
        return self.mlp(torch.asinh(x.to(self.mean.dtype)))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted targets (B, n_out) in raw units from the latent invariants ``x`` (B, F)
        (the columns of :func:`latent_invariants`), in the head's dtype."""
        return self.mlp(torch.asinh(x.to(self.mean.dtype))) * self.std + self.mean

    def standardise(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw.to(self.mean.dtype) - self.mean) / self.std

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> AuxHead:
        return cls(cfg["n_in"], cfg["n_out"], cfg["hidden"], cfg["depth"],
                   names=cfg.get("names", AUX_TARGETS))


def _head_inputs(head: AuxHead, columns: Any, invariants: Any) -> tuple[list[str], torch.Tensor]:
    """The head's input features (names, (n, F) float64) of a batch's latent columns."""
    from lgae_hep.density import invariant_features

    feats = invariant_features(columns, invariants, "gram")
    if len(feats) != head.config["n_in"]:
        raise ValueError(f"the auxiliary head takes {head.config['n_in']} latent invariants; "
                         f"this latent has {len(feats)}")
    x = torch.from_numpy(np.stack([np.asarray(v, dtype=np.float64) for v in feats.values()], 1))
    return list(feats), x


def aux_head_columns(head: AuxHead, columns: Any, invariants: Any) -> dict[str, np.ndarray]:
    """The head's predictions as latent columns ``pred_<target>`` (raw target units, float64).

    ``columns`` / ``invariants``: what :func:`lgae_hep.inference.latent_columns` returns for a
    batch; the head's input is their ``"gram"`` feature set (:func:`lgae_hep.density.
    invariant_features`), which is :func:`latent_invariants` in the same column order. The
    head is evaluated in its own dtype: a model file's head is loaded in float64
    (:func:`lgae_hep.checkpoint.load_model_file`), so that these columns are as reproducible as
    the float64 latent they are computed from. A model with a head (``extra["aux_head"]`` of
    its file) offers them to its latent density as features.
    """
    _, x = _head_inputs(head, columns, invariants)
    with torch.no_grad():
        y = head.predict(x).double().numpy()
    return {f"pred_{name}": y[:, j] for j, name in enumerate(head.config["names"])}


def aux_head_errors(head: AuxHead, columns: Any, invariants: Any, rel: float
                    ) -> dict[str, np.ndarray]:
    """Absolute error bounds of :func:`aux_head_columns` (``pred_<target>`` -> (n,)) when every
    latent component carries an error of at most ``rel`` times the jet's largest latent
    component ``A`` (:func:`lgae_hep.precision.latent_rtol`).

    The head's inputs then move by at most ``rel A`` (a latent scalar) or ``8 rel A^2`` (a
    Minkowski product of two latent 4-vectors: the bound of
    :meth:`lgae_hep.density.LatentDensity.coordinate_errors`); the prediction moves by at most
    ``2 sum_j |d pred / d x_j| err_j``, the gradient by autograd in float64 at the jet's own
    inputs (each jet's row depends on its inputs only), the factor 2 for the curvature over the
    error interval. For :meth:`LatentDensity.coordinate_errors`'s ``extra``.
    """
    from lgae_hep.density import invariant_error, largest_component

    names, x = _head_inputs(head, columns, invariants)
    a = largest_component(columns)
    ex = np.stack([invariant_error(f, a, rel) for f in names], 1)
    x.requires_grad_(True)
    y = head.predict(x)
    out = {}
    for k, name in enumerate(head.config["names"]):
        (g,) = torch.autograd.grad(y[:, k].sum(), x, retain_graph=True)
        out[f"pred_{name}"] = 2.0 * (g.abs().double().numpy() * ex).sum(1)
    return out
