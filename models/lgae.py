"""The Lorentz Group Equivariant Autoencoder (LGAE; Hao, Kansal, Duarte, Chernyavskaya 2022).

Encoder: input (per particle: its 4-momentum as a (1, 1) feature, and as (0, 0) features its
mass squared and any input scalars) -> input mixing -> LMP layers -> per-node mixing to the
latent multiplicities (1 complex scalar + ``tau_v`` complex 4-vectors) -> aggregation over
particles. Decoder: ``num_particles`` independent learned :class:`~lgae_hep.nn.MixReps` from the
latent to the nodes -> LMP layers -> mixing to one (1, 1) (and the input scalars) per node -> the
real part of its Cartesian read-out is the reconstructed 4-vector.

Conventions (documented choices):

* **Input scale**: ``forward`` takes GeV; it multiplies the momenta by ``p4_scale`` (default
  0.01, i.e. units of 100 GeV) and divides the output by it. A global scale commutes with every
  Lorentz transformation, so the model stays exactly equivariant.
* **Mass normalisation** (``normalization="mass"``): each jet's momenta are divided by the
  jet's invariant mass ``m`` (of its kept particles) instead, and the output multiplied by it.
  ``m`` is a Lorentz invariant, so the model stays exactly equivariant; being blind to boosts
  *and* to the mass scale, it sees only the jet's shape in its rest frame. The training loss
  and the ``"chamfer"`` score then compare the clouds in units of ``m`` (``out.features`` /
  ``out.input_features``). A jet whose mass is not resolved, ``m <= MIN_RELATIVE_MASS * E``
  (one particle, collinear particles, or float rounding of ``E^2 - |p|^2``), has no defined
  normalisation: :meth:`LGAE.unnormalizable` flags it, the inference engine gives it NaN with
  one ``InvalidJetWarning``, training drops it with a warning.
* **Decoder positions**: the decoder's LMP layers need node "momenta" ``p_i``; they are the real
  part of the Cartesian read-out of a learned (1, 1) combination of the initial decoder node
  features (real, so ``p_ij^2`` is a real invariant), fixed across the decoder layers.
* **Output**: ``N_out = num_particles`` nodes; ``.p4`` is ``Re(irrep_to_fourvec(z))`` in GeV
  (the imaginary part is a second, discarded 4-vector). The decoder sees only the latent
  (it message-passes over all ``N_out`` nodes); the output mask keeps the first ``n`` nodes,
  ``n`` the input multiplicity (side information, not part of the latent).
* **Latent**: ``.latent`` maps ``(0, 0)`` -> complex (B, A, 1) and ``(1, 1)`` -> complex
  (B, A * tau_v, 4) (canonical basis; ``lgae_hep.lorentz.irrep_to_fourvec`` gives Cartesian
  4-vectors, real and imaginary part each transform as one), ``A`` the number of '&'-combined
  aggregations.

Equivariance: ``forward(p4 @ L.T).p4 == forward(p4).p4 @ L.T`` for every proper orthochronous
Lorentz transformation ``L`` and any weights, up to floating-point rounding (see
``benchmarks/equivariance.py`` and the tests for the measured size).

Reference vectors ("spurions", ``references=["time"]``, ``["beam"]`` or both; default ``[]``)
-----------------------------------------------------------------------------------------------
Fixed lab 4-vectors ``r_a`` (:mod:`lgae_hep.nn.references`: the time direction (1, 0, 0, 0),
the beam axis (0, 0, 0, 1)) that let the network see the lab frame. The model is then exactly
*covariant*, ``forward(p4 @ L.T, references=r @ L.T).p4 == forward(p4, references=r).p4 @ L.T``
for every ``L`` (``forward``'s ``references`` (B, R, 4) default to the lab vectors), and
equivariant in the particles alone only under the subgroup that fixes every ``r_a``
(rotations for ``"time"``; rotations about z and boosts transverse to z for ``"beam"``: the
4-vector (0, 0, 0, 1) is *not* kept by boosts along z, see :mod:`lgae_hep.nn.references`;
both: rotations about z).

Design: the references are extra **channels**, not extra graph nodes.

* Encoder: every real particle node gets, besides its own ``p_i``, the R reference vectors as
  further (1, 1) input channels and the R invariants ``p_i . r_a`` as further (0, 0) input
  channels of the input mixing. From there they flow through the layers like any feature: the
  self-interaction ``F_i (x) F_i`` and the messages ``p_ij (x) F_j`` couple them to the
  particles (e.g. ``(a p_i + b r)^2`` holds ``p_i . r``), the invariant MLPs see them.
* Decoder: every decoder node gets a learned complex combination of the reference vectors
  (``dec_ref``, (N, c0, R)) added to its initial (1, 1) features, beside the learned map of
  the latent; the learned decoder positions can point along ``r`` as well.

Why channels: a reference *node* (LorentzNet / PELICAN style) would have to be kept out of the
``n_i - 1`` neighbour normalisation, the min/max/mix aggregation over particle slots, the output
mask and the loss, would change N (and the pair tensors, the packed layout and the speed of
every layer), and its pair invariant ``(p_i - r)^2 = p_i^2 - 2 p_i . r + r^2`` carries no more
than the ``p_i . r`` fed here directly. Channels touch only the input mixing and the first
decoder step; every padded node stays exactly zero (the input mixing is masked), so padding and
permutation behaviour are those of the model without references. Covariance is immediate: the
references enter only through linear maps of (1, 1) features and through Minkowski products
``p . r``, which are invariant when particles and references transform together.

With ``references=[]`` nothing is built or run for them: the modules, parameter shapes,
random-number draws, ``state_dict`` and outputs are bit for bit those of the model before the
option existed, and ``config`` has no ``"references"`` key (so stored configs, cards and model
checksums of such models are unchanged). A model with references records them as
``config["references"]``, e.g. ``["time", "beam"]`` (the order of its reference channels).
The scoring engine evaluates any LGAE in each jet's rest frame; for a model with references it
boosts the references with the jet (:func:`lgae_hep.scoring.frames.frame_references`).

Physical outputs (``output="lightlike"`` or ``"massive"``, with the time reference)
-----------------------------------------------------------------------------------
A free (1, 1) output can be spacelike or have E < 0 (a decoded particle no detector makes). With
the time reference the decoder can end with :func:`light_cone_projection`: each output ``v`` is
replaced by ``s + sqrt(-s^2) t`` with ``s`` the part of ``v`` orthogonal to ``t``, a massless
particle with E = |p| in the lab (``"massive"``: ``s + sqrt(-s^2 + m^2) t`` with a learned
invariant ``m >= 0``). It uses only Minkowski products with ``t``, so the model stays
covariant (particles and references transformed together), and the sum of such particles is a
timelike (or lightlike) jet 4-momentum: decoded jets are physical by construction, which the
compression model wants (issue 22; a repair after the fact, :mod:`lgae_hep.compression.physical`,
is then never needed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from lgae_hep.data import DEFAULT_NUM_PARTICLES
from lgae_hep.lorentz import FOURVEC_TO_IRREP, irrep_dim, irreps_up_to
from lgae_hep.nn.aggregation import Aggregation, parse_aggregation
from lgae_hep.nn.cg_product import complex_dtype
from lgae_hep.nn.io import (
    MIN_RELATIVE_MASS,
    AutoencoderOutput,
    check_inputs,
    dtype_name,
    first_n_mask,
    jet_mass,
    parse_dtype,
)
from lgae_hep.nn.lmp import VECTOR, LMPLayer
from lgae_hep.nn.mixreps import SCALAR, MixReps, mask_packed
from lgae_hep.nn.radial import RadialBasis, pair_invariant
from lgae_hep.nn.references import (
    REFERENCE_VECTORS,
    check_references,
    minkowski_products,
    parse_references,
    reference_matrix,
)

__all__ = ["LGAE", "light_cone_projection"]


class _Cartesian(nn.Module):
    """(1, 1) canonical basis <-> Cartesian (E, px, py, pz) (U and U^H as buffers)."""

    def __init__(self, dtype):
        super().__init__()
        u = torch.tensor(np.array(FOURVEC_TO_IRREP), dtype=complex_dtype(dtype))
        self.register_buffer("u", u, persistent=False)
        self.register_buffer("uh", u.conj().T.contiguous(), persistent=False)

    def to_irrep(self, p: torch.Tensor) -> torch.Tensor:
        return p.to(self.u.dtype) @ self.u.T

    def to_cartesian(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.uh.T


class LGAE(nn.Module):
    """Lorentz group equivariant autoencoder (see the module docstring).

    Parameters
    ----------
    num_particles : int
        Particles per jet (N, also the number of decoded particles). Default
        :data:`lgae_hep.data.DEFAULT_NUM_PARTICLES` (30).
    tau_v : int
        Latent complex 4-vectors per aggregation (the latent also has 1 complex scalar).
    aggregation : str
        ``"mean"``, ``"sum"``, ``"min"``, ``"max"``, ``"mix"`` or '&'-combinations ("min&max").
    encoder_channels, decoder_channels : tuple of int
        Output channels (per irrep) of each LMP layer; their lengths set the number of layers.
        Paper defaults (3, 3, 4, 4) and (4, 4, 3, 3).
    maxdim : int
        Irreps (k, n) with k, n < maxdim are kept inside the layers (2: scalars and 4-vectors;
        3 or 4 add higher irreps).
    num_scalars : int
        Per-particle input Lorentz scalars (e.g. charge), added as (0, 0) input channels and
        reconstructed as (0, 0) output channels.
    num_basis : int
        Gaussians in the shared basis of the edge functions f(p_ij^2).
    mlp_hidden : int
        Hidden width of the invariant MLPs.
    p4_scale : float
        Global input scale (GeV^-1), see the module docstring (unused when
        ``normalization="mass"``).
    normalization : {"none", "mass"}
        ``"none"``: the global ``p4_scale``; ``"mass"``: per-jet division by the jet mass (see
        the module docstring).
    dtype : {"float32", "float64"}
    references : sequence of str
        Reference vectors ("spurions") the network sees besides the particles: ``[]``
        (default, exactly Lorentz equivariant), ``["time"]``, ``["beam"]`` or both (see the
        module docstring and :data:`REFERENCE_VECTORS`).
    output : {"free", "lightlike", "massive"}
        ``"free"`` (default): the decoder emits any 4-vectors (timelike, spacelike, even E < 0).
        ``"lightlike"``: its last step is :func:`light_cone_projection` onto the light cone of
        the time reference, so every decoded particle is massless with E = |p| in the lab and
        every decoded jet is physical by construction (no repair). ``"massive"``: the same
        projection with a learned mass per particle (softplus of one more (0, 0) output
        channel), E = sqrt(|p|^2 + m^2) in the lab. Both need ``"time"`` in ``references`` (the
        lab time direction is what "E >= |p|" refers to). Recorded in ``config`` only when not
        ``"free"``.
    """

    #: name -> lab Cartesian 4-vector of the available reference vectors
    REFERENCE_VECTORS = REFERENCE_VECTORS

    #: Smallest resolved jet mass under ``normalization="mass"``, relative to the jet energy
    #: (:data:`lgae_hep.nn.io.MIN_RELATIVE_MASS`, derived there).
    MIN_RELATIVE_MASS = MIN_RELATIVE_MASS
    NORMALIZATIONS = ("none", "mass")
    #: ``output``: ``"free"``, any 4-vector; ``"lightlike"``, on the forward light cone of the
    #: time reference by construction (:func:`light_cone_projection`); ``"massive"``, on or
    #: inside it, with a learned mass per particle
    OUTPUTS = ("free", "lightlike", "massive")

    #: ``config["architecture"]``: the key of this class in :data:`lgae_hep.models.ARCHITECTURES`
    architecture = "lgae"
    #: 4-vectors enter the training loss in TeV (a pure unit choice: Chamfer scales with scale**2)
    loss_p4_scale = 1e-3

    def __init__(
        self,
        num_particles: int = DEFAULT_NUM_PARTICLES,
        tau_v: int = 2,
        aggregation: str = "mix",
        encoder_channels: tuple[int, ...] = (3, 3, 4, 4),
        decoder_channels: tuple[int, ...] = (4, 4, 3, 3),
        maxdim: int = 2,
        num_scalars: int = 0,
        num_basis: int = 6,
        mlp_hidden: int = 16,
        p4_scale: float = 0.01,
        normalization: str = "none",
        dtype: str | torch.dtype = "float32",
        references: tuple[str, ...] | list[str] = (),
        output: str = "free",
    ):
        super().__init__()
        self.references = parse_references(references)
        nref = len(self.references)
        if output not in self.OUTPUTS:
            raise ValueError(f"output must be one of {self.OUTPUTS}, got {output!r}")
        if output != "free" and "time" not in self.references:
            raise ValueError(f"output={output!r} puts the decoded particles on or inside the "
                             "light cone of the lab time direction: it needs "
                             "references=['time'] (or ['time', 'beam']), got "
                             f"references={list(self.references)}")
        self.output = output
        for name, v, lo in [("num_particles", num_particles, 1), ("tau_v", tau_v, 1),
                            ("num_scalars", num_scalars, 0), ("num_basis", num_basis, 1),
                            ("mlp_hidden", mlp_hidden, 1)]:
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if maxdim not in (2, 3, 4):
            raise ValueError(f"maxdim must be 2, 3 or 4, got {maxdim!r}")
        encoder_channels = tuple(encoder_channels)
        decoder_channels = tuple(decoder_channels)
        for name, ch in [("encoder_channels", encoder_channels),
                         ("decoder_channels", decoder_channels)]:
            if not ch or any((not isinstance(c, int)) or c < 1 for c in ch):
                raise ValueError(f"{name} must be a non-empty tuple of positive integers, "
                                 f"got {ch!r}")
        if not (p4_scale > 0 and float(p4_scale) < float("inf")):
            raise ValueError(f"p4_scale must be a positive finite number, got {p4_scale!r}")
        if normalization not in self.NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {self.NORMALIZATIONS}, "
                             f"got {normalization!r}")
        parse_aggregation(aggregation)
        self.normalization = normalization
        self.num_particles = num_particles
        self.tau_v = tau_v
        self.aggregation = aggregation
        self.encoder_channels = encoder_channels
        self.decoder_channels = decoder_channels
        self.maxdim = maxdim
        self.num_scalars = num_scalars
        self.num_basis = num_basis
        self.mlp_hidden = mlp_hidden
        self.p4_scale = float(p4_scale)
        self.dtype = parse_dtype(dtype)
        dt = self.dtype
        reps = irreps_up_to(maxdim)
        nf = num_basis + 1

        self.cart = _Cartesian(dt)
        # ---- encoder
        self.enc_basis = RadialBasis(num_basis, dt)
        # input channels: (0, 0) m^2, the input scalars, p.r_a; (1, 1) p, the references r_a
        self.enc_in = MixReps({SCALAR: 1 + num_scalars + nref, VECTOR: 1 + nref},
                              {SCALAR: encoder_channels[0], VECTOR: encoder_channels[0]}, dt)
        tau = {SCALAR: encoder_channels[0], VECTOR: encoder_channels[0]}
        self.encoder = nn.ModuleList()
        for c in encoder_channels:
            layer = LMPLayer(tau, c, maxdim, nf, mlp_hidden, dt)
            self.encoder.append(layer)
            tau = layer.tau_out
        self.tau_node = {SCALAR: 1, VECTOR: tau_v}
        self.enc_out = MixReps(tau, self.tau_node, dt)
        self.aggregate = Aggregation(aggregation, num_particles, self.tau_node, dt)
        self.tau_latent = self.aggregate.tau_latent
        # ---- decoder
        cdt = complex_dtype(dt)
        c0 = decoder_channels[0]
        self.dec_in = nn.ParameterDict({
            f"{r[0]}_{r[1]}": nn.Parameter(
                torch.randn(num_particles, c0, t, dtype=cdt) / t ** 0.5)
            for r, t in self.tau_latent.items()
        })
        self.dec_in_bias = nn.Parameter(torch.zeros(num_particles, c0, 1, dtype=cdt))
        if nref:  # created only for a model with references (old models: same draws, keys)
            self.dec_ref = nn.Parameter(
                torch.randn(num_particles, c0, nref, dtype=cdt) / nref ** 0.5)
        self.dec_pos = MixReps({VECTOR: c0}, {VECTOR: 1}, dt)
        self.dec_basis = RadialBasis(num_basis, dt)
        tau = {SCALAR: c0, VECTOR: c0}
        self.decoder = nn.ModuleList()
        for c in decoder_channels:
            layer = LMPLayer(tau, c, maxdim, nf, mlp_hidden, dt)
            self.decoder.append(layer)
            tau = layer.tau_out
        out_tau = {VECTOR: 1}
        if num_scalars or output == "massive":  # "massive": one more, the particle mass
            out_tau[SCALAR] = num_scalars + int(output == "massive")
        self.dec_out = MixReps(tau, out_tau, dt, bias=True)
        self._reps = reps
        # the lab reference vectors (a constant of the config: not in the state_dict)
        self.register_buffer("ref_lab", reference_matrix(self.references, dt),
                             persistent=False)

    # ------------------------------------------------------------------ config
    @property
    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments plus ``"architecture": "lgae"``."""
        return {
            "architecture": self.architecture,
            "num_particles": self.num_particles,
            "tau_v": self.tau_v,
            "aggregation": self.aggregation,
            "encoder_channels": list(self.encoder_channels),
            "decoder_channels": list(self.decoder_channels),
            "maxdim": self.maxdim,
            "num_scalars": self.num_scalars,
            "num_basis": self.num_basis,
            "mlp_hidden": self.mlp_hidden,
            "p4_scale": self.p4_scale,
            "normalization": self.normalization,
            "dtype": dtype_name(self.dtype),
            # only when used: configs (and checksums) of models without references unchanged
            **({"references": list(self.references)} if self.references else {}),
            **({"output": self.output} if self.output != "free" else {}),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LGAE:
        """Build a fresh (untrained) model from :attr:`config`."""
        cfg = dict(config)
        arch = cfg.pop("architecture", cls.architecture)
        if arch != cls.architecture:
            raise ValueError(f"config architecture must be {cls.architecture!r}, got {arch!r}")
        for k in ("encoder_channels", "decoder_channels"):
            if k in cfg:
                cfg[k] = tuple(cfg[k])
        return cls(**cfg)

    def loss_features(self, out: AutoencoderOutput) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Features the training loss compares instead of the 4-vectors.

        ``normalization="none"``: None, the loss compares ``out.p4`` with the input 4-vectors,
        both times :attr:`loss_p4_scale` (:func:`lgae_hep.train.jet_losses`).
        ``"mass"``: reconstruction and input in units of the jet mass
        (``out.features``, ``out.input_features``), so every jet weighs alike.
        """
        if self.normalization == "none":
            return None
        return out.features, out.input_features

    def score_clouds(self, p4: torch.Tensor, out: AutoencoderOutput
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """The (input, reconstruction) clouds the anomaly score compares: GeV, or units of the
        jet mass under ``normalization="mass"``."""
        if self.normalization == "none":
            return p4, out.p4
        return out.input_features, out.features

    def jet_scale(self, p4: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-jet unit (B,) in GeV of the network's input: ``1 / p4_scale`` for every jet, or
        the jet mass under ``normalization="mass"`` (1 GeV where it is not resolved, see
        :meth:`unnormalizable`; such jets must not be trusted)."""
        b = p4.shape[0]
        if self.normalization == "none":
            return torch.full((b,), 1.0 / self.p4_scale, dtype=p4.dtype, device=p4.device)
        m, ok = jet_mass(p4, mask)
        return torch.where(ok, m, torch.ones_like(m)).to(p4.dtype)

    def unnormalizable(self, p4: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """bool (B,): non-empty jets whose normalisation is undefined (``normalization="mass"``
        and ``m <= MIN_RELATIVE_MASS * E``); all False for ``"none"``."""
        if self.normalization == "none":
            return torch.zeros(p4.shape[0], dtype=torch.bool, device=p4.device)
        _, ok = jet_mass(p4, mask)
        return ~ok & mask.any(1)

    @property
    def latent_size(self) -> int:
        """Number of real numbers in the latent (2 per complex component)."""
        return sum(2 * t * irrep_dim(r) for r, t in self.tau_latent.items())

    @property
    def compression_rate(self) -> dict[str, float]:
        """Latent real numbers over input real numbers.

        ``"paper"``: over ``num_particles x 3`` (the LGAE paper's convention, 90 for N = 30);
        ``"p4"``: over the ``num_particles x 4`` Cartesian inputs the model actually reads.
        """
        return {"paper": self.latent_size / (3 * self.num_particles),
                "p4": self.latent_size / (4 * self.num_particles)}

    # ----------------------------------------------------------------- forward
    def _device(self) -> torch.device:
        return self.cart.u.device

    def encode(self, p4, mask, scalars=None, references=None):
        """Validate inputs and encode: returns ``(latent, mask)`` (mask padded to N).

        ``references``: as in :meth:`forward`."""
        p4, mask, scalars = self._check(p4, mask, scalars)
        refs = self._check_references(references, p4.shape[0])
        return self._encode(p4, mask, scalars, self._scale(p4, mask), refs), mask

    def _check_references(self, references, batch: int) -> torch.Tensor | None:
        """(B, R, 4) reference vectors in the model's dtype (the lab ones by default), or None
        for a model without references (:func:`lgae_hep.nn.references.check_references`)."""
        return check_references(references, self.references, batch, dtype=self.dtype,
                                device=self._device(), model="LGAE")

    def _check(self, p4, mask, scalars):
        return check_inputs(
            p4, mask, scalars, num_particles=self.num_particles, num_scalars=self.num_scalars,
            dtype=self.dtype, device=self._device(), model="LGAE")

    def _scale(self, p4: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
        """The per-jet unit of a mass-normalised model (:meth:`jet_scale`), else None."""
        return self.jet_scale(p4, mask) if self.normalization == "mass" else None

    #: Jets per internal chunk of :meth:`_encode` / :meth:`decode`. A layer streams its
    #: (tau, B, N, N) pair weights and node features a few times; for B up to a few hundred jets
    #: they stay in the CPU caches, above that they come from memory (measured on 2 cores: ~1.5x
    #: more jets/s at 256 than at 1024 per call). Each jet's result does not depend on the other
    #: jets of its chunk (only the kernels' blocking does, within the rounding bound).
    chunk_size = 256

    @staticmethod
    def _chunks(b: int, size: int) -> list[slice]:
        return [slice(i, min(i + size, b)) for i in range(0, b, size)] or [slice(0, 0)]

    def _reference_units(self, refs: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        """The reference vectors as 1 GeV 4-vectors in the network's momentum units (``p4 *
        p4_scale``, or units of the jet mass for ``normalization="mass"``).

        A unit reference at every node is a constant vector that every message sum adds up
        coherently, and every CG product squares: at unit size the features of a 4-layer
        encoder reach 1e15 on 1 TeV jets (non-finite training loss from the first epoch); at
        the size of a 1 GeV momentum (~1e-2) they stay of the size of the model without
        references. A positive per-jet factor keeps the model covariant (particles and
        references transformed together) and the score invariant under the references'
        subgroup, since it multiplies a 4-vector by a number that is the same in every frame.
        """
        if scale is None:
            return refs * self.p4_scale
        return refs / scale.to(refs.dtype)[:, None, None]

    def _encode(self, p4, mask, scalars, scale, refs=None):
        """Encode validated inputs (:func:`check_inputs`); ``scale``: :meth:`_scale`;
        ``refs``: :meth:`_check_references`."""
        parts = self._chunks(p4.shape[0], self.chunk_size)
        if len(parts) == 1:
            return self._encode_chunk(p4, mask, scalars, scale, refs)
        outs = [self._encode_chunk(p4[c], mask[c], None if scalars is None else scalars[c],
                                   None if scale is None else scale[c],
                                   None if refs is None else refs[c]) for c in parts]
        return {r: torch.cat([o[r] for o in outs]) for r in outs[0]}

    def _encode_chunk(self, p4, mask, scalars, scale, refs=None):
        if scale is None:
            p = p4 * self.p4_scale
        else:
            p = p4 / scale[:, None, None]
        # packed features irrep -> (tau, B, d, N) throughout (see LMPLayer.forward_packed)
        pos = self.cart.to_irrep(p).transpose(1, 2).unsqueeze(0).contiguous()  # (1, B, 4, N)
        m2 = p[..., 0] ** 2 - p[..., 1] ** 2 - p[..., 2] ** 2 - p[..., 3] ** 2
        s = m2.unsqueeze(-1)
        if scalars is not None:
            s = torch.cat([s, scalars], dim=-1)
        vec = pos
        if refs is not None:
            # reference channels: invariants p_i . r_a and the vectors r_a at every node
            # (padded nodes are zeroed by the masked input mixing below), in the momenta's
            # network units (_reference_units)
            refs = self._reference_units(refs, scale)
            s = torch.cat([s, minkowski_products(p, refs)], dim=-1)
            r = self.cart.to_irrep(refs).permute(1, 0, 2).unsqueeze(-1)  # (R, B, 4, 1)
            vec = torch.cat([pos, r.expand(-1, -1, -1, pos.shape[-1])], dim=0)
        s = s.to(pos.dtype).permute(2, 0, 1).unsqueeze(2).contiguous()  # (1 + S + R, B, 1, N)
        feats = mask_packed(self.enc_in.forward_packed({SCALAR: s, VECTOR: vec}), mask)
        basis = self.enc_basis.pairs(pair_invariant(p), mask)
        for layer in self.encoder:
            feats = layer.forward_packed(feats, pos, basis, mask)
        node = mask_packed(self.enc_out.forward_packed(feats), mask)
        return self.aggregate.forward_packed(node, mask)

    def decode(self, latent: dict, scale: torch.Tensor | None = None,
               references: torch.Tensor | None = None) -> dict:
        """Decode a latent (irrep -> (B, tau, d)) to node features of the ``num_particles`` nodes.

        ``scale`` (B,) is the per-jet unit of :meth:`jet_scale` (GeV); ``None`` means
        ``1 / p4_scale`` (``normalization="none"``) or the jet mass as unit (``"mass"``: the
        latent does not hold the mass). ``references``: as in :meth:`forward` (the frame of
        the latent's 4-vectors; default the lab).

        Returns ``{"p4": (B, N, 4) GeV (or units of the jet mass), "scalars": (B, N, S) or
        None, "p4_units": (B, N, 4) in the network's units}`` for all nodes.
        """
        b = next(iter(latent.values())).shape[0]
        refs = self._check_references(references, b)
        return self._decode(latent, scale, refs)

    def _decode(self, latent: dict, scale: torch.Tensor | None,
                refs: torch.Tensor | None) -> dict:
        b = next(iter(latent.values())).shape[0]
        parts = self._chunks(b, self.chunk_size)
        if len(parts) == 1:
            return self._decode_chunk(latent, scale, refs)
        outs = [self._decode_chunk({r: z[c] for r, z in latent.items()},
                                   None if scale is None else scale[c],
                                   None if refs is None else refs[c]) for c in parts]
        return {k: None if outs[0][k] is None else torch.cat([o[k] for o in outs])
                for k in outs[0]}

    def _decode_chunk(self, latent: dict, scale: torch.Tensor | None,
                      refs: torch.Tensor | None = None) -> dict:
        feats = {}
        for r in self.tau_latent:
            w = self.dec_in[f"{r[0]}_{r[1]}"]  # (N, c0, tau_latent)
            z = latent[r]  # (B, tau_latent, d)
            b, t, d = z.shape
            # packed (c0, B, d, N): one GEMM (N c0, tau_latent) @ (tau_latent, B d)
            y = w.reshape(-1, t) @ z.transpose(0, 1).reshape(t, b * d)
            feats[r] = y.view(w.shape[0], w.shape[1], b, d).permute(1, 2, 3, 0).contiguous()
        feats[SCALAR] = feats[SCALAR] + self.dec_in_bias.permute(1, 2, 0).unsqueeze(1)
        t_dir = refs[:, self.references.index("time")] if self.output != "free" else None
        if refs is not None:  # + learned combinations of the reference vectors, per node
            refs = self._reference_units(refs, scale)
            w = self.dec_ref  # (N, c0, R)
            zr = self.cart.to_irrep(refs)  # (B, R, 4)
            nb, nr, _ = zr.shape
            y = w.reshape(-1, nr) @ zr.transpose(0, 1).reshape(nr, nb * 4)
            feats[VECTOR] = feats[VECTOR] + y.view(w.shape[0], w.shape[1], nb, 4).permute(
                1, 2, 3, 0)
        # every decoder node is real: no mask
        z = self.dec_pos.forward_packed({VECTOR: feats[VECTOR]})[VECTOR][0]  # (B, 4, N)
        pos_c = (self.cart.uh @ z).real.transpose(1, 2)  # (B, N, 4)
        pos = self.cart.to_irrep(pos_c).transpose(1, 2).unsqueeze(0).contiguous()
        basis = self.dec_basis.pairs(pair_invariant(pos_c), None)
        for layer in self.decoder:
            feats = layer.forward_packed(feats, pos, basis, None)
        out = self.dec_out.forward_packed(feats)
        units = (self.cart.uh @ out[VECTOR][0]).real.transpose(1, 2)  # (B, N, 4)
        if t_dir is not None:
            # "massive": the mass from the last (0, 0) output channel, softplus >= 0, in the
            # network's units (an invariant, so covariance is kept)
            mass = (nn.functional.softplus(out[SCALAR][-1, :, 0].real)
                    if self.output == "massive" else None)  # (B, N)
            units = light_cone_projection(units, t_dir, mass)
        if scale is None:
            p4 = units / self.p4_scale if self.normalization == "none" else units
        else:
            p4 = units * scale.to(units.dtype)[:, None, None]
        sc = (out[SCALAR][:self.num_scalars, :, 0].real.permute(1, 2, 0) if self.num_scalars
              else None)
        return {"p4": p4, "scalars": sc, "p4_units": units}

    def forward(self, p4, mask, scalars=None, references=None) -> AutoencoderOutput:
        """Encode and decode a batch of jets.

        Parameters
        ----------
        p4 : torch.Tensor
            Real (B, N, 4), ``(E, px, py, pz)`` in GeV, N <= ``num_particles``.
        mask : torch.Tensor
            bool (B, N), True for real particles. Padded entries are ignored whatever they hold.
        scalars : torch.Tensor, optional
            (B, N, num_scalars) per-particle Lorentz scalars (required iff num_scalars > 0).
        references : torch.Tensor, optional
            Real (B, R, 4) per-jet reference vectors, ``(E, px, py, pz)``, in the order of
            :attr:`references` (R of them): the lab vectors (the default) transformed into the
            frame ``p4`` is given in. Only for a model built with references.

        Returns
        -------
        AutoencoderOutput
            ``.p4`` (B, num_particles, 4) GeV, ``.mask`` (first n nodes), ``.latent``,
            ``.scalars`` (B, num_particles, S) or None.

        Raises
        ------
        ValueError
            Bad shapes, non-boolean mask, non-finite momenta, too many particles;
            ``references`` for a model built without them, or of the wrong shape.
        """
        # validated once: padded to N, padded slots zeroed, in the model's dtype and device
        p4, mask, scalars = self._check(p4, mask, scalars)
        refs = self._check_references(references, p4.shape[0])
        scale = self._scale(p4, mask)
        latent = self._encode(p4, mask, scalars, scale, refs)
        dec = self._decode(latent, scale, refs)
        out_mask = first_n_mask(mask, self.num_particles)
        m = out_mask.unsqueeze(-1)
        p4_out = dec["p4"] * m
        sc = dec["scalars"] * m if dec["scalars"] is not None else None
        feats = inp = None
        if scale is not None:
            feats = dec["p4_units"] * m
            inp = p4 / scale[:, None, None]
        return AutoencoderOutput(p4=p4_out, mask=out_mask, latent=latent, scalars=sc,
                                 features=feats, input_features=inp)


def light_cone_projection(v: torch.Tensor, t: torch.Tensor,
                          mass: torch.Tensor | None = None) -> torch.Tensor:
    r"""Put 4-vectors on the forward light cone of a time direction: massless particles.

    For real ``v`` (B, N, 4) and a future-pointing timelike ``t`` (B, 4) (``(E, px, py, pz)``,
    metric +---), with :math:`\hat t = t / \sqrt{t^2}`, :math:`s = v - (v \cdot \hat t)\,
    \hat t` (the part of ``v`` orthogonal to :math:`\hat t`, spacelike) and
    :math:`q = \sqrt{-s^2}`:

    .. math:: p = s + q\,\hat t, \qquad p^2 = s^2 + q^2 = 0, \qquad p \cdot \hat t = q \ge 0.

    With ``mass`` (B, N), >= 0: :math:`p = s + \sqrt{q^2 + m^2}\,\hat t`, so
    :math:`p^2 = m^2` (on or inside the light cone; E = sqrt(|p|^2 + m^2) in the lab).

    In the lab (:math:`\hat t = (1, 0, 0, 0)`) this is :math:`p = (|\vec v|, \vec v)`: the
    3-momentum kept, the energy set to it. Built only from Minkowski products, it commutes
    with every proper orthochronous Lorentz transformation applied to ``v`` and ``t``
    together, so a decoder that ends with it stays covariant, and every particle it emits is
    physical (E >= |p|, here E = |p|), so every jet it emits has a timelike or lightlike
    4-momentum. ``-s^2`` is clamped at the dtype's smallest normal number before the square
    root (rounding can leave it a few ulp below zero; the gradient there is zero, not inf).
    """
    metric = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=v.dtype, device=v.device)
    t = t.to(v.dtype)
    t_hat = t / torch.sqrt((t * t * metric).sum(-1, keepdim=True))  # (B, 4)
    a = minkowski_products(v, t_hat[:, None, :])  # v . t_hat, (B, N, 1)
    s = v - a * t_hat[:, None, :]
    q2 = -(s * s * metric).sum(-1, keepdim=True)
    if mass is not None:
        q2 = q2.clamp(min=0.0) + (mass * mass).unsqueeze(-1)
    q = torch.sqrt(q2.clamp(min=torch.finfo(v.dtype).tiny))
    return s + q * t_hat[:, None, :]
