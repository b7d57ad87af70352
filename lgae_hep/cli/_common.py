"""What every ``lgae-hep`` subcommand shares: option names, up-front checks, the error policy.

Naming scheme (one name per concept, across subcommands):

* ``-o/--output``: where results go (a folder; for ``generate``, the ROOT file);
* ``--model``: a trained model, a bundled name or a checkpoint path; ``--arch``: an
  architecture to build (``train``);
* ``--collection``: a jet collection name in ROOT files (``FatJet``); counts are
  ``--num-jets`` / ``--max-jets``; ``--num-particles``: particles per jet;
* ``--quiet``: no progress bars; ``--device``: a torch device; ``--metric``: a score metric;
* ``--overwrite``: allow writing into an existing, non-empty output folder.

Error policy (:func:`run_command`): a user error (bad value, unknown model, missing file, an
output folder that exists, a device this machine does not have) prints one line
``lgae-hep CMD: error: ...`` to stderr and exits with 2, like argparse's own errors; Ctrl-C
prints ``interrupted`` and exits with 130; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "PUPPI_CHOICES",
    "UserError",
    "add_collection",
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
    "run_command",
]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UserError(ValueError):
    """A mistake in the command line or its inputs: reported in one line, exit code 2."""


#: exceptions that are the user's to fix, not bugs
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError,
                                                NotADirectoryError, IsADirectoryError,
                                                PermissionError)


def run_command(name: str, main: Callable[[argparse.Namespace], int | None],
                args: argparse.Namespace) -> int:
    """Call a subcommand's ``main`` under the error policy of this module."""
    try:
        return int(main(args) or 0)
    except KeyboardInterrupt:
        print(f"lgae-hep {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as err:
        msg = " ".join(str(err).split()) or type(err).__name__
        print(f"lgae-hep {name}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE


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
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_device(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument("--device", default=default,
                        help="torch device: cpu, cuda, cuda:1, ... (default: cpu; auto for "
                             "training)")


def add_metric(parser: argparse.ArgumentParser) -> None:
    from lgae_hep.zoo import ANOMALY_METRICS  # lazy: torch stays out of `lgae-hep --help`

    parser.add_argument("--metric", choices=tuple(ANOMALY_METRICS), default=None,
                        help="anomaly-score metric (default: the one the model's card "
                             "recommends, chamfer for models without a card)")


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
    """A device torch does not know, or one this machine does not have."""
    if device in (None, "auto"):
        return
    import torch  # lazy: keeps torch out of `lgae-hep --help`

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UserError(f"--device {device!r} is not a torch device ({err})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {device!r}: this torch build or machine has no CUDA GPU")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {device!r}: only {torch.cuda.device_count()} GPU(s)")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError(f"--device {device!r}: MPS is not available here")
    elif dev.type != "cpu":
        raise UserError(f"--device {device!r}: lgae-hep runs on cpu, cuda or mps")


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
