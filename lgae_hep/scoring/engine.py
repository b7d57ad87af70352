"""The scoring engine: one batched inference path for every entry point (:mod:`lgae_hep.api`,
the coffea processor, ``lgae-hep score``, compression, evaluation).

* :func:`forward_batches` runs a model and the anomaly score over padded ``(B, N, 4)`` tensors
  in batches of exactly ``batch_size`` jets (the last one padded with empty jets), returning a
  :class:`BatchResult`;
* :func:`apply_invalid_policy` applies the project's bad-input policy to a :class:`BatchResult`
  (empty jets score 0, invalid or overflowing jets NaN, one :class:`InvalidJetWarning`);
* :func:`run_chunks` drives both over an awkward array of jets, ``chunk_size`` jets at a time;
* :func:`decode_batches` decodes latents (what compression stores) in fixed-size batches, each
  jet in its rest frame;
* :func:`jet_status` classifies jets for the bad-input policy (the status values of
  :mod:`lgae_hep.data.badinput`);
* :func:`latent_columns` / :func:`latent_records` lay a latent out as flat per-jet columns
  (with the names of its Lorentz-invariant columns) or as nested per-jet records.

The network and the loss never mix jets, so a jet's score does not depend on the other jets in
its batch (bitwise); see :mod:`lgae_hep.api` for the determinism guarantees.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import vector
from tqdm.auto import tqdm

from lgae_hep.data import to_tensors
from lgae_hep.data.badinput import EMPTY, ENCODED, INVALID, OVERFLOW, UNRESOLVED
from lgae_hep.data.tensors import flatten_outer
from lgae_hep.nn.io import AutoencoderOutput, jet_mass
from lgae_hep.scoring.aux_head import aux_head_columns
from lgae_hep.scoring.exposure import exposure_scores
from lgae_hep.scoring.frames import (
    apply_boosts,
    frame_references,
    is_lorentz_equivariant,
    lab_light_cone,
    rest_frame_boosts,
    to_lab,
)
from lgae_hep.scoring.latent import LatentColumns, latent_columns, latent_records
from lgae_hep.scoring.registry import check_score, is_density_score, is_exposure_score
from lgae_hep.zoo import DEFAULT_MODEL, load_model, model_num_particles, resolve_metric

vector.register_awkward()

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "BatchResult",
    "InferenceResult",
    "InvalidJetWarning",
    "MassOutsideMapWarning",
    "LatentColumns",
    "apply_invalid_policy",
    "check_num_particles",
    "decode_batches",
    "empty_latent",
    "forward_batches",
    "jet_status",
    "latent_columns",
    "latent_records",
    "model_decorrelation",
    "model_density",
    "model_exposure",
    "model_dtype_device",
    "run_chunks",
]

#: Jets per network call (fixed shape, the last batch is padded with empty jets).
DEFAULT_BATCH_SIZE = 256
#: Jets converted to tensors at a time (bounds the memory of one call).
DEFAULT_CHUNK_SIZE = 32_768


class InvalidJetWarning(RuntimeWarning):
    """Some jets had non-finite or unphysical momenta; their scores/latents are NaN."""


class MassOutsideMapWarning(RuntimeWarning):
    """A decorrelated score met jet masses outside its map's range (clamped, counted)."""


# --------------------------------------------------------------------------------------------
# model handling
# --------------------------------------------------------------------------------------------


def _as_model(model: Any, device: Any) -> Any:
    """``None`` / name / path / module -> module on ``device`` (modules are used as given)."""
    if model is None:
        model = DEFAULT_MODEL
    if isinstance(model, str | Path):
        return load_model(model, device=device)
    if isinstance(model, torch.nn.Module):
        if device is not None:
            model = model.to(torch.device(device))
        return model
    raise ValueError(
        "model must be None (bundled default), a bundled name, a checkpoint path or a torch "
        f"module, got {type(model).__name__}"
    )


