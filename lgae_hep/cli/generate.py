"""``lgae-hep generate``: Pythia 8 + FastJet jets into a PFNano-layout ROOT file."""

from __future__ import annotations

import argparse

from lgae_hep.cli._common import PROCESS_NAMES, add_quiet, check_output_file, positive_int

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--process", required=True, choices=PROCESS_NAMES, help="jet class")
    parser.add_argument("-n", "--num-jets", type=positive_int, required=True,
                        help="number of jets to generate")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    parser.add_argument("--workers", type=positive_int, default=1, help="worker processes")
    parser.add_argument("--fast", action="store_true",
                        help="switch multi-parton interactions off (about 2x faster)")
    parser.add_argument("--pt-range", type=float, nargs=2, default=(800.0, 1600.0),
                        metavar=("LOW", "HIGH"), help="jet pT window in GeV")
    parser.add_argument("--eta-max", type=float, default=2.5, help="jet |eta| bound")
    parser.add_argument("--pthat-range", type=float, nargs=2, default=None,
                        metavar=("LOW", "HIGH"),
                        help="Pythia pT-hat window in GeV (default: 700 2000)")
    parser.add_argument("-o", "--output", required=True, help="output ROOT file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    add_quiet(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``lgae-hep generate``; returns the exit status."""
    from lgae_hep.data.generate import GeneratedJets, generate  # lazy: fast `--help`

    check_output_file(args.output, args.overwrite)
    info = generate(args.process, args.num_jets, seed=args.seed, workers=args.workers,
                    output=args.output, fast=args.fast, pt_range=tuple(args.pt_range),
                    eta_max=args.eta_max,
                    pthat_range=tuple(args.pthat_range) if args.pthat_range else None,
                    progress=not args.quiet, return_info=True)
    assert isinstance(info, GeneratedJets)
    meta = info.metadata
    rate = meta["n_jets"] / max(meta["seconds"], 1e-9)
    print(f"wrote {meta['n_jets']} {args.process} jets in {len(info.jets)} events to "
          f"{args.output} ({meta['seconds']:.1f} s, {rate:.1f} jets/s with {meta['workers']} "
          "worker(s))")
    return 0
