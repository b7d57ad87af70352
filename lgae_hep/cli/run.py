"""``lgae-hep run``: the LGAE coffea processor over a fileset with coffea's Runner."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lgae_hep.cli._common import (
    CLASS_MODES,
    DEFAULT_MODEL,
    EXECUTORS,
    PUPPI_CHOICES,
    UserError,
    add_batch_size,
    add_collection,
    add_deprecated_alias,
    add_device,
    add_metric,
    add_model,
    add_num_particles,
    add_output,
    add_puppi,
    add_quiet,
    check_device,
    check_output_dir,
    positive_int,
)

# the library (torch, coffea) is imported inside the functions below: `lgae-hep run --help`
# imports none of it

__all__ = ["add_arguments", "add_plot_arguments", "main", "report"]


def add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``run`` and ``plot``: classes, background and the plot label."""
    parser.add_argument("--classes", choices=CLASS_MODES, default="auto",
                        help="what the plots and the AUC table compare: truth-label classes "
                             "(<collection>_label, e.g. QCD/t/W/Z), fileset datasets, or auto "
                             "(labels when every dataset has them, else datasets)")
    parser.add_argument("--background-class", default=None, metavar="NAME",
                        help="background class (a truth-label class or a dataset name, see "
                             "--classes) for the ROC and the mass sculpting; an unknown name "
                             "is an error (default: the class whose name contains 'qcd')")
    add_deprecated_alias(parser, "--background", "--background-class", "background_class")
    parser.add_argument("--formats", nargs="+", default=["png"], help="plot formats")
    parser.add_argument("--cms-label", default=None, metavar="TEXT",
                        help="text beside the experiment name, e.g. 'Simulation Preliminary' "
                             "(default: 'Private work' / 'Simulation Private work'; "
                             "generator-level files get no CMS logo)")
    parser.add_argument("--energy", default="13", metavar="TEV",
                        help="centre-of-mass energy in the label, e.g. 13 or 13.6 (Run 3)")
    parser.add_argument("--lumi", type=float, default=None, metavar="FB",
                        help="integrated luminosity in fb^-1 for the label")


def check_plot_arguments(args: argparse.Namespace) -> None:
    try:
        if float(args.energy) <= 0:
            raise ValueError
    except ValueError:
        raise UserError(f"--energy {args.energy!r}: expected a positive number of TeV, e.g. "
                        "13.6") from None


def label_from_args(result: Any, args: argparse.Namespace) -> Any:
    from lgae_hep.workflow import plot_label

    return plot_label(result, text=args.cms_label, energy=args.energy, lumi=args.lumi)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fileset", required=True,
                        help="JSON {dataset: [files]} (relative paths: relative to the JSON)")
    add_model(parser, DEFAULT_MODEL)
    add_output(parser, None)
    parser.add_argument("--executor", choices=EXECUTORS, default="futures",
                        help="coffea executor: processor.Runner with the iterative, futures or "
                             "dask executor, or dask-awkward (apply_to_fileset on mode='dask' "
                             "NanoEvents, computed on a local dask.distributed cluster or "
                             "--scheduler)")
    parser.add_argument("--workers", type=positive_int, default=2, help="worker processes")
    parser.add_argument("--scheduler", default=None,
                        help="address of a running dask scheduler (with --executor dask)")
    parser.add_argument("--chunksize", type=positive_int, default=100_000,
                        help="events per chunk")
    parser.add_argument("--maxchunks", type=positive_int, default=None,
                        help="chunks per dataset (default: all)")
    parser.add_argument("--skipbadfiles", action="store_true",
                        help="skip (and report) unreadable files instead of failing")
    parser.add_argument("--retries", type=int, default=0, help="retries of a failed chunk")
    add_collection(parser)
    parser.add_argument("--pt-min", type=float, default=None, help="jet pT > PT_MIN (GeV)")
    parser.add_argument("--eta-max", type=float, default=None, help="jet |eta| < ETA_MAX")
    add_num_particles(parser, None, "particles per jet (default: the model's own; another "
                                    "number is an error)")
    add_batch_size(parser, 256)
    add_metric(parser)
    add_device(parser)
    add_puppi(parser)
    parser.add_argument("--skim", choices=("root", "parquet"), default=None,
                        help="also write skims (skim/<dataset>/<file>_<hash>_<chunk>) with "
                             "FatJet_lgaeIdx (index in the input FatJet collection), "
                             "FatJet_lgaeScore and FatJet_lgaeLatent_*")
    parser.add_argument("--force", action="store_true",
                        help="score jets of another radius than the model was trained on "
                             "(e.g. --collection Jet, AK4, with an AK8 model); refused without")
    add_plot_arguments(parser)
    parser.add_argument("--no-plots", action="store_true", help="do not draw plots")
    add_quiet(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``lgae-hep run``."""
    from lgae_hep.cli._common import check_model
    from lgae_hep.domain import check_collection, training_domain

    check_device(args.device)
    check_plot_arguments(args)
    outdir = check_output_dir(args.output, args.overwrite)
    check_model(args.model)
    check_collection(args.collection, training_domain(args.model), force=args.force,
                     where="lgae-hep run")  # AK4 jets for an AK8 model: refused here

    from lgae_hep.processors import LGAEProcessor
    from lgae_hep.workflow import clear_run_outputs, make_plots, run_fileset, save_output
    from lgae_hep.zoo import load_model, model_num_particles

    n_model = model_num_particles(load_model(args.model))
    if args.num_particles is not None and args.num_particles != n_model:
        raise UserError(f"--num-particles {args.num_particles}: model {args.model!r} takes "
                        f"{n_model} particles per jet")
    proc = LGAEProcessor(
        args.model, jets=args.collection, pt_min=args.pt_min, eta_max=args.eta_max,
        max_particles=n_model, batch_size=args.batch_size, device=args.device,
        skim=args.skim, skim_dir=(outdir / "skim") if args.skim else None, metric=args.metric,
        puppi=PUPPI_CHOICES[args.puppi], force=args.force,
    )
    # --overwrite: what an earlier run wrote here (skims, plots, summaries) goes first, so the
    # folder never mixes two runs; other files are left alone
    clear_run_outputs(outdir)
    result = run_fileset(
        args.fileset, proc, executor=args.executor, workers=args.workers,
        chunksize=args.chunksize, maxchunks=args.maxchunks, skipbadfiles=args.skipbadfiles,
        retries=args.retries, scheduler=args.scheduler, status=not args.quiet,
    )
    summary = save_output(result, outdir, background=args.background_class,
                          classes=args.classes)
    report(result, summary, outdir)
    if not args.no_plots:
        files = make_plots(result, outdir, background=args.background_class,
                           formats=args.formats,
                           progress=not args.quiet, classes=args.classes,
                           label=label_from_args(result, args), summary=summary)
        print(f"plots: {', '.join(str(f) for f in files) or 'none (no scored jets)'}")
    return 0


def report(result: Any, summary: Mapping[str, Any], outdir: Path) -> None:
    """Print the summary table, the throughput, skipped files and the output folder."""
    from lgae_hep.workflow import summary_markdown

    print(summary_markdown(summary), end="")
    print(f"{result.n_jets} jets in {result.elapsed_s:.1f} s "
          f"({result.n_jets / max(result.elapsed_s, 1e-9):.0f} jets/s)")
    if result.bad_files:
        print(f"{len(result.bad_files)} file(s) skipped:", file=sys.stderr)
        for p, why in result.bad_files.items():
            print(f"  {p}: {why}", file=sys.stderr)
    print(f"output: {outdir.resolve()}")
