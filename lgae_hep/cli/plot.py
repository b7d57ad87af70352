"""``lgae-hep plot``: redraw the plots of a saved ``lgae-hep run`` output."""

from __future__ import annotations

import argparse

from lgae_hep.cli._common import add_quiet
from lgae_hep.cli.run import add_plot_arguments, check_plot_arguments, label_from_args

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="folder written by `lgae-hep run` (its plots/ are replaced)")
    add_plot_arguments(parser)
    add_quiet(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``lgae-hep plot``."""
    from lgae_hep.workflow import load_output, make_plots

    check_plot_arguments(args)
    result = load_output(args.run_dir)
    files = make_plots(result, args.run_dir, background=args.background_class,
                       formats=args.formats,
                       progress=not args.quiet, classes=args.classes,
                       label=label_from_args(result, args))
    print(f"plots: {', '.join(str(f) for f in files) or 'none (no scored jets)'}")
    return 0