def model_dtype_device(model: Any) -> tuple[Any, Any]:
    """The dtype the engine runs ``model`` in (its ``dtype`` attribute, else its first floating
    parameter's, else float32) and the device of its first parameter (CPU without any)."""
    device = torch.device("cpu")
    real = None
    for p in model.parameters():
        device = p.device
        if p.is_floating_point():
            real = p.dtype
            break
    dtype = getattr(model, "dtype", None)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        dtype = real or torch.float32
    return dtype, device


def check_num_particles(model: Any, num_particles: int | None) -> int:
    """The model's particles per jet; ``ValueError`` if ``num_particles`` is given and differs."""
    n_model = model_num_particles(model)
    if num_particles is not None and int(num_particles) != n_model:
        raise ValueError(
            f"num_particles={num_particles} requested but the model was built for "
            f"{n_model} particles per jet; use a model trained with {num_particles} particles "
            f"or num_particles={n_model}"
        )
    return n_model


# --------------------------------------------------------------------------------------------
# core: tensors -> scores / latents / reconstructions
# --------------------------------------------------------------------------------------------


@dataclass
class BatchResult:
    """Per-jet outputs of :func:`forward_batches` (numpy, jets in input order)."""

    #: (B,) float64 anomaly scores
    score: np.ndarray
    #: latent irrep/name -> (B, ...) arrays, or None when not requested
    latent: dict[Any, np.ndarray] | None
    #: (B, N, 4) reconstructed 4-momenta and (B, N) their mask, or None when not requested
    reco_p4: np.ndarray | None
    reco_mask: np.ndarray | None
    #: (B,) per jet: the network's output (score, latent) is finite
    finite: np.ndarray
    #: (B,) per jet: the model's per-jet normalisation is undefined (``model.unnormalizable``:
    #: a mass-normalised LGAE and a jet whose mass is not resolved); None: no such jets
    unresolved: np.ndarray | None = None
    #: jets of a decorrelated score whose mass lay outside the map's range (clamped into it)
    clamped: int = 0


