"""``lgae-hep run``: the LGAE coffea processor over a fileset with coffea's Runner."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lgae_hep.cli._common import (
    UserError,
    add_collection,
    add_device,
    add_metric,
    add_model,
    add_num_particles,
    add_output,
    add_quiet,
    check_device,
    check_output_dir,
)
from lgae_hep.processors import LGAEProcessor
from lgae_hep.run import make_plots, run_fileset, save_output, summary_markdown
from lgae_hep.zoo import DEFAULT_MODEL, load_model, model_num_particles

__all__ = ["add_arguments", "main", "report"]

EXECUTORS = ("iterative", "futures", "dask")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fileset", required=True,
                        help="JSON {dataset: [files]} (relative paths: relative to the JSON)")
    add_model(parser, DEFAULT_MODEL)
    add_output(parser, None)
    parser.add_argument("--executor", choices=EXECUTORS, default="futures",
                        help="coffea executor")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--scheduler", default=None,
                        help="address of a running dask scheduler (with --executor dask)")
    parser.add_argument("--chunksize", type=int, default=100_000, help="events per chunk")
    parser.add_argument("--maxchunks", type=int, default=None,
                        help="chunks per dataset (default: all)")
    parser.add_argument("--skipbadfiles", action="store_true",
                        help="skip (and report) unreadable files instead of failing")
    parser.add_argument("--retries", type=int, default=0, help="retries of a failed chunk")
    add_collection(parser)
    parser.add_argument("--pt-min", type=float, default=None, help="jet pT > PT_MIN (GeV)")
    parser.add_argument("--eta-max", type=float, default=None, help="jet |eta| < ETA_MAX")
    add_num_particles(parser, None, "particles per jet (default: the model's own; another "
                                    "number is an error)")
    parser.add_argument("--batch-size", type=int, default=256, help="jets per network call")
    add_metric(parser)
    add_device(parser)
    parser.add_argument("--skim", choices=("root", "parquet"), default=None,
                        help="also write skims with FatJet_lgaeScore / FatJet_lgaeLatent_*")
    parser.add_argument("--background", default=None,
                        help="background class or dataset for ROC and mass plots (default: QCD)")
    parser.add_argument("--formats", nargs="+", default=["png"], help="plot formats")
    parser.add_argument("--no-plots", action="store_true", help="do not draw plots")
    add_quiet(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``lgae-hep run``."""

    check_device(args.device)
    outdir = check_output_dir(args.output, args.overwrite)
    n_model = model_num_particles(load_model(args.model))  # unknown model: error here
    if args.num_particles is not None and args.num_particles != n_model:
        raise UserError(f"--num-particles {args.num_particles}: model {args.model!r} takes "
                        f"{n_model} particles per jet")
    proc = LGAEProcessor(
        args.model, jets=args.collection, pt_min=args.pt_min, eta_max=args.eta_max,
        max_particles=n_model, batch_size=args.batch_size, device=args.device,
        skim=args.skim, skim_dir=(outdir / "skim") if args.skim else None, metric=args.metric,
    )
    result = run_fileset(
        args.fileset, proc, executor=args.executor, workers=args.workers,
        chunksize=args.chunksize, maxchunks=args.maxchunks, skipbadfiles=args.skipbadfiles,
        retries=args.retries, scheduler=args.scheduler, status=not args.quiet,
    )
    summary = save_output(result, outdir, background=args.background)
    report(result, summary, outdir)
    if not args.no_plots:
        files = make_plots(result, outdir, background=args.background, formats=args.formats,
                           progress=not args.quiet)
        print(f"plots: {', '.join(str(f) for f in files)}")
    return 0


def report(result: Any, summary: Mapping[str, Any], outdir: Path) -> None:
    """Print the summary table, the throughput, skipped files and the output folder."""

    print(summary_markdown(summary), end="")
    print(f"{result.n_jets} jets in {result.elapsed_s:.1f} s "
          f"({result.n_jets / max(result.elapsed_s, 1e-9):.0f} jets/s)")
    if result.bad_files:
        print(f"{len(result.bad_files)} file(s) skipped:", file=sys.stderr)
        for p, why in result.bad_files.items():
            print(f"  {p}: {why}", file=sys.stderr)
    print(f"output: {outdir.resolve()}")
