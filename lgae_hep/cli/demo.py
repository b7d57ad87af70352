"""``lgae-hep demo``: generate jets, score them with coffea and the bundled model, plot."""

from __future__ import annotations

import argparse
from pathlib import Path

from lgae_hep.cli._common import (
    DEMO_JETS,
    DEMO_SMALL_JETS,
    add_deprecated_alias,
    add_model,
    add_quiet,
    check_model,
    positive_int,
)

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="lgae-demo",
                        help="output folder (the demo replaces its own files there)")
    parser.add_argument("--num-jets", type=positive_int, default=None,
                        help=f"jets generated per class (default: {DEMO_JETS}; "
                             f"{DEMO_SMALL_JETS} with --small)")
    add_deprecated_alias(parser, "--jets-per-class", "--num-jets", "num_jets",
                         type=positive_int)
    parser.add_argument("--small", action="store_true", help="tiny samples (CI)")
    add_model(parser, None)
    parser.add_argument("--cache-dir", default=None,
                        help="sample cache (default: $LGAE_HEP_CACHE/demo or "
                             "~/.cache/lgae-hep/demo)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    add_quiet(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``lgae-hep demo``."""
    from lgae_hep.demo import DEFAULT_JETS, SMALL_JETS, demo  # lazy: no torch in `--help`

    check_model(args.model)
    n = args.num_jets or (SMALL_JETS if args.small else DEFAULT_JETS)
    summary = demo(args.output, jets_per_class=n, model=args.model, cache_dir=args.cache_dir,
                   workers=args.workers, progress=not args.quiet)
    out = Path(args.output).resolve()
    print((out / "summary.md").read_text(), end="")
    print(f"plots: {', '.join(summary['plots'])}")
    print(f"demo finished in {summary['total_s']:.0f} s; output folder: {out}")
    return 0