def forward_batches(
    model: Any,
    p4: Any,
    mask: Any,
    *,
    batch_size: int,
    want_latent: bool,
    want_reco: bool,
    metric: str = "chamfer",
    encode_only: bool = False,
) -> BatchResult:
    """Run ``model`` and the anomaly score over (B, N, 4) tensors in fixed-size batches.

    Every network call sees exactly ``batch_size`` jets (the last batch is padded with empty
    jets). The score is computed in float64 whatever the model's precision. No bad-input
    policy is applied here (see :func:`apply_invalid_policy`).

    ``encode_only=True`` runs only ``model.encode(p4, mask) -> (latent, mask)`` (no decoder, no
    score: ``score`` is NaN, ``finite`` tests the latent alone, ``metric`` and ``want_reco`` are
    ignored); the latent is the same as with the full forward pass (same frame, same batches).
    """
    dtype, device = model_dtype_device(model)
    if encode_only:
        metric, want_reco = "chamfer", False
    spec = check_score(metric)
    base = spec.base or metric  # a decorrelated score maps its base score afterwards
    decorrelation = model_decorrelation(model, metric)
    density = model_density(model, base)
    head = getattr(model, "aux_head", None) if density is not None else None
    exposure = model_exposure(model, base)
    compute = check_score(base).compute
    rest = is_lorentz_equivariant(model)
    n_jets = int(p4.shape[0])
    masses = np.full(n_jets, np.nan)
    scores = np.empty(n_jets, dtype=np.float64)
    finite = np.ones(n_jets, dtype=bool)
    unresolved = np.zeros(n_jets, dtype=bool)
    unnormalizable = getattr(model, "unnormalizable", None)
    score_clouds = getattr(model, "score_clouds", None)
    latents: dict[Any, list[np.ndarray]] = {}
    reco_p4: list[np.ndarray] = []
    reco_mask: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, n_jets, batch_size):
            stop = min(start + batch_size, n_jets)
            k = stop - start
            # the lab-frame input in float64: scores, masses and the boosts are computed from it
            x64 = p4[start:stop].to(device=device, dtype=torch.float64)
            m = mask[start:stop].to(device)
            if rest:
                # evaluate an equivariant model in each jet's rest frame (lgae_hep.scoring.frames)
                to_rest, back = rest_frame_boosts(x64, m)
                x = apply_boosts(to_rest, x64).to(dtype)
            else:
                x = x64.to(dtype)
            pad = batch_size - k
            if pad:
                x = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))])
                m = torch.cat([m, m.new_zeros((pad, *m.shape[1:]))])
            # a model with reference vectors gets them in the frame of x (frame_references)
            refs = frame_references(model, to_rest if rest else None, batch_size)
            kw = {} if refs is None else {"references": refs}
            if encode_only:
                latent, _ = model.encode(x, m, **kw)
                m = m[:k]
                # a latent-only output: to_lab boosts its latent 4-vectors (p4 is a dummy)
                out = AutoencoderOutput(p4=x.new_zeros((k, 1, 4)), mask=m[:, :1],
                                        latent={key: z[:k] for key, z in latent.items()})
            else:
                out = _first(model(x, m, **kw), k)
                m = m[:k]
            if rest:
                out = to_lab(back, out)
                if not encode_only:
                    out = dataclasses.replace(out, p4=lab_light_cone(model, out.p4))
            if density is not None or exposure is not None or decorrelation is not None:
                mass, resolved = jet_mass(x64, m)  # float64, of the kept particles
            if encode_only:
                s = torch.full((k,), float("nan"), dtype=torch.float64)
            elif density is not None or exposure is not None:
                # a score of the jet's latent invariants and its log mass (float64)
                cols, inv = latent_columns({key: z.detach().cpu().numpy()
                                            for key, z in out.latent.items()})
                mass_np = mass.cpu().numpy()
                if exposure is not None:  # the exposure head's logit
                    s = torch.from_numpy(exposure_scores(exposure, cols, inv, mass_np))
                else:  # -log p under the QCD density
                    if head is not None:  # the auxiliary head's predicted substructure
                        cols = {**cols, **aux_head_columns(head, cols, inv)}
                    s = torch.from_numpy(density.score(density.transform(cols, mass_np), base))
                unresolved[start:stop] = (~resolved & m.any(1)).cpu().numpy()
            else:
                # The clouds the score compares: GeV, or the model's per-jet units (a
                # mass-normalised LGAE compares them in units of the jet mass).
                xs, ys = score_clouds(x64, out) if score_clouds is not None else (x64, out.p4)
                # The score is computed in float64 whatever the model dtype: a finite float32
                # reconstruction far from the input would otherwise square past 3.4e38 into inf.
                s = compute(xs.double(), ys.double(), m, out.mask)
            if unnormalizable is not None:
                unresolved[start:stop] |= unnormalizable(x64, m).cpu().numpy()
            if decorrelation is not None:
                masses[start:stop] = mass.cpu().numpy()
            scores[start:stop] = s.cpu().numpy()
            ok = torch.ones(k, dtype=torch.bool) if encode_only else torch.isfinite(s).cpu()
            for z in out.latent.values():
                ok &= torch.isfinite(torch.view_as_real(z) if z.is_complex() else z) \
                    .flatten(1).all(1).cpu()
            finite[start:stop] = ok.numpy()
            if want_latent:
                for key, z in out.latent.items():
                    # float64 (complex128) lab-frame latents: their Minkowski norms and Gram
                    # products are formed from these, and rounding the boosted-back
                    # components to float32 would bring back the cancellation of the lab frame
                    z = z.detach().cpu()
                    z = z.to(torch.complex128) if z.is_complex() else z.to(torch.float64)
                    latents.setdefault(key, []).append(z.numpy())
            if want_reco:
                reco_p4.append(out.p4.detach().cpu().to(torch.float64).numpy())  # lab, float64
                reco_mask.append(out.mask.detach().cpu().numpy().astype(bool))
    latent = None
    if want_latent:
        latent = {k: np.concatenate(v) for k, v in latents.items()} if n_jets else {}
    clamped = 0
    if decorrelation is not None:
        scores, clamped = decorrelation.transform(scores, masses)
    return BatchResult(
        score=scores,
        latent=latent,
        reco_p4=np.concatenate(reco_p4) if (want_reco and reco_p4) else None,
        reco_mask=np.concatenate(reco_mask) if (want_reco and reco_mask) else None,
        finite=finite,
        unresolved=unresolved,
        clamped=clamped,
    )


