"""One-line scoring API: ``score``, ``encode``, ``reconstruct`` and ``load_model``.

::

    import lgae_hep
    jets = lgae_hep.read_nanoaod("events.root", jets="FatJet")   # [event][jet][particle]
    s = lgae_hep.score(jets)          # [event][jet] anomaly scores (bundled "lgae-mix" model)
    z = lgae_hep.encode(jets)         # [event][jet] latent records
    rec = lgae_hep.reconstruct(jets)  # [event][jet][particle] Momentum4D reconstructions

Input
-----
Any awkward array whose innermost records are Lorentz vectors that ``vector`` understands
(``pt/eta/phi/mass``, ``px/py/pz/E``, ``E/px/py/pz``, ...), with any number of outer list levels
above ``[jet][particle]`` and jets of any multiplicity. Each jet keeps its N hardest particles by
pT, where N is the number of particles the model was built for (``model.config
["num_particles"]``); softer particles are dropped, fewer are zero-padded with a mask.

Anomaly score
-------------
The score of a jet is the Chamfer distance (:func:`lgae_hep.losses.chamfer`, squared Euclidean
distance of the Cartesian 4-vectors in GeV, summed over particles) between the jet's particles
and the model's reconstruction of them (``metric="chamfer"``); ``metric="chamfer-dr"`` selects
the pT-weighted angular Chamfer distance (:func:`lgae_hep.losses.chamfer_dr`, dimensionless).
By default (``metric=None``) a bundled model uses the metric recorded in its card, the one
chosen on its validation sets (:func:`recommended_metric`); other models use ``"chamfer"``.
It is computed jet by jet:

* a jet with **no particles** scores exactly ``0.0`` (two empty clouds), its latent is zero and
  its reconstruction is an empty list;
* a jet with a non-finite component, negative energy or ``E < |p|`` (the project-wide bad-input
  policy of :mod:`lgae_hep.data.tensors`) scores ``NaN``, its latent is ``NaN`` and its
  reconstruction is ``None``; ONE :class:`InvalidJetWarning` counts such jets per call
  (``on_invalid="raise"`` raises ``ValueError`` instead);
* every other jet gets a finite score (for finite network outputs).

Batching and determinism
------------------------
Jets are converted to tensors ``chunk_size`` jets at a time (bounded memory: millions of jets
are fine) and the network always sees batches of exactly ``batch_size`` jets, the last one
padded with empty jets. The network and the loss never mix jets, so a jet's score does not
depend on the other jets in its batch (bitwise). On the same machine with the same torch
thread count and batch size, scores are bitwise reproducible. Another thread count, CPU
instruction set, batch size or position in the batch runs other kernels: scores then agree
within the derived bound of :mod:`lgae_hep.precision` (2e-3 relative in float32, 4e-12 in
float64), see ``docs/RELIABILITY.md`` section 5.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import vector

vector.register_awkward()

__all__ = [
    "DEFAULT_MODEL",
    "InvalidJetWarning",
    "bundled_models",
    "card_inference_dtype",
    "encode",
    "latent_columns",
    "load_model",
    "model_num_particles",
    "recommended_metric",
    "resolve_metric",
    "reconstruct",
    "resolve_model",
    "score",
]

#: Name of the bundled model used when ``model=None``.
DEFAULT_MODEL = "lgae-mix"
#: Jets per network call (fixed shape, the last batch is padded with empty jets).
DEFAULT_BATCH_SIZE = 256
#: Jets converted to tensors at a time (bounds the memory of one call).
DEFAULT_CHUNK_SIZE = 32_768

_WEIGHT_SUFFIXES = (".pt", ".safetensors", ".pth", ".ckpt")


class InvalidJetWarning(RuntimeWarning):
    """Some jets had non-finite or unphysical momenta; their scores/latents are NaN."""


# --------------------------------------------------------------------------------------------
# model zoo
# --------------------------------------------------------------------------------------------


def _pretrained_dir() -> Path:
    import lgae_hep.models.pretrained as pretrained

    return Path(pretrained.__file__).resolve().parent


def _cards() -> dict[str, tuple[Path, Mapping[str, Any]]]:
    """Model cards in ``pretrained/``: name -> (card path, parsed card); unreadable ones skipped."""
    out: dict[str, tuple[Path, Mapping[str, Any]]] = {}
    for card in sorted(_pretrained_dir().glob("*.json")):
        try:
            meta = json.loads(card.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, Mapping):
            out[str(meta.get("name") or card.stem)] = (card, meta)
    return out


def bundled_models() -> dict[str, Path]:
    """Bundled pretrained models: name -> weights file, from the JSON cards in ``pretrained/``.

    A card ``<name>.json`` describes the model; its weights are the file named by the card's
    ``"file"`` (or ``"weights"``) entry, else ``<name>.pt`` / ``<name>.safetensors`` beside it.
    The name is the card's ``"name"`` entry or its file stem. Cards whose weights are missing
    are not listed.
    """
    out: dict[str, Path] = {}
    for name, (card, meta) in _cards().items():
        candidates = []
        for key in ("file", "weights", "checkpoint"):
            if isinstance(meta.get(key), str):
                candidates.append(card.parent / meta[key])
        candidates += [card.with_suffix(s) for s in _WEIGHT_SUFFIXES]
        for c in candidates:
            if c.is_file():
                out[name] = c
                break
    return out


def resolve_model(name_or_path: str | Path) -> tuple[str, Path]:
    """Map a bundled model name or a checkpoint path to ``(name, weights path)``.

    Raises
    ------
    ValueError
        Neither a bundled name nor an existing file; the message lists the bundled models.
    """
    if not isinstance(name_or_path, str | Path):
        raise ValueError(
            "model must be a bundled model name, a checkpoint path or a loaded model, got "
            f"{type(name_or_path).__name__}"
        )
    bundled = bundled_models()
    text = str(name_or_path)
    if isinstance(name_or_path, str) and text in bundled:
        return text, bundled[text]
    path = Path(text).expanduser()
    if path.is_file():
        return str(path.resolve()), path.resolve()
    names = ", ".join(sorted(bundled)) or f"none installed in {_pretrained_dir()}"
    raise ValueError(
        f"unknown model {text!r}: not a bundled model name and no such file; "
        f"bundled models: {names}"
    )


def recommended_metric(model: Any = None) -> str:
    """The anomaly-score metric a model's card recommends (``"score_metric"``), else ``"chamfer"``.

    Bundled models record the metric chosen on their validation sets
    (``benchmarks/paper_comparison.py``). A model object returned by :func:`load_model` carries
    its card's metric (attribute ``score_metric``); checkpoints outside the bundle and other
    model objects have no card, and get the default ``"chamfer"``.

    Parameters
    ----------
    model : None, str, Path or torch.nn.Module
        ``None`` (the bundled default), a bundled name, a checkpoint path or a model object.
    """
    from lgae_hep.losses import check_metric

    if model is None:
        model = DEFAULT_MODEL
    if not isinstance(model, str | Path):
        return check_metric(getattr(model, "score_metric", None) or "chamfer")
    if not isinstance(model, str) or model not in bundled_models():
        return "chamfer"
    return check_metric(_cards()[model][1].get("score_metric", "chamfer"))


def resolve_metric(metric: str | None, model: Any = None) -> str:
    """``metric`` checked, or for ``None`` the one ``model``'s card recommends
    (:func:`recommended_metric`). Raises ``ValueError`` for an unknown metric."""
    from lgae_hep.losses import check_metric

    return recommended_metric(model) if metric is None else check_metric(metric)


_CACHE: dict[tuple[str, str, str | None], Any] = {}
_CACHE_LOCK = threading.Lock()


def _device_key(device: Any) -> str:
    import torch

    if device is None:
        return "cpu"
    return str(torch.device(device))


def card_inference_dtype(name_or_path: Any) -> str | None:
    """The precision a bundled model's card asks scoring to use (``"inference_dtype"``).

    ``None`` for models without a card or without that entry (they run in the precision they
    were saved in). The bundled min-max model asks for float64: its min/max selection is
    decided by float32 rounding for about 1 % of jets otherwise (see
    :mod:`lgae_hep.precision`).
    """
    if not isinstance(name_or_path, str) or name_or_path not in bundled_models():
        return None
    value = _cards()[name_or_path][1].get("inference_dtype")
    if value is not None and value not in ("float32", "float64"):
        raise ValueError(
            f"model card of {name_or_path!r}: inference_dtype must be 'float32' or 'float64', "
            f"got {value!r}"
        )
    return value


def load_model(
    name_or_path: str | Path = DEFAULT_MODEL, *, device: Any = None, dtype: Any = None
) -> Any:
    """Load a bundled pretrained model by name, or a checkpoint file by path.

    Models are loaded without unpickling code (:func:`lgae_hep.checkpoint.load_model_file`),
    put in eval mode, and cached per ``(name or resolved path, device, dtype)``: repeated calls
    (and the coffea processor, once per worker process) reuse the same object.

    Parameters
    ----------
    name_or_path : str or Path
        A bundled name (see :func:`bundled_models`, default ``"lgae-mix"``) or a checkpoint.
    device : str or torch.device, optional
        Target device (default CPU).
    dtype : {"float32", "float64"}, optional
        Precision to evaluate in. Default: the card's ``inference_dtype`` for a bundled model
        that has one (:func:`card_inference_dtype`), else the precision the model was saved in.
        float64 makes scores agree across machines, thread counts and batch sizes to ~1e-12
        instead of ~1e-3 (:mod:`lgae_hep.precision`), at about twice the CPU time.

    Returns
    -------
    torch.nn.Module
        ``LGAE`` or ``GNNAE`` with ``.config``.

    Raises
    ------
    ValueError
        Unknown name or missing file (the message lists the bundled models), a file that is
        not a valid model checkpoint, or an unknown ``dtype``.
    """
    key, path = resolve_model(name_or_path)
    dkey = _device_key(device)
    if dtype is None:
        dtype = card_inference_dtype(name_or_path)
    tkey = None if dtype is None else _dtype_key(dtype)
    with _CACHE_LOCK:
        model = _CACHE.get((key, dkey, tkey))
        if model is None:
            from lgae_hep.checkpoint import load_model_file

            model = load_model_file(path, device=dkey, dtype=tkey)
            model.score_metric = recommended_metric(name_or_path)  # the card's, if any
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
            _CACHE[(key, dkey, tkey)] = model
    return model


def _dtype_key(dtype: Any) -> str:
    name = str(dtype).rsplit(".", 1)[-1]
    name = {"double": "float64", "float": "float32"}.get(name, name)
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return name


def _as_model(model: Any, device: Any) -> Any:
    """``None`` / name / path / module -> module on ``device`` (modules are used as given)."""
    import torch

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


def model_num_particles(model: Any) -> int:
    """Number of particles per jet the model was built for."""
    cfg = getattr(model, "config", None)
    n = cfg.get("num_particles") if isinstance(cfg, Mapping) else None
    n = n if n is not None else getattr(model, "num_particles", None)
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(
            f"cannot tell how many particles {type(model).__name__} expects: it needs "
            "config['num_particles']"
        )
    return int(n)


def _model_dtype_device(model: Any) -> tuple[Any, Any]:
    import torch

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


def _check_num_particles(model: Any, num_particles: int | None) -> int:
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
class _BatchResult:
    score: np.ndarray
    latent: dict[Any, np.ndarray] | None
    reco_p4: np.ndarray | None
    reco_mask: np.ndarray | None
    #: per jet: the network's output (score, latent, reconstruction) is finite
    finite: np.ndarray | None = None


def _forward_fixed(
    model: Any,
    p4: Any,
    mask: Any,
    *,
    batch_size: int,
    want_latent: bool,
    want_reco: bool,
    metric: str = "chamfer",
) -> _BatchResult:
    """Run ``model`` and the anomaly score over (B, N, 4) tensors in fixed-size batches."""
    import torch

    from lgae_hep.losses import anomaly_score

    dtype, device = _model_dtype_device(model)
    n_jets = int(p4.shape[0])
    scores = np.empty(n_jets, dtype=np.float64)
    finite = np.ones(n_jets, dtype=bool)
    latents: dict[Any, list[np.ndarray]] = {}
    reco_p4: list[np.ndarray] = []
    reco_mask: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, n_jets, batch_size):
            stop = min(start + batch_size, n_jets)
            x = p4[start:stop].to(device=device, dtype=dtype)
            m = mask[start:stop].to(device)
            pad = batch_size - (stop - start)
            if pad:
                x = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))])
                m = torch.cat([m, m.new_zeros((pad, *m.shape[1:]))])
            out = model(x, m)
            # The score is computed in float64 whatever the model dtype: a finite float32
            # reconstruction far from the input would otherwise square past 3.4e38 into inf.
            s = anomaly_score(x.double(), out.p4.double(), m, out.mask, metric=metric)
            k = stop - start
            scores[start:stop] = s[:k].cpu().numpy()
            ok = torch.isfinite(s[:k])
            for z in out.latent.values():
                ok &= torch.isfinite(torch.view_as_real(z[:k]) if z.is_complex() else z[:k]) \
                    .flatten(1).all(1)
            finite[start:stop] = ok.cpu().numpy()
            if want_latent:
                for key, z in out.latent.items():
                    latents.setdefault(key, []).append(z[: stop - start].detach().cpu().numpy())
            if want_reco:
                reco_p4.append(out.p4[: stop - start].detach().cpu().numpy())
                reco_mask.append(out.mask[: stop - start].detach().cpu().numpy().astype(bool))
    latent = None
    if want_latent:
        latent = {k: np.concatenate(v) for k, v in latents.items()} if n_jets else {}
    return _BatchResult(
        score=scores,
        latent=latent,
        reco_p4=np.concatenate(reco_p4) if (want_reco and reco_p4) else None,
        reco_mask=np.concatenate(reco_mask) if (want_reco and reco_mask) else None,
        finite=finite,
    )


def _flatten_jets(jets: Any) -> tuple[ak.Array, tuple[np.ndarray, ...]]:
    from lgae_hep.data.tensors import flatten_outer

    return flatten_outer(jets)


def _iter_chunks(n: int, chunk: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, chunk):
        yield start, min(start + chunk, n)


def _check_batch(batch_size: Any, chunk_size: Any) -> tuple[int, int]:
    for name, v in (("batch_size", batch_size), ("chunk_size", chunk_size)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    chunk = max(int(batch_size), (int(chunk_size) // int(batch_size)) * int(batch_size))
    return int(batch_size), chunk


def _run(
    jets: Any,
    model: Any,
    *,
    batch_size: int,
    chunk_size: int,
    device: Any,
    progress: bool | None,
    on_invalid: str,
    num_particles: int | None,
    want_latent: bool,
    want_reco: bool,
    desc: str,
    metric: str | None = "chamfer",
) -> tuple[_BatchResult, np.ndarray, np.ndarray, tuple[np.ndarray, ...], int]:
    """Shared driver: returns (results, valid, counts, structure, N)."""
    from tqdm.auto import tqdm

    from lgae_hep.data import to_tensors

    metric = resolve_metric(metric, model)

    if on_invalid not in ("flag", "raise"):
        raise ValueError(f"on_invalid must be 'flag' or 'raise', got {on_invalid!r}")
    batch_size, chunk = _check_batch(batch_size, chunk_size)
    model = _as_model(model, device)
    n = _check_num_particles(model, num_particles)
    dtype, _ = _model_dtype_device(model)
    flat, structure = _flatten_jets(jets)
    n_jets = len(flat)

    parts: list[_BatchResult] = []
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
            jt = to_tensors(
                flat[start:stop], n, dtype=dtype, backend="torch", on_invalid=on_invalid
            )
            res = _forward_fixed(
                model,
                jt.p4,
                jt.mask,
                batch_size=batch_size,
                want_latent=want_latent,
                want_reco=want_reco,
                metric=metric,
            )
            valid = jt.valid.numpy().astype(bool)
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
    else:
        score = np.zeros(0)
        latent = _empty_latent(model, n) if want_latent else None
        reco_p4 = np.zeros((0, n, 4)) if want_reco else None
        reco_mask = np.zeros((0, n), bool) if want_reco else None
        valid = np.zeros(0, bool)
        count = np.zeros(0, np.int64)
        finite = np.zeros(0, bool)
    result = _BatchResult(score=score, latent=latent, reco_p4=reco_p4, reco_mask=reco_mask,
                          finite=finite)
    valid = _apply_policy(result, valid, count, desc)
    return result, valid, count, structure, n


def _empty_latent(model: Any, n: int) -> dict[Any, np.ndarray]:
    """Latent layout with zero jets (one dry forward pass on an empty jet)."""
    import torch

    dtype, device = _model_dtype_device(model)
    with torch.inference_mode():
        out = model(
            torch.zeros((1, n, 4), dtype=dtype, device=device),
            torch.zeros((1, n), dtype=torch.bool, device=device),
        )
    return {k: v.detach().cpu().numpy()[:0] for k, v in out.latent.items()}


def _apply_policy(
    result: _BatchResult, valid: np.ndarray, counts: np.ndarray, what: str
) -> np.ndarray:
    """Apply the project's bad-input policy in place and return the final per-jet validity.

    * empty jets: score 0.0, zero latent, no particles;
    * invalid input jets (``valid`` False): NaN score and latent (NaN + NaN j for complex
      latents), no reconstruction;
    * valid jets on which the network overflows (non-finite score or latent, which happens
      only far outside the momentum range a model was trained on), or whose score is undefined
      (``chamfer-dr`` of a jet without transverse momentum): treated like invalid jets.

    One :class:`InvalidJetWarning` counts the jets of each kind; a NaN is never silent.
    """
    empty = counts == 0
    overflow = valid & ~empty
    if result.finite is not None:
        overflow &= ~result.finite
    else:
        overflow[:] = False
    invalid = ~valid | overflow
    result.score[empty] = 0.0
    result.score[invalid] = np.nan
    if result.latent is not None:
        for z in result.latent.values():
            z[empty] = 0
            z[invalid] = complex(np.nan, np.nan) if np.iscomplexobj(z) else np.nan
    if result.reco_mask is not None:
        result.reco_mask[empty] = False
    n_bad, n_over = int((~valid).sum()), int(overflow.sum())
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
    return ~invalid


def _restore(values: Any, structure: tuple[np.ndarray, ...]) -> ak.Array:
    out = values if isinstance(values, ak.Array) else ak.Array(values)
    for c in reversed(structure):
        out = ak.unflatten(out, c)
    return out


# --------------------------------------------------------------------------------------------
# latent layout
# --------------------------------------------------------------------------------------------


def _irrep_key(key: Any) -> tuple[int, int] | None:
    if (
        isinstance(key, tuple)
        and len(key) == 2
        and all(isinstance(k, int | np.integer) for k in key)
    ):
        return int(key[0]), int(key[1])
    if isinstance(key, str):
        digits = [t for t in key.replace("(", " ").replace(")", " ").replace(",", " ").split()]
        if len(digits) == 2 and all(d.isdigit() for d in digits):
            return int(digits[0]), int(digits[1])
    return None


def _flat2(z: np.ndarray) -> np.ndarray:
    """(B, ...) -> (B, prod(...)), also for B = 0."""
    return z.reshape(z.shape[0], int(np.prod(z.shape[1:])))


def _fourvectors(z: np.ndarray) -> np.ndarray:
    """(1,1) canonical-basis complex (..., 4) -> complex Cartesian (E, px, py, pz)."""
    from lgae_hep.lorentz import irrep_to_fourvec

    return np.asarray(irrep_to_fourvec(np.asarray(z, dtype=np.complex128)))


def _minkowski_norm(z: np.ndarray) -> np.ndarray:
    """Bilinear Lorentz invariant ``z^T M z`` of (1,1) irrep vectors (..., 4), M the invariant
    form (the Minkowski metric in Cartesian coordinates): complex (...)."""
    from lgae_hep.lorentz import invariant_form

    m = np.asarray(invariant_form((1, 1)))
    z = np.asarray(z, dtype=np.complex128)
    return np.einsum("...i,ij,...j->...", z, m, z)


def latent_columns(latent: Mapping[Any, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Flat per-jet columns of a latent, and which of them are Lorentz invariants.

    LGAE latents (irrep ``(k, n)`` -> complex ``(B, tau, d)``) give, for channel ``i``:

    * ``s{i}_re``, ``s{i}_im``: the complex latent scalars ``(0, 0)`` (invariants);
    * ``v{i}_norm_re``, ``v{i}_norm_im``: the complex Minkowski square ``v . v`` of the latent
      4-vector ``(1, 1)`` (bilinear, via :func:`lgae_hep.lorentz.invariant_form`; invariants);
    * ``v{i}_{E,px,py,pz}_{re,im}``: Cartesian components of the latent 4-vectors (covariant);
    * ``k{k}n{n}_{i}_{j}_{re,im}``: components of any other irrep (canonical basis).

    Real latents (GNNAE: ``{"jet": (B, L)}`` or ``{"particle": (B, N, L)}``) give
    ``{name}_{j}`` for every flattened component (no invariants).

    Returns
    -------
    (dict name -> (B,) float64, list of invariant column names)
    """
    cols: dict[str, np.ndarray] = {}
    invariants: list[str] = []
    for key, z in latent.items():
        z = np.asarray(z)
        rep = _irrep_key(key)
        b = z.shape[0]
        if rep == (0, 0) and np.iscomplexobj(z):
            flat = _flat2(z)
            for i in range(flat.shape[1]):
                for part, fn in (("re", np.real), ("im", np.imag)):
                    name = f"s{i}_{part}"
                    cols[name] = fn(flat[:, i]).astype(np.float64)
                    invariants.append(name)
        elif rep == (1, 1) and np.iscomplexobj(z) and z.ndim == 3 and z.shape[-1] == 4:
            norms = _minkowski_norm(z)  # (B, tau)
            cart = _fourvectors(z)  # (B, tau, 4)
            for i in range(z.shape[1]):
                for part, fn in (("re", np.real), ("im", np.imag)):
                    name = f"v{i}_norm_{part}"
                    cols[name] = fn(norms[:, i]).astype(np.float64)
                    invariants.append(name)
            for i in range(z.shape[1]):
                for c, comp in enumerate(("E", "px", "py", "pz")):
                    for part, fn in (("re", np.real), ("im", np.imag)):
                        cols[f"v{i}_{comp}_{part}"] = fn(cart[:, i, c]).astype(np.float64)
        elif rep is not None and np.iscomplexobj(z):
            z3 = z.reshape(b, z.shape[1] if z.ndim > 1 else 1, int(np.prod(z.shape[2:])))
            for i in range(z3.shape[1]):
                for j in range(z3.shape[2]):
                    for part, fn in (("re", np.real), ("im", np.imag)):
                        name = f"k{rep[0]}n{rep[1]}_{i}_{j}_{part}"
                        cols[name] = fn(z3[:, i, j]).astype(np.float64)
        else:
            flat = _flat2(np.real(z) if np.iscomplexobj(z) else z)
            for j in range(flat.shape[1]):
                cols[f"{key}_{j}"] = flat[:, j].astype(np.float64)
    return cols, invariants


