"""The model zoo: bundled pretrained models, their cards, and a cached model loader.

A bundled model is a JSON card ``<name>.json`` in :mod:`lgae_hep.models.pretrained` plus its
weights. The card may record the anomaly-score metric chosen on the model's validation sets
(``"score_metric"``, :func:`recommended_metric`) and the precision scoring should use
(``"inference_dtype"``, :func:`card_inference_dtype`). :func:`load_model` loads a bundled model
by name or any checkpoint by path, once per ``(model, device, dtype)`` and process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lgae_hep.models.pretrained as pretrained
from lgae_hep.checkpoint import load_model_file
from lgae_hep.nn.io import dtype_name, parse_dtype
from lgae_hep.scoring.registry import SCORES, check_score, is_density_score, is_exposure_score

__all__ = [
    "ANOMALY_METRICS",
    "COMPRESSION_MODEL",
    "DEFAULT_MODEL",
    "bundled_models",
    "check_metric",
    "card_inference_dtype",
    "load_model",
    "model_card",
    "model_num_particles",
    "recommended_metric",
    "resolve_metric",
    "resolve_model",
]

#: Name of the bundled model used when no model is given.
DEFAULT_MODEL = "lgae-mix"
#: The bundled model that ``compress`` uses when none is given: trained for per-particle
#: fidelity (``benchmarks/compression_model.py``), not for anomaly detection.
COMPRESSION_MODEL = "lgae-compress"

_WEIGHT_SUFFIXES = (".pt", ".safetensors", ".pth", ".ckpt")

#: Every anomaly-score metric: the names of the score registry
#: (:data:`lgae_hep.scoring.registry.SCORES`), reconstruction and latent-density scores.
ANOMALY_METRICS = tuple(SCORES)


def check_metric(metric: Any) -> str:
    """Return ``metric`` if it names a registered anomaly score, else raise ``ValueError``
    listing them (:func:`lgae_hep.scoring.registry.check_score`)."""
    return check_score(metric).name


def _pretrained_dir() -> Path:
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


def model_card(name: str) -> Mapping[str, Any]:
    """The parsed JSON card of a bundled model.

    Raises
    ------
    ValueError
        ``name`` is not a bundled model (the message lists the bundled ones).
    """
    cards = _cards()
    if not isinstance(name, str) or name not in cards or name not in bundled_models():
        names = ", ".join(sorted(bundled_models())) or "none"
        raise ValueError(f"{name!r} is not a bundled model; bundled models: {names}")
    return cards[name][1]


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
    (``benchmarks/anomaly_scores.py``). A model object returned by :func:`load_model` carries
    its card's metric (attribute ``score_metric``), or the one its model file records
    (``extra["score_metric"]``, see :func:`lgae_hep.checkpoint.save_checkpoint`); other model
    objects get the default ``"chamfer"``.

    Parameters
    ----------
    model : None, str, Path or torch.nn.Module
        ``None`` (the bundled default), a bundled name, a checkpoint path or a model object.
    """
    if model is None:
        model = DEFAULT_MODEL
    if not isinstance(model, str | Path):
        return check_metric(getattr(model, "score_metric", None) or "chamfer")
    if not isinstance(model, str) or model not in bundled_models():
        return check_metric(getattr(load_model(model), "score_metric", None) or "chamfer")
    return check_metric(_cards()[model][1].get("score_metric", "chamfer"))


def resolve_metric(metric: str | None, model: Any = None) -> str:
    """``metric`` checked, or for ``None`` the one ``model``'s card recommends
    (:func:`recommended_metric`). Raises ``ValueError`` for an unknown metric."""
    return recommended_metric(model) if metric is None else check_metric(metric)


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


#: Loaded models: (name or resolved path, device, dtype) -> model (see :func:`load_model`).
_CACHE: dict[tuple[str, str, str | None], Any] = {}
_CACHE_LOCK = threading.Lock()


def _device_key(device: Any) -> str:
    if device is None:
        return "cpu"
    return str(torch.device(device))


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
    tkey = None if dtype is None else dtype_name(parse_dtype(dtype))
    with _CACHE_LOCK:
        model = _CACHE.get((key, dkey, tkey))
        if model is None:
            model = load_model_file(path, device=dkey, dtype=tkey)
            if isinstance(name_or_path, str) and name_or_path in bundled_models():
                model.score_metric = recommended_metric(name_or_path)  # the card's
            metric = check_metric(getattr(model, "score_metric", None) or "chamfer")
            model.score_metric = metric
            if is_density_score(metric) and getattr(model, "latent_density", None) is None:
                raise ValueError(
                    f"{path}: its default anomaly score {metric!r} needs a latent density, "
                    "but the model file holds none (a model file saved without it, or the "
                    "weights of another model)")
            if is_exposure_score(metric) and getattr(model, "exposure_head", None) is None:
                raise ValueError(
                    f"{path}: its default anomaly score {metric!r} needs an exposure head, but "
                    "the model file holds none")
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
            _CACHE[(key, dkey, tkey)] = model
    return model


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
