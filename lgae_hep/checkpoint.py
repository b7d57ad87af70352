"""Model files: safe, atomic checkpoints (DESIGN.md section 6).

A checkpoint is one ``torch.save`` file holding a **plain dict** of tensors, strings, numbers,
lists and dicts, nothing else:

=================== ===============================================================================
key                 content
=================== ===============================================================================
``format``          ``"lgae-hep-checkpoint"``
``format_version``  ``1``
``config``          the model config as a JSON string (``model.config``, with ``"architecture"``)
``state_dict``      parameter and buffer tensors
``optimizer``       ``optimizer.state_dict()`` or None
``scheduler``       ``scheduler.state_dict()`` or None
``rng``             RNG states as tensors / ints (torch CPU, CUDA, numpy, Python), or None
``epoch``/``step``  ints (from ``extra``; -1 / 0 when not given)
``metrics``         JSON string (from ``extra["metrics"]``)
``extra``           any further plain data passed by the caller
=================== ===============================================================================

Safety: :func:`load_checkpoint` only ever calls ``torch.load(..., weights_only=True)``, whose
unpickler refuses every global that is not a tensor type or a plain container, so a file that
would run code on load (a crafted ``__reduce__``) is rejected *before* that code can run, and
reported as :class:`CheckpointError`. Atomicity: :func:`save_checkpoint` writes to a temporary
file in the target directory, fsyncs it and ``os.replace``-s it over the target, so a reader
(or a process killed mid-write) never sees a half-written checkpoint.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import random
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lgae_hep.density import LatentDensity
from lgae_hep.jsonio import jsonable
from lgae_hep.models import ARCHITECTURES, build_model
from lgae_hep.nn.io import dtype_name, parse_dtype

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "atomic_torch_save",
    "build_model",
    "get_rng_state",
    "load_checkpoint",
    "load_model_file",
    "load_state_dict_checked",
    "model_from_checkpoint",
    "save_checkpoint",
    "set_rng_state",
    "unwrap_model",
    "write_metrics",
]

FORMAT = "lgae-hep-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A model file that cannot be used: unsafe, corrupt, foreign or incompatible."""


# ----------------------------------------------------------------------------------- helpers
def _plain(obj: Any, where: str) -> Any:
    """Check/convert ``obj`` to data that ``torch.load(weights_only=True)`` reads back."""
    if obj is None or isinstance(obj, bool | torch.Tensor):
        return obj
    if isinstance(obj, str):  # also str subclasses such as torch's TorchVersion
        return str(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str | int):
                raise ValueError(f"{where}: dict key {k!r} must be str or int")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, Path):
        return str(obj)
    raise ValueError(
        f"{where}: {type(obj).__name__} cannot be stored in a checkpoint; "
        "only tensors, numpy arrays, str, int, float, bool, None, lists and dicts are allowed"
    )