def _latent_records(latent: Mapping[Any, np.ndarray]) -> ak.Array:
    """Nested per-jet latent records (see :func:`encode`)."""
    fields: dict[str, Any] = {}
    for key, z in latent.items():
        z = np.asarray(z)
        rep = _irrep_key(key)
        if rep == (0, 0) and np.iscomplexobj(z):
            flat = _flat2(z)
            fields["scalars_re"] = np.real(flat).astype(np.float64)
            fields["scalars_im"] = np.imag(flat).astype(np.float64)
        elif rep == (1, 1) and np.iscomplexobj(z) and z.ndim == 3 and z.shape[-1] == 4:
            cart = _fourvectors(z)
            norms = _minkowski_norm(z)
            fields["vectors_re"] = np.real(cart).astype(np.float64)
            fields["vectors_im"] = np.imag(cart).astype(np.float64)
            fields["norms_re"] = np.real(norms).astype(np.float64)
            fields["norms_im"] = np.imag(norms).astype(np.float64)
        elif rep is not None and np.iscomplexobj(z):
            fields[f"irrep_{rep[0]}_{rep[1]}_re"] = np.real(z).astype(np.float64)
            fields[f"irrep_{rep[0]}_{rep[1]}_im"] = np.imag(z).astype(np.float64)
        else:
            fields[str(key)] = np.asarray(np.real(z), dtype=np.float64)
    if not fields:
        raise ValueError("the model returned an empty latent")
    contents = {k: ak.from_numpy(v, regulararray=True) for k, v in fields.items()}
    return ak.zip(contents, depth_limit=1)


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------


