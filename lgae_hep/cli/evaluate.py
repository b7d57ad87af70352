"""``lgae-hep evaluate``: anomaly-detection and reconstruction metrics and plots of a model."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lgae_hep.cli._common import (
    DEFAULT_EPS_B,
    DEFAULT_MODEL,
    UserError,
    add_batch_size,
    add_deprecated_alias,
    add_device,
    add_metric,
    add_model,
    add_output,
    add_quiet,
    check_device,
    check_model,
    check_output_dir,
    positive_int,
)

# the library (torch, the readers, the metrics) is imported inside main: `lgae-hep evaluate
# --help` imports none of it

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model(parser, DEFAULT_MODEL)
    parser.add_argument("--background", required=True, metavar="ROOT",
                        help="background (QCD) ROOT file in PFNano layout")
    parser.add_argument("--signal", required=True, nargs="+", metavar="ROOT",
                        help="signal ROOT files (one class each)")
    parser.add_argument("--signal-names", nargs="+", default=None, metavar="NAME",
                        help="names of the signal classes (default: file stems)")
    parser.add_argument("--background-class", default="QCD", metavar="NAME",
                        help="name of the background class (the --background file's jets)")
    add_deprecated_alias(parser, "--background-name", "--background-class", "background_class")
    parser.add_argument("--reference", default=None, metavar="ROOT",
                        help="QCD validation file (not the test background) to fit the density "
                             "yardstick on, a Gaussian mixture on (log m, tau21, tau32); "
                             "default: that yardstick is not reported")
    add_output(parser, "lgae_evaluation")
    parser.add_argument("--max-jets", type=positive_int, default=None,
                        help="use at most this many jets per file (default: all)")
    parser.add_argument("--eps-b", type=float, nargs="+", default=list(DEFAULT_EPS_B),
                        help="background efficiencies of the quoted signal efficiencies")
    add_metric(parser)
    parser.add_argument("--no-reconstruction", action="store_true",
                        help="skip the reconstruction metrics")
    parser.add_argument("--no-plots", action="store_true", help="do not draw plots")
    parser.add_argument("--formats", nargs="+", default=["png", "pdf"], help="plot formats")
    add_batch_size(parser, 256)
    add_device(parser)
    add_quiet(parser)


def _model_info(model: Any) -> tuple[int, Any]:
    """(num_particles, compression rate as the model reports it: float, dict or None)."""
    from lgae_hep.zoo import model_num_particles

    cr = getattr(model, "compression_rate", None)
    if callable(cr):
        cr = cr()
    if cr is None:
        cr = (getattr(model, "config", None) or {}).get("compression_rate")
    return model_num_particles(model), cr


def main(args: argparse.Namespace) -> int:
    """Score the files with the model and write results and plots."""
    check_device(args.device)
    names = args.signal_names or [Path(s).stem for s in args.signal]
    if len(names) != len(args.signal):
        raise UserError(f"--signal-names gives {len(names)} names for {len(args.signal)} "
                        "signal files")
    for path in [args.background, *args.signal, *([args.reference] if args.reference else [])]:
        if not Path(path).is_file():
            raise UserError(f"input file {path!r} does not exist")
    outdir = check_output_dir(args.output, args.overwrite)
    check_model(args.model)

    import lgae_hep
    from lgae_hep import api
    from lgae_hep.data import to_tensors
    from lgae_hep.evaluate import evaluate
    from lgae_hep.metrics import padded_p4, to_numpy

    model = api.load_model(args.model, device=args.device)
    metric = api.resolve_metric(args.metric, args.model)  # the card's (by name) for None
    num_particles, cr = _model_info(model)

    def read(path: str) -> Any:
        # the model's own particle count, not the reader's default of 30
        jets = lgae_hep.read_nanoaod(path, max_particles=num_particles, flat=True,
                                     progress=False if args.quiet else None)
        if args.max_jets is not None:
            jets = jets[: args.max_jets]
        if len(jets) == 0:
            raise UserError(f"{path!r} contains no jets")
        return jets

    background = read(args.background)
    reference = read(args.reference) if args.reference else None
    signals = {n: read(p) for n, p in zip(names, args.signal)}

    # --quiet: no bars; else the library's default (a bar for inputs above one chunk)
    run = {"batch_size": args.batch_size, "device": args.device,
           "progress": False if args.quiet else None}

    def score_fn(jets: Any) -> Any:
        return api.score(jets, model=model, metric=metric, **run)

    def reconstruct_fn(jets: Any) -> tuple:
        # the input as the model sees it (N hardest, invalid jets masked); the reconstruction
        # as it is (no physics validation of network outputs; invalid jets -> no particles)
        p4_in, mask_in, _ = to_tensors(jets, num_particles=num_particles, backend="numpy")
        p4_re, mask_re = padded_p4(api.reconstruct(jets, model=model, **run))
        return p4_in, mask_in, p4_re, mask_re

    def latent_fn(jets: Any) -> Any:
        z = api.encode(jets, model=model, **run)
        # latent invariants: the complex Minkowski squares v_i . v_i of the latent 4-vectors
        # (fields norms_re / norms_im of lgae_hep.encode, (n_jets, tau_v) each)
        if not {"norms_re", "norms_im"} <= set(getattr(z, "fields", None) or []):
            raise ValueError(f"encode() output has no latent 4-vector norms (fields "
                             f"{getattr(z, 'fields', None)})")
        out = {}
        for field, part in (("norms_re", "Re"), ("norms_im", "Im")):
            arr = to_numpy(z[field]).reshape(len(z), -1)
            for i in range(arr.shape[1]):
                out[rf"{part} $v_{{{i}}}\cdot v_{{{i}}}$"] = arr[:, i]
        return out

    try:  # latent invariants are a plot only: do not fail the evaluation over the layout
        latent_fn(background[:1])
        lfn: Callable[[Any], Any] | None = latent_fn
    except ValueError as exc:
        print(f"lgae-hep evaluate: latent invariants not plotted ({exc})")
        lfn = None

    result = evaluate(
        score_fn, background, signals,
        reconstruct_fn=None if args.no_reconstruction else reconstruct_fn,
        latent_fn=lfn, background_name=args.background_class, eps_b=args.eps_b,
        compression_rate=cr, model_name=str(args.model), outdir=outdir,
        plots=not args.no_plots, formats=args.formats, reference=reference,
        metadata={
            "files": {"background": args.background, "signals": dict(zip(names, args.signal))},
            "score_metric": metric, "device": args.device,
        },
    )
    print(result.summary_table())
    print(f"results written to {outdir.resolve()}")
    return 0