def decode_batches(
    model: Any,
    latent: Mapping[Any, Any],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    jet_p4: Any = None,
    bar: Any = None,
) -> np.ndarray:
    """Decode latents in fixed-size batches: (B, N, 4) float64 lab-frame 4-momenta of all N
    output nodes (the first ``n`` of a jet of ``n`` particles are its reconstruction).

    ``latent``: irrep -> complex (B, tau, d) arrays (numpy or torch; the lab-frame latents of
    :func:`forward_batches`); ``model``: an LGAE (``decode(latent, scale)``). Every decoder call
    sees exactly ``batch_size`` jets (the last batch is padded with zero latents).

    ``jet_p4`` (B, 4): each jet's momentum, the float64 sum of the kept particles it was encoded
    from. With it an equivariant model decodes each jet in its rest frame, as
    :func:`forward_batches` encodes it (latent 4-vectors boosted there and the output back, in
    float64), and a mass-normalised model takes its per-jet unit (``model.jet_scale``) from it.
    Without it the latent is decoded as given, in the model's default unit. ``bar``: a tqdm
    bar, advanced by the jets of each batch.
    """
    dtype, device = model_dtype_device(model)
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    z_all = {key: torch.as_tensor(np.asarray(z) if not isinstance(z, torch.Tensor) else z)
             for key, z in latent.items()}
    n_jets = int(next(iter(z_all.values())).shape[0]) if z_all else 0
    jets = None if jet_p4 is None else torch.as_tensor(np.asarray(jet_p4, dtype=np.float64))
    rest = jets is not None and is_lorentz_equivariant(model)
    normalised = jets is not None and str(getattr(model, "normalization", "none")) != "none"
    n_out = model_num_particles(model)
    outs: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, n_jets, batch_size):
            stop = min(start + batch_size, n_jets)
            k = stop - start
            z = {key: v[start:stop].to(device=device, dtype=torch.complex128)
                 for key, v in z_all.items()}
            to_rest = back = scale = None
            if jets is not None:
                jet = jets[start:stop].to(device).unsqueeze(1)  # (k, 1, 4): one "particle"
                one = torch.ones((k, 1), dtype=torch.bool, device=device)
                if rest:
                    to_rest, back = rest_frame_boosts(jet, one)
                    moved = to_lab(to_rest, AutoencoderOutput(p4=jet, mask=one, latent=z))
                    jet, z = moved.p4, moved.latent
                if normalised:
                    scale = model.jet_scale(jet, one)
            z = {key: v.to(cdtype) for key, v in z.items()}
            pad = batch_size - k
            if pad:
                z = {key: torch.cat([v, v.new_zeros((pad, *v.shape[1:]))]) for key, v in z.items()}
                if scale is not None:
                    scale = torch.cat([scale, scale.new_ones(pad)])
            # a model with reference vectors gets them in the frame of the latent
            refs = frame_references(model, to_rest if rest else None, batch_size)
            kw = {} if refs is None else {"references": refs}
            p4 = model.decode(z, scale, **kw)["p4"][:k].to(torch.float64)
            if back is not None:
                p4 = lab_light_cone(model, apply_boosts(back, p4))
            outs.append(p4.cpu().numpy())
            if bar is not None:
                bar.update(k)
    return np.concatenate(outs) if outs else np.zeros((0, n_out, 4))


