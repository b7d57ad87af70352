"""The ``lgae-hep`` command.

Each sub-command lives in the module that implements it. That module provides two functions::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def cli_main(args: argparse.Namespace) -> int: ...

and is imported only when its command runs, so ``lgae-hep --help`` stays fast and a broken
optional dependency (say, pythia8mc) only affects the command that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: command name -> (implementing module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "check-lorentz": (
        "lgae_hep.lorentz.check",
        "verify the Lorentz-group algebra (irreps, Clebsch-Gordan) and print residuals",
    ),
    "generate": (
        "lgae_hep.data.generate",
        "generate JetNet-like jets with Pythia 8 + FastJet into a PFNano-layout ROOT file",
    ),
    "train": ("lgae_hep.train", "train an LGAE or GNNAE on background jets"),
    "evaluate": ("lgae_hep.evaluate", "anomaly-detection and reconstruction metrics and plots"),
    "run": ("lgae_hep.run", "run the LGAE coffea processor over a fileset with coffea's Runner"),
    "plot": ("lgae_hep.run", "redraw the plots of a saved `lgae-hep run` output"),
    "demo": ("lgae_hep.demo", "end-to-end demo: generate jets, score them with coffea, plot"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lgae-hep",
        description="Lorentz Group Equivariant Autoencoder for HEP: train, score, process files.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lgae-hep`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = _top_parser()
        args = parser.parse_args(argv)
        if args.version:
            from lgae_hep import __version__

            print(__version__)
            return 0
        parser.print_help()
        return 0 if not argv else 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"lgae-hep {name}", description=help_text)
    adder = getattr(module, f"add_arguments_{name.replace('-', '_')}", None) or module.add_arguments
    runner = getattr(module, f"cli_main_{name.replace('-', '_')}", None) or module.cli_main
    adder(parser)
    args = parser.parse_args(rest)
    return int(runner(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