def score(
    jets: Any,
    model: Any = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: Any = None,
    progress: bool | None = None,
    on_invalid: str = "flag",
    num_particles: int | None = None,
    metric: str | None = None,
) -> ak.Array:
    """Anomaly score of every jet: the Chamfer distance between the jet and its reconstruction.

    Parameters
    ----------
    jets : ak.Array
        ``[...][jet][particle]`` Lorentz-vector records (any number of outer list levels, any
        multiplicity; see the module docstring).
    model : None, str, Path or torch.nn.Module
        ``None``: the bundled ``"lgae-mix"``; a bundled name or checkpoint path
        (:func:`load_model`); or a model object.
    batch_size : int
        Jets per network call (fixed shape; the last batch is padded with empty jets).
    chunk_size : int
        Jets converted to tensors at a time (memory bound).
    device : str or torch.device, optional
        Where the network runs (default: the model's device, CPU for loaded models).
    progress : bool or None
        tqdm progress bar over jets; ``None`` shows it only for inputs above one chunk.
    on_invalid : {"flag", "raise"}
        Bad-input policy: NaN + one :class:`InvalidJetWarning`, or ``ValueError``.
    num_particles : int, optional
        If given, must equal the model's particle count (guards against scoring with a model
        trained for a different N).
    metric : {None, "chamfer", "chamfer-dr"}
        ``"chamfer"``: the Cartesian 4-vector Chamfer distance in GeV^2
        (:func:`lgae_hep.losses.chamfer`, the paper's loss and score). ``"chamfer-dr"``: the
        dimensionless pT-weighted angular Chamfer distance
        (:func:`lgae_hep.losses.chamfer_dr`), which measures where the reconstruction puts the
        jet's momentum rather than how much of it. ``None`` (default): the metric the model's
        card recommends (:func:`recommended_metric`: for a bundled model the one chosen on its
        validation sets, see ``docs/RESULTS.md``), ``"chamfer"`` for models without a card.

    Returns
    -------
    ak.Array
        float64 scores with the outer structure of ``jets`` (``[...][jet]``): 0.0 for jets
        without particles, NaN for invalid jets, finite otherwise.

    Raises
    ------
    ValueError
        Input that is not an array of Lorentz-vector records, unknown model, ``num_particles``
        different from the model's, bad ``batch_size``/``on_invalid``, unknown ``metric``, or
        invalid jets with ``on_invalid="raise"``.
    """
    res, _, _, structure, _ = _run(
        jets,
        model,
        batch_size=batch_size,
        chunk_size=chunk_size,
        device=device,
        progress=progress,
        on_invalid=on_invalid,
        num_particles=num_particles,
        want_latent=False,
        want_reco=False,
        desc="lgae_hep.score",
        metric=metric,
    )
    return _restore(res.score, structure)