def model_decorrelation(model: Any, metric: str) -> Any:
    """The model's mass decorrelation map for a ``"<base>-decorrelated"`` score, else None.

    Raises ``ValueError`` when ``metric`` is decorrelated and the model holds no map for its base.
    """
    spec = check_score(metric)
    if spec.kind != "decorrelated":
        return None
    maps = getattr(model, "decorrelation", None) or {}
    if spec.base not in maps:
        raise ValueError(
            f"metric {metric!r} needs a model file with a mass decorrelation map of "
            f"{spec.base!r} (lgae_hep.scoring.decorrelation.MassDecorrelation); this model has "
            f"{sorted(maps) or 'none'}")
    return maps[spec.base]


def _first(out: Any, k: int) -> Any:
    """The first ``k`` jets of an autoencoder output (drops the padding jets of a batch)."""

    def cut(v: Any) -> Any:
        return v[:k] if isinstance(v, torch.Tensor) else v

    return dataclasses.replace(
        out, p4=out.p4[:k], mask=out.mask[:k],
        latent={key: z[:k] for key, z in out.latent.items()},
        features=cut(out.features), input_features=cut(out.input_features),
        scalars=cut(out.scalars))


def model_density(model: Any, metric: str) -> Any:
    """The model's latent density if ``metric`` is a density score, else None.

    Raises ``ValueError`` when ``metric`` is a density score and the model holds no density.
    """
    if not is_density_score(metric):
        return None
    density = getattr(model, "latent_density", None)
    if density is None:
        raise ValueError(
            f"metric {metric!r} needs a model with a latent density (a bundled model whose "
            "card names a density score, or a model file saved with one, see "
            "lgae_hep.density.fit_latent_density); this model has none")
    return density


def model_exposure(model: Any, metric: str) -> Any:
    """The model's exposure head if ``metric`` is the exposure score (or its decorrelated
    form), else None.

    Raises ``ValueError`` when ``metric`` needs the head and the model holds none.
    """
    if not is_exposure_score(metric):
        return None
    head = getattr(model, "exposure_head", None)
    if head is None:
        raise ValueError(
            f"metric {metric!r} needs a model with an exposure head (a bundled model whose "
            "card names it, or a model file saved with one, see "
            "lgae_hep.exposure.fit_exposure_head); this model has none")
    return head


def empty_latent(model: Any, n: int) -> dict[Any, np.ndarray]:
    """Latent layout with zero jets (one dry forward pass on an empty jet)."""
    dtype, device = model_dtype_device(model)
    with torch.inference_mode():
        out = model(
            torch.zeros((1, n, 4), dtype=dtype, device=device),
            torch.zeros((1, n), dtype=torch.bool, device=device),
        )
    return {k: v.detach().cpu().numpy()[:0] for k, v in out.latent.items()}


def jet_status(valid: np.ndarray, counts: np.ndarray, finite: np.ndarray,
               unresolved: np.ndarray | None = None) -> np.ndarray:
    """Per-jet status (uint8 codes of :data:`lgae_hep.data.badinput.STATUS_NAMES`).

    ``invalid``: the input predicate flagged the jet (``valid`` False); ``empty``: no particles;
    ``unresolved``: a non-empty valid jet whose mass is not resolved where it is needed
    (``unresolved``); ``overflow``: any other non-empty valid jet whose network output is not
    ``finite``; ``encoded``: the rest. :func:`apply_invalid_policy` and compression (which keeps
    the raw constituents of such jets) both classify jets with it.
    """
    valid = np.asarray(valid, dtype=bool)
    empty = np.asarray(counts) == 0
    status = np.full(valid.shape, ENCODED, np.uint8)
    unres = np.zeros_like(valid) if unresolved is None else valid & ~empty & unresolved
    status[valid & ~empty & ~unres & ~np.asarray(finite, dtype=bool)] = OVERFLOW
    status[unres] = UNRESOLVED
    status[valid & empty] = EMPTY
    status[~valid] = INVALID
    return status


