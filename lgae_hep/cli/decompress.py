"""``lgae-hep decompress``: rebuild particle-level jets from a compressed file (PFNano layout)."""

from __future__ import annotations

import argparse
import sys
import warnings

from lgae_hep.cli._common import add_device, add_quiet, check_device, check_output_file

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN.root", help="compressed ROOT file "
                                                         "(from lgae-hep compress)")
    parser.add_argument("-o", "--output", required=True, help="output PFNano-layout ROOT file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument("--model", default=None,
                        help="model to decode with (default: the one recorded in the file); "
                             "another model than the one that compressed is an error")
    parser.add_argument("--compression", default="lz4:1",
                        help="output file compression: lzma:N, zlib:N, lz4:N, zstd:N or none")
    parser.add_argument("--batch-size", type=int, default=1024, help="jets per network call")
    add_device(parser)
    add_quiet(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``lgae-hep decompress``."""
    from lgae_hep.compression import decompress_file, parse_compression

    check_device(args.device)
    parse_compression(args.compression)
    out = check_output_file(args.output, args.overwrite)
    from lgae_hep.compression.physical import UnphysicalOutputWarning

    with warnings.catch_warnings():
        # said once below, as one line, even with --quiet: the jets are not fit for physics
        warnings.simplefilter("ignore", UnphysicalOutputWarning)
        summary = decompress_file(args.input, out, args.model, batch_size=args.batch_size,
                                  device=args.device, progress=not args.quiet,
                                  compression=args.compression)
    print(f"{summary['n_jets']} jets in {summary['n_events']} events -> {summary['output']} "
          f"({summary['bytes']} bytes)")
    if summary.get("warning"):
        print(f"warning: {summary['warning']}", file=sys.stderr)
    return 0
