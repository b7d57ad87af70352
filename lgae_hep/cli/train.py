"""``lgae-hep train``: train an LGAE or GNNAE on background jets (ROOT or JetNet files)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from lgae_hep.cli._common import (
    EXIT_INTERRUPTED,
    UserError,
    add_collection,
    add_device,
    add_num_particles,
    add_quiet,
    check_device,
)
from lgae_hep.data import DEFAULT_NUM_PARTICLES, read_jetnet, read_nanoaod
from lgae_hep.data.truth import PROCESSES
from lgae_hep.jsonio import read_json
from lgae_hep.models import build_model
from lgae_hep.train import LOSSES, SCHEDULERS, fit

__all__ = ["add_arguments", "load_background", "main"]

#: model options per architecture (config keys; the flags are --key-with-dashes)
MODEL_FLAGS = {
    "lgae": ("aggregation", "tau_v", "maxdim", "encoder_channels", "decoder_channels",
             "num_particles", "p4_scale"),
    "gnnae": ("encoding", "latent_dim", "hidden_dim", "num_layers_encoder",
              "num_layers_decoder", "num_particles"),
}
#: training options and their defaults (those of lgae_hep.train.fit); a --config file's
#: top-level keys override them, command-line flags override both
TRAIN_DEFAULTS = {"epochs": 50, "batch_size": 256, "lr": 1e-3, "patience": 10,
                  "grad_clip": 1.0, "loss": "chamfer", "scheduler": "plateau",
                  "val_fraction": 0.1, "device": "auto", "seed": 0}
EXIT_NONFINITE = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:

    src = parser.add_argument_group("data (background jets)")
    src.add_argument("--data", nargs="+", metavar="ROOT",
                     help="PFNano/NanoAOD ROOT file(s); with FatJet_label only QCD (g, q) jets "
                          "are used")
    src.add_argument("--val-data", nargs="+", metavar="ROOT",
                     help="separate validation file(s) (default: --val-fraction of --data)")
    src.add_argument("--jetnet", metavar="DIR", help="JetNet directory with {g,q,t,w,z}.hdf5")
    src.add_argument("--jet-type", nargs="+", default=["g", "q"], help="JetNet classes")
    src.add_argument("--max-jets", type=int, default=None,
                     help="use at most this many training jets (default: all)")
    add_collection(src)
    m = parser.add_argument_group("model")
    m.add_argument("--config", metavar="FILE",
                   help="JSON (or YAML) file with 'model' (a model config) and training options")
    m.add_argument("--arch", choices=list(MODEL_FLAGS), default=None,
                   help="architecture (default: the config's, else lgae)")
    m.add_argument("--aggregation", help="LGAE aggregation (mean, sum, min&max, mix, ...)")
    m.add_argument("--tau-v", type=int, help="LGAE latent 4-vector multiplicity (tau_v)")
    m.add_argument("--maxdim", type=int, help="LGAE: irreps (k, n) with k, n < maxdim kept")
    m.add_argument("--encoder-channels", type=int, nargs="+", help="LGAE channels per layer")
    m.add_argument("--decoder-channels", type=int, nargs="+", help="LGAE channels per layer")
    m.add_argument("--p4-scale", type=float, help="LGAE global input scale (1/GeV)")
    m.add_argument("--encoding", choices=["jet", "particle"], help="GNNAE latent (JL / PL)")
    m.add_argument("--latent-dim", type=int, help="GNNAE latent size")
    m.add_argument("--hidden-dim", type=int, help="GNNAE hidden size")
    m.add_argument("--num-layers-encoder", type=int, help="GNNAE encoder layers")
    m.add_argument("--num-layers-decoder", type=int, help="GNNAE decoder layers")
    add_num_particles(m, None, "particles per jet (default: the model config's, 30)")
    m.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help="model precision (default: float32)")
    t = parser.add_argument_group("training")
    t.add_argument("-o", "--output", default=None,
                   help="run folder for checkpoints and metrics (default: runs/<arch>)")
    t.add_argument("--resume", action="store_true", help="continue from <output>/last.pt")
    t.add_argument("--deterministic", action="store_true",
                   help="deterministic GPU kernels, no TF32 (lgae_hep.determinism); slower on "
                        "a GPU, no effect on CPU results")
    d = TRAIN_DEFAULTS
    t.add_argument("--epochs", type=int, default=None, help=f"maximum epochs ({d['epochs']})")
    t.add_argument("--batch-size", type=int, default=None,
                   help=f"jets per step ({d['batch_size']})")
    t.add_argument("--lr", type=float, default=None, help=f"learning rate ({d['lr']})")
    t.add_argument("--patience", type=int, default=None,
                   help=f"early-stopping patience in epochs ({d['patience']})")
    t.add_argument("--grad-clip", type=float, default=None,
                   help=f"max gradient norm ({d['grad_clip']})")
    t.add_argument("--loss", choices=list(LOSSES), default=None, help=f"loss ({d['loss']})")
    t.add_argument("--scheduler", choices=list(SCHEDULERS), default=None,
                   help=f"learning-rate schedule ({d['scheduler']})")
    t.add_argument("--val-fraction", type=float, default=None,
                   help=f"fraction held out for validation ({d['val_fraction']})")
    add_device(t, None, unset="auto: cuda when available, else cpu")
    t.add_argument("--seed", type=int, default=None, help=f"random seed ({d['seed']})")
    add_quiet(t)


def _read_config_file(path: str) -> dict[str, Any]:
    p = Path(path)
    if p.suffix.lower() in (".yaml", ".yml") and p.is_file():
        try:
            import yaml
        except ImportError:
            raise UserError(f"--config {path!r} is YAML but PyYAML is not installed; "
                            "use a JSON file") from None
        data = yaml.safe_load(p.read_text())
    else:
        data = read_json(p, "--config")
    if not isinstance(data, dict):
        raise UserError(f"--config {path!r} must hold a mapping, got {type(data).__name__}")
    return data


def load_background(paths: Sequence[str], collection: str, max_jets: int | None, what: str,
                    num_particles: int):
    """Background (QCD g/q-labelled, or unlabelled) jets of ROOT files, ``num_particles``
    hardest particles each: the model's own count, never the reader's default."""
    consts, jet_rec = read_nanoaod(list(paths), jets=collection, max_particles=num_particles,
                                   flat=True, with_jets=True, progress=False)
    n_all = len(consts)
    if "label" in jet_rec.fields:
        consts = consts[np.isin(ak.to_numpy(jet_rec.label), PROCESSES["qcd"])]
    if len(consts) == 0:
        raise UserError(
            f"{what} file(s) {list(paths)} contain no background jets "
            f"({n_all} jets in the '{collection}' collection"
            + (", none labelled QCD g/q)" if n_all else ")")
        )
    return consts[:max_jets] if max_jets is not None else consts


def _model_config(args: argparse.Namespace, file_cfg: dict[str, Any]) -> dict[str, Any]:
    model_cfg = dict(file_cfg.get("model", {}))
    arch = args.arch or model_cfg.get("architecture") or "lgae"
    if arch not in MODEL_FLAGS:
        raise UserError(f"unknown architecture {arch!r}; known: {', '.join(MODEL_FLAGS)}")
    model_cfg["architecture"] = arch
    for flag in MODEL_FLAGS[arch]:
        value = getattr(args, flag, None)
        if value is not None:
            model_cfg[flag] = tuple(value) if isinstance(value, list) else value
    other = {"lgae": "gnnae", "gnnae": "lgae"}[arch]
    wrong = [f for f in MODEL_FLAGS[other] if f not in MODEL_FLAGS[arch]
             and getattr(args, f, None) is not None]
    if wrong:
        raise UserError(f"--{wrong[0].replace('_', '-')} is a {other} option, "
                        f"not valid with --arch {arch}")
    if args.dtype:
        model_cfg["dtype"] = args.dtype
    return model_cfg


def main(args: argparse.Namespace) -> int:
    """Run ``lgae-hep train``; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    file_cfg = _read_config_file(args.config) if args.config else {}
    model_cfg = _model_config(args, file_cfg)
    opts = {k: file_cfg.get(k, v) for k, v in TRAIN_DEFAULTS.items()}
    for k in TRAIN_DEFAULTS:
        if getattr(args, k, None) is not None:
            opts[k] = getattr(args, k)
    check_device(opts["device"])
    if not args.data and not args.jetnet:
        raise UserError("give background jets with --data FILE.root [...] or --jetnet DIR")
    n_part = int(model_cfg.get("num_particles", DEFAULT_NUM_PARTICLES))
    if args.data:
        train = load_background(args.data, args.collection, args.max_jets, "--data", n_part)
        val = (load_background(args.val_data, args.collection, None, "--val-data", n_part)
               if args.val_data else None)
    else:
        train = read_jetnet(args.jetnet, jet_type=args.jet_type, split="train",
                            num_particles=n_part)
        val = read_jetnet(args.jetnet, jet_type=args.jet_type, split="valid",
                          num_particles=n_part)
        if args.max_jets is not None:
            train = train[: args.max_jets]
    out = args.output or str(Path("runs") / model_cfg["architecture"])
    model = build_model(model_cfg)
    try:
        res = fit(model, train, val, out_dir=out, resume=args.resume,
                  deterministic=args.deterministic, progress=not args.quiet, log=print, **opts)
    except KeyboardInterrupt:
        print(f"lgae-hep train: interrupted; the last finished epoch is in {out}/last.pt, "
              f"continue with: lgae-hep train ... -o {out} --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FloatingPointError as err:
        print(f"lgae-hep train: error: {err}", file=sys.stderr)
        return EXIT_NONFINITE
    print(f"best epoch {res.best_epoch + 1} (val loss {res.best_val_loss:.5g}); "
          f"model: {res.best_path}; {res.epochs_run} epochs in {res.seconds:.0f} s")
    return 0