def apply_invalid_policy(
    result: BatchResult, valid: np.ndarray, counts: np.ndarray, what: str
) -> np.ndarray:
    """Apply the project's bad-input policy in place and return the final per-jet validity.

    * empty jets: score 0.0, zero latent, no particles;
    * invalid input jets (``valid`` False): NaN score and latent (NaN + NaN j for complex
      latents), no reconstruction;
    * valid jets on which the network overflows (non-finite score or latent, which happens
      only far outside the momentum range a model was trained on), or whose score is undefined
      (``chamfer-dr`` of a jet without transverse momentum): treated like invalid jets;
    * valid jets whose mass is not resolved (``result.unresolved``, ``m <= 2^-10 E``: one
      particle, collinear particles) where the mass divides something: the input of a
      mass-normalised LGAE, or a latent-density or exposure score (they use ``log m``):
      treated like invalid jets.

    One :class:`InvalidJetWarning` counts the jets of each kind; a NaN is never silent. The
    warning is attributed to the user's call of :func:`lgae_hep.api.score` (``stacklevel=4``:
    ``apply_invalid_policy`` <- :func:`run_chunks` <- ``score`` <- user).
    """
    status = jet_status(valid, counts, result.finite, result.unresolved)
    empty = counts == 0
    overflow, unresolved = status == OVERFLOW, status == UNRESOLVED
    invalid = (status == INVALID) | overflow | unresolved
    result.score[empty] = 0.0
    result.score[invalid] = np.nan
    if result.latent is not None:
        for z in result.latent.values():
            z[empty] = 0
            z[invalid] = complex(np.nan, np.nan) if np.iscomplexobj(z) else np.nan
    if result.reco_mask is not None:
        result.reco_mask[empty] = False
    n_bad, n_over, n_unres = int((~valid).sum()), int(overflow.sum()), int(unresolved.sum())
    if result.clamped:
        warnings.warn(
            f"{what}: {result.clamped} jet(s) with a mass outside the range of the model's mass "
            "decorrelation map: their quantile was taken in the nearest mass bin",
            MassOutsideMapWarning, stacklevel=4)
    if n_bad:
        warnings.warn(
            f"{what}: {n_bad} jet(s) with non-finite or unphysical momenta (NaN/inf, negative "
            "energy or E < |p|) were not scored: their result is NaN (None for reconstruct)",
            InvalidJetWarning,
            stacklevel=4,
        )
    if n_over:
        warnings.warn(
            f"{what}: non-finite network output or score on {n_over} jet(s): the network "
            "overflows far outside the momentum range it was trained on (a float64 model "
            "extends the range), and metric='chamfer-dr' is undefined for a jet without "
            "transverse momentum; their result is NaN (None for reconstruct)",
            InvalidJetWarning,
            stacklevel=4,
        )
    if n_unres:
        warnings.warn(
            f"{what}: {n_unres} jet(s) whose mass is not resolved (m <= 2^-10 E: one particle "
            "or collinear particles): the model's mass normalisation or the density or "
            "exposure score (log m) is undefined for them; their result is NaN (None for "
            "reconstruct)",
            InvalidJetWarning,
            stacklevel=4,
        )
    return ~invalid


# --------------------------------------------------------------------------------------------
# driver over chunks of an awkward array
# --------------------------------------------------------------------------------------------


class InferenceResult(NamedTuple):
    """What :func:`run_chunks` returns."""

    #: per-jet outputs, the bad-input policy applied
    result: BatchResult
    #: (B,) final per-jet validity
    valid: np.ndarray
    #: (B,) particles per jet (before truncation to N)
    counts: np.ndarray
    #: outer list structure of the input (see :func:`lgae_hep.data.tensors.restore_outer`)
    structure: tuple[np.ndarray, ...]
    #: particles per jet the model was built for
    num_particles: int


def _iter_chunks(n: int, chunk: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, chunk):
        yield start, min(start + chunk, n)