def get_rng_state() -> dict[str, Any]:
    """Every RNG the training loop touches, as tensors and ints (weights_only-loadable)."""
    np_state = np.random.get_state()  # noqa: NPY002 (the legacy global RNG users may touch)
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": list(py_state[1]),
                   "gauss_next": py_state[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned (missing entries are left alone)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    if "numpy" in state:
        s = state["numpy"]
        np_state = ("MT19937", s["keys"].numpy().astype(np.uint32), int(s["pos"]),
                    int(s["has_gauss"]), float(s["cached_gaussian"]))
        np.random.set_state(np_state)  # noqa: NPY002
    if "python" in state:
        s = state["python"]
        random.setstate((int(s["version"]), tuple(int(v) for v in s["state"]), s["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = list(state["cuda"])
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([c.cpu().to(torch.uint8) for c in cuda])


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside DistributedDataParallel / DataParallel wrappers."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return model


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically: temporary file + fsync + ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> the usual file mode
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - platforms without directory fsync
        pass


def write_metrics(out_dir: str | Path, history: list[Mapping[str, Any]]) -> None:
    """Write ``metrics.json`` and ``metrics.csv`` (one row per epoch) in ``out_dir``, each
    replaced atomically; non-finite numbers become ``null`` / empty cells."""
    out_dir = Path(out_dir)
    rows = [jsonable(h) for h in history]
    tmp = out_dir / ".metrics.json.tmp"
    tmp.write_text(json.dumps(rows, indent=1))
    os.replace(tmp, out_dir / "metrics.json")
    # every column any row has, in order of first appearance (a column can start later,
    # e.g. dropped_nonfinite_jets after a roll-back); rows without it get an empty cell
    keys = list(dict.fromkeys(k for row in rows for k in row))
    tmp = out_dir / ".metrics.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, restval="")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, out_dir / "metrics.csv")


# -------------------------------------------------------------------------------------- save
def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    extra: Mapping[str, Any] | None = None,
    rng_state: bool = True,
) -> Path:
    """Write a checkpoint atomically (temporary file + fsync + ``os.replace``).

    Parameters
    ----------
    path : str or Path
        Target file (parent directories are created).
    model : torch.nn.Module
        A model with a JSON-serialisable ``.config`` dict that names its ``"architecture"``
        (DDP wrappers are unwrapped).
    optimizer, scheduler : optional
        Their ``state_dict()`` is stored for resuming.
    extra : mapping, optional
        Plain data (numbers, strings, lists, dicts, tensors). ``epoch`` and ``step`` are also
        stored at top level; ``metrics`` (a dict) is stored as a JSON string.
    rng_state : bool
        Store the torch / CUDA / numpy / Python RNG states.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        When the model has no ``config`` with an ``"architecture"`` or ``extra`` holds
        objects that cannot be stored safely.
    """
    path = Path(path)
    bare = unwrap_model(model)
    config = getattr(bare, "config", None)
    if not isinstance(config, Mapping) or "architecture" not in config:
        raise ValueError(
            f"{type(bare).__name__} has no .config dict with an 'architecture' entry; "
            "only lgae-hep models (LGAE, GNNAE) can be checkpointed"
        )
    extra = dict(extra or {})
    # the scoring parts a model carries as plain attributes, each stored as its to_state()
    for key in ("latent_density", "aux_head", "exposure_head"):
        part = getattr(bare, key, None)
        if part is not None and key not in extra:
            extra[key] = part.to_state()
    maps = getattr(bare, "decorrelation", None)
    if maps and "decorrelation" not in extra:
        extra["decorrelation"] = {k: v.to_state() for k, v in maps.items()}
    metric = getattr(bare, "score_metric", None)
    if isinstance(metric, str) and "score_metric" not in extra:
        extra["score_metric"] = metric
    metrics = extra.pop("metrics", None)
    obj: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(dict(config), sort_keys=True),
        "state_dict": {k: v.detach().cpu() for k, v in bare.state_dict().items()},
        "optimizer": _plain(optimizer.state_dict(), "optimizer") if optimizer else None,
        "scheduler": _plain(scheduler.state_dict(), "scheduler") if scheduler else None,
        "rng": get_rng_state() if rng_state else None,
        "epoch": int(extra.pop("epoch", -1)),
        "step": int(extra.pop("step", 0)),
        "metrics": json.dumps(jsonable(metrics or {}), allow_nan=False),
        "torch_version": str(torch.__version__),
        "extra": _plain(extra, "extra"),
    }
    atomic_torch_save(obj, path)
    return path


# -------------------------------------------------------------------------------------- load
def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, safely.

    Only ``torch.load(..., weights_only=True)`` is used: no arbitrary object is ever
    unpickled, so no code in the file can run.

    Parameters
    ----------
    path : str or Path
        The checkpoint file.
    map_location : optional
        Passed to ``torch.load`` (default ``"cpu"``).

    Returns
    -------
    dict
        The checkpoint dict with ``config`` and ``metrics`` already parsed from JSON to dicts.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    CheckpointError
        (a ``ValueError``) when the file holds non-tensor Python objects (refused, not loaded),
        is truncated or corrupt, is not an lgae-hep checkpoint, or has an unsupported format
        version or a broken config.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist (or is not a file)")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        msg = str(err)
        detail = next(
            (ln.strip() for ln in msg.splitlines() if "GLOBAL" in ln or "global" in ln),
            msg.splitlines()[0] if msg else "",
        ).replace("WeightsUnpickler error: ", "")
        if "weights only" in msg.lower() or "weights_only" in msg.lower():
            raise CheckpointError(
                f"{path} contains non-tensor Python objects (e.g. classes or functions that "
                "would run code when unpickled) and was NOT loaded; lgae-hep loads model files "
                "with torch.load(weights_only=True) only. Re-save the weights with "
                f"lgae_hep.checkpoint.save_checkpoint. Details: {detail}"
            ) from None
        raise CheckpointError(
            f"{path} is corrupt or truncated (unpickling failed: {msg})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"{path} is not a readable checkpoint: truncated or corrupt file "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        hint = ""
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            hint = " (it looks like a bare state_dict: it has no config to build the model from)"
        raise CheckpointError(
            f"{path} is not an lgae-hep checkpoint: expected a dict with format={FORMAT!r}, "
            f"got {type(obj).__name__}{hint}"
        )
    version = obj.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise CheckpointError(
            f"{path}: checkpoint format_version {version!r} is not supported "
            f"(this lgae-hep reads versions 1..{FORMAT_VERSION}); upgrade lgae-hep"
        )
    for key in ("config", "state_dict"):
        if key not in obj:
            raise CheckpointError(f"{path}: checkpoint has no {key!r} entry")
    try:
        obj["config"] = json.loads(obj["config"])
        obj["metrics"] = json.loads(obj.get("metrics") or "{}")
    except (TypeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: config/metrics are not valid JSON ({err})") from None
    if not isinstance(obj["config"], dict):
        raise CheckpointError(f"{path}: config must be a JSON object, got {obj['config']!r}")
    return obj


def known_architectures() -> tuple[str, ...]:
    """Architectures :func:`model_from_checkpoint` can build (``lgae_hep.models.ARCHITECTURES``)."""
    return tuple(sorted(ARCHITECTURES))


def load_state_dict_checked(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor],
                            source: str = "checkpoint") -> None:
    """``load_state_dict(strict=True)`` with errors that name the parameter and both shapes."""
    own = unwrap_model(model).state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not fit the model: missing parameters {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}, unexpected parameters {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''}"
        )
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{source}: parameter {name!r} is not a tensor")
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise CheckpointError(
                f"{source}: shape mismatch for parameter {name!r}: checkpoint has "
                f"{tuple(tensor.shape)}, the model built from the config expects "
                f"{tuple(own[name].shape)}"
            )
    unwrap_model(model).load_state_dict(dict(state_dict), strict=True)


def model_from_checkpoint(ckpt: Mapping[str, Any], device: Any = None,
                          source: str = "checkpoint", dtype: Any = None) -> torch.nn.Module:
    """Build the model of a loaded checkpoint dict and load its weights (eval mode).

    ``dtype`` (``"float32"`` / ``"float64"`` or a torch dtype) builds the model in that
    precision instead of the one it was saved in; the weights are cast on loading (complex
    weights to the matching complex dtype).
    """
    config = dict(ckpt["config"])
    if dtype is not None:
        config["dtype"] = dtype_name(parse_dtype(dtype))
    try:
        model = build_model(config)
    except CheckpointError:
        raise
    except ValueError as err:  # unknown architecture, a config that does not fit it
        raise CheckpointError(f"{source}: {err}") from None
    load_state_dict_checked(model, ckpt["state_dict"], source)
    extra = ckpt.get("extra") or {}
    if isinstance(extra, Mapping) and "latent_density" in extra:
        try:
            model.latent_density = LatentDensity.from_state(extra["latent_density"])
        except ValueError as err:
            raise CheckpointError(f"{source}: its latent density is corrupt: {err}") from None
    if isinstance(extra, Mapping) and "aux_head" in extra:
        from lgae_hep.scoring.aux_head import AuxHead

        try:  # float64: its predictions are score features (objectives.aux_head_columns);
            # a plain attribute, not a submodule: the model's state_dict stays the network's
            object.__setattr__(model, "aux_head",
                               AuxHead.from_state(extra["aux_head"]).double().eval())
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{source}: its auxiliary head is corrupt: {err}") from None
    if isinstance(extra, Mapping) and "exposure_head" in extra:
        from lgae_hep.scoring.exposure import ExposureHead

        try:  # float64, a plain attribute (as the auxiliary head)
            object.__setattr__(model, "exposure_head",
                               ExposureHead.from_state(extra["exposure_head"]).double().eval())
        except (KeyError, TypeError, ValueError, RuntimeError, StopIteration) as err:
            raise CheckpointError(f"{source}: its exposure head is corrupt: {err}") from None
    if isinstance(extra, Mapping) and "decorrelation" in extra:
        from lgae_hep.scoring.decorrelation import MassDecorrelation

        maps = extra["decorrelation"]
        try:
            if not isinstance(maps, Mapping):
                raise ValueError(f"expected a dict score -> map, got {type(maps).__name__}")
            model.decorrelation = {str(k): MassDecorrelation.from_state(dict(v))
                                   for k, v in maps.items()}
        except (ValueError, TypeError) as err:
            raise CheckpointError(f"{source}: its mass decorrelation map is corrupt: {err}"
                                  ) from None
    if isinstance(extra, Mapping) and extra.get("score_metric") is not None:
        if not isinstance(extra["score_metric"], str):
            raise CheckpointError(f"{source}: score_metric must be a string, got "
                                  f"{extra['score_metric']!r}")
        model.score_metric = extra["score_metric"]
    if device is not None:
        model = model.to(device)
    return model.eval()


def load_model_file(path: str | Path, device: Any = None, dtype: Any = None) -> torch.nn.Module:
    """Load a model from a checkpoint file (``build_model(config)`` + strict weights).

    Parameters
    ----------
    path : str or Path
        A checkpoint written by :func:`save_checkpoint` (e.g. ``best.pt`` of a training run or
        a bundled ``models/pretrained/*.pt``).
    device : str or torch.device, optional
        Where to put the model (default: CPU).
    dtype : {"float32", "float64"}, optional
        Precision to build the model in (default: the one it was saved in).

    Returns
    -------
    torch.nn.Module
        The model in eval mode.

    Raises
    ------
    FileNotFoundError, CheckpointError
        See :func:`load_checkpoint`; also for an unknown architecture (the message lists the
        known ones) and parameter name/shape mismatches (naming the parameter and both shapes).
    """
    ckpt = load_checkpoint(path)
    return model_from_checkpoint(ckpt, device=device, source=str(path), dtype=dtype)
