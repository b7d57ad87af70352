"""The ``lgae-hep`` command: every subcommand's arguments and entry point, one naming scheme
and one error policy (:mod:`lgae_hep.cli._common`). Library modules hold no argparse.

Each subcommand is a module here with two functions::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def main(args: argparse.Namespace) -> int: ...

imported only when its command runs, so ``lgae-hep --help`` stays fast (no torch) and a broken
optional dependency (say, pythia8mc) only affects the command that needs it. ``add_arguments``
imports nothing heavy either (heavy imports live inside ``main``), so ``lgae-hep CMD --help``
is fast too.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from lgae_hep.cli._common import (
    EXIT_USAGE,
    ArgumentParser,
    HelpFormatter,
    cli_warnings,
    run_command,
)

__all__ = ["COMMANDS", "build_parser", "main", "version_text"]

#: command name -> (module under lgae_hep.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "check-lorentz": ("check_lorentz", "verify the Lorentz-group algebra (irreps, Clebsch-Gordan) "
                                       "and print residuals"),
    "generate": ("generate", "generate JetNet-like jets with Pythia 8 + FastJet into a "
                             "PFNano-layout ROOT file"),
    "train": ("train", "train an LGAE or GNNAE on background jets"),
    "evaluate": ("evaluate", "anomaly-detection and reconstruction metrics and plots"),
    "run": ("run", "run the LGAE coffea processor over a fileset with coffea's Runner"),
    "plot": ("plot", "redraw the plots of a saved `lgae-hep run` output"),
    "demo": ("demo", "end-to-end demo: generate jets, score them with coffea, plot"),
    "score": ("score", "score the jets of one or a few ROOT files (no fileset) into a "
                       "parquet/ROOT/CSV table"),
    "models": ("models", "list the bundled pretrained models with their card summaries"),
    "compress": ("compress", "store the jets of NanoAOD/PFNano files as LGAE latents "
                            "(a smaller ROOT file)"),
    "decompress": ("decompress", "rebuild particle-level jets from a compressed file, "
                                "in the PFNano layout"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lgae-hep",
        description="Lorentz Group Equivariant Autoencoder for HEP: train, score, process files.",
    )
    parser.add_argument("--version", action="store_true",
                        help="print the lgae-hep, Python, torch, awkward and coffea versions "
                             "and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def build_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    """The parser of subcommand ``name`` and its module (defaults shown in ``--help``)."""
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(f"lgae_hep.cli.{module_name}")
    parser = ArgumentParser(prog=f"lgae-hep {name}", description=help_text,
                            formatter_class=HelpFormatter)
    module.add_arguments(parser)
    return parser, module


def version_text() -> str:
    """``lgae-hep --version``: the package, where it is installed, and what it runs on
    (versions read from the installed distributions: nothing heavy is imported)."""
    import platform
    from importlib import metadata
    from pathlib import Path

    from lgae_hep import __version__

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    where = Path(__file__).resolve().parents[1]
    deps = ", ".join(f"{d} {version(d)}" for d in ("torch", "awkward", "coffea", "uproot"))
    return (f"lgae-hep {__version__} ({where})\n"
            f"Python {platform.python_version()} ({sys.executable}), {deps}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lgae-hep`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = _top_parser()
        args = parser.parse_args(argv)
        if args.version:
            print(version_text())
            return 0
        parser.print_help()
        return 0 if not argv else EXIT_USAGE
    name, rest = argv[0], argv[1:]
    parser, module = build_parser(name)
    with cli_warnings(name):  # a deprecated option warns while parsing
        args = parser.parse_args(rest)
    return run_command(name, module.main, args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