def encode(
    jets: Any,
    model: Any = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: Any = None,
    progress: bool | None = None,
    on_invalid: str = "flag",
    num_particles: int | None = None,
) -> ak.Array:
    """Latent representation of every jet, as records with the outer structure of ``jets``.

    Layout for LGAE models (latent irreps ``(0, 0)`` with ``tau_s`` channels and ``(1, 1)`` with
    ``tau_v`` channels), float64 fields per jet:

    ``scalars_re``, ``scalars_im`` : (tau_s,)
        Real and imaginary parts of the complex latent Lorentz scalars.
    ``vectors_re``, ``vectors_im`` : (tau_v, 4)
        Real and imaginary parts of the complex latent 4-vectors in Cartesian ``(E, px, py, pz)``
        (each part transforms as a 4-vector, since Lorentz matrices are real).
    ``norms_re``, ``norms_im`` : (tau_v,)
        The Lorentz invariant ``v . v`` (complex Minkowski square, bilinear, computed with
        :func:`lgae_hep.lorentz.invariant_form` in the irrep basis) of each latent 4-vector.
    ``irrep_<k>_<n>_re`` / ``_im`` : (tau, d)
        Any further irrep, canonical basis.

    Non-equivariant models (GNNAE) give one float64 field per latent entry (``jet`` (L,) or
    ``particle`` (N, L)). Jets without particles have a zero latent; invalid jets NaN.

    Parameters and raised errors are those of :func:`score`.

    Returns
    -------
    ak.Array
        ``[...][jet]`` records as above.
    """
    res, _, _, structure, _ = _run(
        jets,
        model,
        batch_size=batch_size,
        chunk_size=chunk_size,
        device=device,
        progress=progress,
        on_invalid=on_invalid,
        num_particles=num_particles,
        want_latent=True,
        want_reco=False,
        desc="lgae_hep.encode",
    )
    assert res.latent is not None
    return _restore(_latent_records(res.latent), structure)


