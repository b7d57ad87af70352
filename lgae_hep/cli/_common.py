"""What every ``lgae-hep`` subcommand shares: option names, up-front checks, the error policy.

Naming scheme (one name per concept, across subcommands):

* ``-o/--output``: where results go (a folder; for ``generate``, the ROOT file);
* ``--model``: a trained model, a bundled name or a checkpoint path; ``--arch``: an
  architecture to build (``train``);
* ``--collection``: a jet collection name in ROOT files (``FatJet``);
* counts of jets: ``--num-jets N`` is how many jets to *make* (``generate``; ``demo``: per
  class), ``--max-jets N`` caps how many jets to *use* (``train``, ``evaluate``);
  ``--num-particles``: particles per jet;
* ``--background FILE`` / ``--signal FILE...``: input files (``evaluate``);
  ``--background-class NAME``: the name of the background class (``run`` and ``plot``: which
  class the ROC and the sculpting use; ``evaluate``: what the background file is called);
* ``--quiet``: no progress bars (nor coffea's); ``--device``: a torch device; ``--metric``: a
  score metric; ``--batch-size``: jets per network call;
* ``--overwrite``: allow writing into an existing, non-empty output folder (or over a file).

Old spellings stay as hidden aliases that warn (:func:`add_deprecated_alias`):
``--background CLASS`` of ``run``/``plot``, ``--background-name`` of ``evaluate``,
``--jets-per-class`` of ``demo``.

Error policy (:func:`run_command`): a user error (bad value, unknown model, missing file, an
output folder that exists, a device this machine does not have) prints one line
``lgae-hep CMD: error: ...`` to stderr and exits with 2, like argparse's own errors (one line
too, :class:`ArgumentParser`); Ctrl-C prints ``interrupted`` and exits with 130; anything else
is a bug and keeps its traceback. Warnings print as one line ``lgae-hep CMD: warning:
(Category) ...`` without the Python source line (:func:`cli_warnings`).

Speed: a subcommand's ``add_arguments`` imports nothing heavy (no torch, coffea, awkward), so
``lgae-hep CMD --help`` is as fast as ``lgae-hep --help``; the constants the parsers need are
mirrored below from the library (:data:`LIBRARY_MIRRORS`; a test checks they agree).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "CLASS_MODES",
    "DEFAULT_EPS_B",
    "DEFAULT_MODEL",
    "EXECUTORS",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "LIBRARY_MIRRORS",
    "PUPPI_CHOICES",
    "SCORE_NAMES",
    "ArgumentParser",
    "HelpFormatter",
    "UserError",
    "add_batch_size",
    "add_collection",
    "add_deprecated_alias",
    "add_device",
    "add_metric",
    "add_model",
    "add_num_particles",
    "add_output",
    "add_puppi",
    "add_quiet",
    "check_device",
    "check_model",
    "check_output_dir",
    "cli_warnings",
    "positive_int",
    "run_command",
]

# ---- library constants the parsers need (mirrored: `--help` imports no torch/coffea) -------

#: lgae_hep.zoo.DEFAULT_MODEL
DEFAULT_MODEL = "lgae-mix"
#: lgae_hep.scoring.registry.SCORES (the ``--metric`` choices)
SCORE_NAMES = ("chamfer", "chamfer-dr", "latent-density", "latent-density-given-mass",
               "latent-density-joint", "exposure", "chamfer-decorrelated",
               "chamfer-dr-decorrelated", "latent-density-decorrelated",
               "latent-density-given-mass-decorrelated", "latent-density-joint-decorrelated",
               "exposure-decorrelated")
#: lgae_hep.workflow.EXECUTORS
EXECUTORS = ("iterative", "futures", "dask", "dask-awkward")
#: lgae_hep.workflow.CLASS_MODES
CLASS_MODES = ("auto", "labels", "datasets")
#: lgae_hep.metrics.DEFAULT_EPS_B
DEFAULT_EPS_B = (0.1, 0.01, 0.001)
#: lgae_hep.data.truth.PROCESSES (sorted names)
PROCESS_NAMES = ("g", "h4q", "hbb", "q", "qcd", "t", "w", "z")
#: lgae_hep.demo.DEFAULT_JETS, lgae_hep.demo.SMALL_JETS
DEMO_JETS, DEMO_SMALL_JETS = 400, 25

#: mirror name here -> (library module, expression there) that it must equal
LIBRARY_MIRRORS = {
    "DEFAULT_MODEL": ("lgae_hep.zoo", "DEFAULT_MODEL"),
    "SCORE_NAMES": ("lgae_hep.scoring.registry", "tuple(SCORES)"),
    "EXECUTORS": ("lgae_hep.workflow", "tuple(EXECUTORS)"),
    "CLASS_MODES": ("lgae_hep.workflow", "tuple(CLASS_MODES)"),
    "DEFAULT_EPS_B": ("lgae_hep.metrics", "tuple(DEFAULT_EPS_B)"),
    "PROCESS_NAMES": ("lgae_hep.data.truth", "tuple(sorted(PROCESSES))"),
    "DEMO_JETS": ("lgae_hep.demo", "DEFAULT_JETS"),
    "DEMO_SMALL_JETS": ("lgae_hep.demo", "SMALL_JETS"),
}

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UserError(ValueError):
    """A mistake in the command line or its inputs: reported in one line, exit code 2."""


#: exceptions that are the user's to fix, not bugs
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError,
                                                NotADirectoryError, IsADirectoryError,
                                                PermissionError)


def one_line(text: Any, limit: int = 2000) -> str:
    """``text`` with its whitespace (newlines included) collapsed, cut at ``limit`` chars."""
    msg = " ".join(str(text).split())
    return msg if len(msg) <= limit else msg[: limit - 25] + f" ... ({len(msg)} characters)"


def run_command(name: str, main: Callable[[argparse.Namespace], int | None],
                args: argparse.Namespace) -> int:
    """Call a subcommand's ``main`` under the error policy of this module."""
    try:
        with cli_warnings(name):
            return int(main(args) or 0)
    except KeyboardInterrupt:
        print(f"lgae-hep {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as err:
        # a library message that already names the command ("lgae-hep score: ...") once only
        msg = one_line(err).removeprefix(f"lgae-hep {name}: ") or type(err).__name__
        print(f"lgae-hep {name}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE


@contextlib.contextmanager
def cli_warnings(name: str) -> Iterator[None]:
    """Within: a warning prints as one line ``lgae-hep NAME: warning: (Category) message`` on
    stderr (no file name, no source line); the previous ``warnings.showwarning`` afterwards.

    Only the command line does this; library users keep Python's own warning format.
    """
    previous = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        out = file if file is not None else sys.stderr
        try:
            text = one_line(message).removeprefix(f"lgae-hep {name}: ")
            print(f"lgae-hep {name}: warning: ({category.__name__}) {text}", file=out)
        except (OSError, ValueError):  # a closed stream: nowhere to warn
            pass

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


# ---- parser and help --------------------------------------------------------------------


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults formatter, without the noise: the default is appended only when
    the help does not state it already and it says something (not ``None``, not ``False`` of
    a flag, not a suppressed value)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or "(default" in text or "default:" in text:
            return text
        d = action.default
        if d is None or d is argparse.SUPPRESS or d is False or action.nargs == 0:
            return text
        if isinstance(d, list | tuple):
            d = " ".join(str(x) for x in d)
            return f"{text} (default: {d.replace('%', '%%')})"
        return text + " (default: %(default)s)"


class ArgumentParser(argparse.ArgumentParser):
    """A subcommand's parser: a bad option is one ``PROG: error: ...`` line (exit 2) that
    points at ``--help``, like the errors of :func:`run_command`."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} "
                              f"(see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """argparse ``type``: an integer >= 1 (``--batch-size 0`` is a one-line error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer; give 1 or more")
    return value


class _DeprecatedAlias(argparse.Action):
    """An old option spelling: stores into the new option's ``dest`` and warns once."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "",
                 **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        warnings.warn(f"{option_string} is deprecated in {parser.prog}: use {self.new} "
                      "(same meaning)", FutureWarning, stacklevel=2)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(parser: argparse.ArgumentParser | Any, old: str, new: str,
                         dest: str, **kwargs: Any) -> None:
    """``old`` as a hidden alias of option ``new`` (destination ``dest``) that warns."""
    parser.add_argument(old, dest=dest, action=_DeprecatedAlias, new=new,
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)


# ---- option adders -------------------------------------------------------------------------


def add_output(parser: argparse.ArgumentParser, default: str | None, what: str = "folder",
               *, overwrite: bool = True) -> None:
    """``-o/--output`` (and ``--overwrite`` for folders)."""
    parser.add_argument("-o", "--output", required=default is None, default=default,
                        help=f"output {what}")
    if overwrite:
        parser.add_argument("--overwrite", action="store_true",
                            help="write into an existing, non-empty output folder (files of "
                                 "the same names are replaced, others are left alone)")


def add_model(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument("--model", default=default,
                        help="bundled model name or checkpoint path (lgae-hep models lists the "
                             "bundled ones)")


def add_collection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--collection", default="FatJet",
                        help="jet collection in the ROOT files")


def add_num_particles(parser: argparse.ArgumentParser, default: int | None,
                      help_text: str = "particles per jet (the hardest are kept); must match "
                                       "the model") -> None:
    parser.add_argument("--num-particles", type=int, default=default, help=help_text)


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars (coffea's included) and no banners")


def add_device(parser: argparse.ArgumentParser, default: str | None = None, *,
               unset: str = "cpu") -> None:
    """``--device``; ``unset``: what happens without the option, for the help text."""
    parser.add_argument("--device", default=default,
                        help=f"torch device: cpu, cuda, cuda:1, ... (default: {unset})")


def add_batch_size(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument("--batch-size", type=positive_int, default=default,
                        help="jets per network call")


def add_metric(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metric", choices=SCORE_NAMES, default=None, metavar="METRIC",
                        help="anomaly-score metric, one of: " + ", ".join(SCORE_NAMES)
                             + " (default: the one the model's card recommends, chamfer for "
                               "models without a card)")


#: ``--puppi`` values -> the ``puppi`` argument of the readers and the processor
#: (:func:`lgae_hep.data.resolve_puppi`): weight when the branch exists, always, never.
PUPPI_CHOICES = {"auto": None, "on": True, "off": False}


def add_puppi(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--puppi", choices=tuple(PUPPI_CHOICES), default="auto",
                        help="PUPPI-weight the constituents by PFCands_puppiWeight (auto: when "
                             "the branch exists, on: required, off: never)")


# ---- up-front checks -----------------------------------------------------------------------


def check_model(model: str | None) -> None:
    """An unknown model name or a missing checkpoint: error before any work starts."""
    if model is None:
        return
    from lgae_hep.zoo import resolve_model  # lazy: keeps torch out of `lgae-hep --help`

    resolve_model(model)  # ValueError listing the bundled models


def check_device(device: str | None) -> None:
    """A device torch does not know, or one this machine does not have
    (:func:`lgae_hep.devices.check_device`)."""
    if device in (None, "auto"):
        return
    from lgae_hep.devices import check_device as check  # lazy: no torch in `--help`

    try:
        check(device, what="--device")
    except ValueError as err:
        raise UserError(str(err)) from None


def check_output_file(path: str | Path, overwrite: bool) -> Path:
    """An output file that exists needs ``--overwrite``."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise UserError(f"output file {str(p)!r} exists; choose another -o/--output or pass "
                        "--overwrite")
    return p


def check_output_dir(path: str | Path, overwrite: bool) -> Path:
    """An output folder that exists and is not empty needs ``--overwrite``."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"output {str(p)!r} exists and is not a folder")
    if p.is_dir() and any(p.iterdir()) and not overwrite:
        raise UserError(f"output folder {str(p)!r} exists and is not empty; choose another "
                        "-o/--output or pass --overwrite")
    return p