def _check_batch(batch_size: Any, chunk_size: Any) -> tuple[int, int]:
    for name, v in (("batch_size", batch_size), ("chunk_size", chunk_size)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    chunk = max(int(batch_size), (int(chunk_size) // int(batch_size)) * int(batch_size))
    return int(batch_size), chunk


def run_chunks(
    jets: Any,
    model: Any,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: Any = None,
    progress: bool | None = None,
    on_invalid: str = "flag",
    num_particles: int | None = None,
    want_latent: bool = False,
    want_reco: bool = False,
    desc: str = "lgae_hep.inference",
    metric: str | None = "chamfer",
    encode_only: bool = False,
) -> InferenceResult:
    """Score (and optionally encode/reconstruct) every jet of an awkward array.

    The jets are flattened to ``[jet][particle]``, converted to tensors ``chunk_size`` jets
    at a time (:func:`lgae_hep.data.to_tensors`), run through :func:`forward_batches`, and the
    bad-input policy (:func:`apply_invalid_policy`) is applied; ``desc`` names the caller in
    warnings and in the progress bar. Parameters are those of :func:`lgae_hep.api.score`
    (``metric=None``: the model card's); ``encode_only``: see :func:`forward_batches`.
    """
    metric = resolve_metric(metric, model)

    if on_invalid not in ("flag", "raise"):
        raise ValueError(f"on_invalid must be 'flag' or 'raise', got {on_invalid!r}")
    if encode_only and want_reco:
        raise ValueError("encode_only runs no decoder: want_reco must be False")
    batch_size, chunk = _check_batch(batch_size, chunk_size)
    model = _as_model(model, device)
    n = check_num_particles(model, num_particles)
    flat, structure = flatten_outer(jets)
    n_jets = len(flat)

    parts: list[BatchResult] = []
    valids: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    bar = tqdm(
        total=n_jets,
        desc=desc,
        unit="jet",
        disable=(n_jets <= chunk) if progress is None else not progress,
    )
    try:
        for start, stop in _iter_chunks(n_jets, chunk):
            # float64 tensors whatever the model's precision: the engine boosts and scores in
            # float64 and casts to the model's dtype only for the network (forward_batches)
            jt = to_tensors(
                flat[start:stop], n, dtype=torch.float64, backend="torch", on_invalid=on_invalid
            )
            res = forward_batches(
                model,
                jt.p4,
                jt.mask,
                batch_size=batch_size,
                want_latent=want_latent,
                want_reco=want_reco,
                metric=metric,
                encode_only=encode_only,
            )
            valid = jt.valid.numpy().astype(bool)
            if on_invalid == "raise" and res.unresolved is not None:
                bad = res.unresolved & valid & (np.asarray(jt.counts) > 0)
                if bad.any():
                    raise ValueError(
                        f"{desc}: {int(bad.sum())} jet(s) whose mass is not resolved "
                        "(m <= 2^-10 E): the model's mass normalisation or the density or "
                        "exposure score is undefined for them (first: jet "
                        f"{start + int(np.argmax(bad))})")
            parts.append(res)
            valids.append(valid)
            counts.append(np.asarray(jt.counts, dtype=np.int64))
            bar.update(stop - start)
    finally:
        bar.close()

    if parts:
        score = np.concatenate([p.score for p in parts])
        latent = None
        if want_latent:
            latent = {k: np.concatenate([p.latent[k] for p in parts]) for k in parts[0].latent}
        reco_p4 = np.concatenate([p.reco_p4 for p in parts]) if want_reco else None
        reco_mask = np.concatenate([p.reco_mask for p in parts]) if want_reco else None
        valid = np.concatenate(valids)
        count = np.concatenate(counts)
        finite = np.concatenate([p.finite for p in parts])
        unresolved = np.concatenate([p.unresolved for p in parts])
    else:
        score = np.zeros(0)
        latent = empty_latent(model, n) if want_latent else None
        reco_p4 = np.zeros((0, n, 4)) if want_reco else None
        reco_mask = np.zeros((0, n), bool) if want_reco else None
        valid = np.zeros(0, bool)
        count = np.zeros(0, np.int64)
        finite = np.zeros(0, bool)
        unresolved = np.zeros(0, bool)
    result = BatchResult(score=score, latent=latent, reco_p4=reco_p4, reco_mask=reco_mask,
                         finite=finite, unresolved=unresolved,
                         clamped=sum(p.clamped for p in parts))
    valid = apply_invalid_policy(result, valid, count, desc)
    return InferenceResult(result, valid, count, structure, n)