def reconstruct(
    jets: Any,
    model: Any = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: Any = None,
    progress: bool | None = None,
    on_invalid: str = "flag",
    num_particles: int | None = None,
) -> ak.Array:
    """Reconstructed jets: Momentum4D particles (``px, py, pz, E`` in GeV), same outer structure.

    Each jet holds the model's output particles selected by the output mask (for the LGAE the
    decoder's N nodes restricted to the input multiplicity, as the model defines it). Jets
    without particles give an empty list; invalid jets give ``None`` (one
    :class:`InvalidJetWarning`). The records work with ``vector`` directly (``.mass``,
    ``.pt``, sums, boosts).

    Parameters and raised errors are those of :func:`score`.

    Returns
    -------
    ak.Array
        ``[...][jet][particle]`` (option type at the jet level only when some jets are invalid).
    """
    from lgae_hep.data import from_tensors

    res, valid, _, structure, _ = _run(
        jets,
        model,
        batch_size=batch_size,
        chunk_size=chunk_size,
        device=device,
        progress=progress,
        on_invalid=on_invalid,
        num_particles=num_particles,
        want_latent=False,
        want_reco=True,
        desc="lgae_hep.reconstruct",
    )
    assert res.reco_p4 is not None and res.reco_mask is not None
    rec = from_tensors(res.reco_p4.astype(np.float64), res.reco_mask)
    if not valid.all():
        rec = ak.mask(rec, valid)
    return _restore(rec, structure)
