"""Input files of the readers: what a source names (paths, URLs, ``path:Tree``, dicts, lists)
and the one check that they can be read (:func:`check_input_files`).

Every reader of ROOT files (:func:`lgae_hep.data.read_nanoaod`, ``lgae-hep run``, compression)
checks its inputs here, before any work: the file exists and is a readable ROOT file, the tree
exists and is a TTree, the jet collection and its PF-candidate table are there (the layout), any
further required branches exist, and the files share one layout and hold events. Each problem
is one line naming the file and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .layout import NanoLayout, detect_layout
from .pfnano import METADATA_KEY, open_root

__all__ = ["InputFile", "check_input_file", "check_input_files", "is_path_like", "is_url",
           "normalise_sources"]


def is_path_like(source: Any) -> bool:
    return isinstance(source, str | Path)


def is_url(text: str) -> bool:
    """``scheme://...`` or ``file:...`` (what uproot hands to fsspec / XRootD / HTTP)."""
    head = text.split(":", 1)[0]
    return "://" in text or (head == "file" and ":" in text)


def _split_object(text: str) -> tuple[str, str | None]:
    """``"path_or_url:Tree"`` -> (path_or_url, "Tree" or None), as ``uproot.open`` splits it."""
    if is_url(text):
        try:
            from uproot._util import file_object_path_split  # uproot's own rule for URLs
        except ImportError:  # pragma: no cover - uproot moved it
            file_object_path_split = None
        if file_object_path_split is not None:
            path, obj = file_object_path_split(text)
            return path, obj or None
        scheme, rest = text.split("://", 1) if "://" in text else ("file", text[5:])
        if ":" in rest and "/" not in rest.rsplit(":", 1)[1]:
            path, obj = text.rsplit(":", 1)
            return path, obj or None
        return text, None
    if ":" in text and not Path(text).exists() and text.rsplit(":", 1)[1]:
        path, name = text.rsplit(":", 1)
        return path, name
    return text, None


def normalise_sources(source: Any, tree: str) -> list[tuple[str, str]]:
    """Everything ``uproot.open`` accepts -> a list of ``(path or URL, tree name)``.

    Accepted: a local path (``str`` or ``Path``), a URL (``file:``, ``root://``, ``https://``,
    ``s3://``, ... through uproot's fsspec/XRootD/HTTP sources), each optionally with
    ``":Tree"``; a dict ``{path_or_url: tree_name_or_None}``; or a list of any of these.
    """
    if is_path_like(source) or isinstance(source, Mapping):
        items: list[Any] = [source]
    elif (isinstance(source, Sequence) and source
          and all(is_path_like(s) or isinstance(s, Mapping) for s in source)):
        items = list(source)
    else:
        raise ValueError(
            "source must be a path or URL, a dict {path: tree}, a non-empty list of them, "
            f"coffea NanoEvents or an awkward array of events; got {type(source).__name__}"
        )
    out: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, Mapping):
            if not item:
                raise ValueError("empty dict of files: expected {path_or_url: tree_name}")
            for path, name in item.items():
                if not is_path_like(path) or not (name is None or isinstance(name, str)):
                    raise ValueError(f"dict sources map a path/URL to a tree name, got "
                                     f"{path!r}: {name!r}")
                out.append((str(path), name or tree))
            continue
        path, name = _split_object(str(item))
        out.append((path, name or tree))
    return out


@dataclass(frozen=True)
class InputFile:
    """A checked input file (:func:`check_input_file`).

    Attributes
    ----------
    path, tree : str
        The file (path or URL) and its tree.
    layout : NanoLayout
        Branch layout of the jet collection (:func:`lgae_hep.data.detect_layout`).
    num_entries : int
        Events in the tree.
    branches : frozenset of str
        Every branch name of the tree.
    has_metadata : bool
        The file holds the metadata of :func:`lgae_hep.data.write_pfnano` (e.g. ``lgae-hep
        generate`` output).
    """

    path: str
    tree: str
    layout: NanoLayout
    num_entries: int
    branches: frozenset[str]
    has_metadata: bool = False

    @property
    def simulated(self) -> bool:
        """Looks simulated: a ``genWeight`` or ``<jets>_label`` branch, or generator metadata."""
        return ("genWeight" in self.branches or f"{self.layout.jets}_label" in self.branches
                or self.has_metadata)


def check_input_file(
    path: str | Path,
    jets: str = "FatJet",
    *,
    tree: str = "Events",
    pf_fields: Sequence[str] | None = None,
    jet_fields: Sequence[str] | None = None,
    require: Sequence[str] = (),
    require_reason: str = "",
) -> InputFile:
    """Open one file and check it can be read as NanoAOD/PFNano; see :func:`check_input_files`.

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    ValueError
        Not a readable ROOT file, no such tree, not a TTree, no jet layout (the message names
        the missing branch and the expected layout), or a branch of ``require`` missing.
    """
    path = str(path)
    with open_root(path) as file:
        if tree not in file:
            trees = [k for k, c in file.classnames().items() if c == "TTree"]
            raise ValueError(f"{path} has no tree {tree!r}; trees in the file: {trees}")
        ttree = file[tree]
        if not hasattr(ttree, "keys") or not hasattr(ttree, "num_entries"):
            raise ValueError(f"{path}:{tree} is not a TTree ({type(ttree).__name__})")
        branches = frozenset(ttree.keys())
        layout = detect_layout(branches, jets, pf_fields=pf_fields, jet_fields=jet_fields,
                               where=f"tree {tree!r} of {path}")
        missing = [k for k in require if k not in branches]
        if missing:
            raise ValueError(f"{path}: branch(es) {missing} not found in tree {tree!r}"
                             + (f"; {require_reason}" if require_reason else ""))
        return InputFile(path, tree, layout, int(ttree.num_entries), branches,
                         METADATA_KEY in file)


def check_input_files(
    files: Any,
    jets: str = "FatJet",
    *,
    tree: str = "Events",
    pf_fields: Sequence[str] | None = None,
    jet_fields: Sequence[str] | None = None,
    require: Sequence[str] = (),
    require_reason: str = "",
    same_layout: bool = True,
    allow_empty: bool = False,
    errors: Literal["raise", "collect"] = "raise",
) -> tuple[list[InputFile], dict[str, str]]:
    """Check every input file before any work: the one file check of the readers.

    Parameters
    ----------
    files : source or sequence of (path, tree)
        Anything :func:`normalise_sources` accepts (a path or URL, ``"path:Tree"``, a dict
        ``{path: tree}``, a list of these), or ``(path, tree)`` pairs as it returns them.
    jets : str
        Jet collection whose layout must be present.
    tree : str
        Tree name where a source does not give one.
    pf_fields, jet_fields : sequence of str, optional
        As for :func:`lgae_hep.data.detect_layout` (explicit names must exist).
    require : sequence of str
        Further branches every file must have (e.g. the event keys ``run``,
        ``luminosityBlock``, ``event``); ``require_reason`` says why, in the error.
    same_layout : bool
        All files must share one layout (what one ``uproot.iterate`` over them needs).
    allow_empty : bool
        Accept files that hold 0 events in total.
    errors : {"raise", "collect"}
        ``"raise"``: raise the first problem. ``"collect"``: return every bad file with its
        reason (one line; any exception opening or reading the file counts) and go on (the
        layout and empty checks then do not apply).

    Returns
    -------
    (list of InputFile, dict)
        The good files in order, and ``{path: reason}`` of the bad ones (empty with
        ``errors="raise"``).

    Raises
    ------
    FileNotFoundError, ValueError
        With ``errors="raise"``: the first problem, naming the file and the fix; also for no
        files, different layouts (``same_layout``) or no events (unless ``allow_empty``).
    """
    if errors not in ("raise", "collect"):
        raise ValueError(f"errors must be 'raise' or 'collect', got {errors!r}")
    if (isinstance(files, Sequence) and not isinstance(files, str) and files
            and all(isinstance(f, tuple) and len(f) == 2 for f in files)):
        pairs = [(str(p), t or tree) for p, t in files]
    elif isinstance(files, Sequence) and not isinstance(files, str) and not files:
        raise ValueError("no input files: pass at least one ROOT file")
    else:
        pairs = normalise_sources(files, tree)
    good: list[InputFile] = []
    bad: dict[str, str] = {}
    for path, name in pairs:
        try:
            checked = check_input_file(path, jets, tree=name, pf_fields=pf_fields,
                                       jet_fields=jet_fields, require=require,
                                       require_reason=require_reason)
        except Exception as err:  # noqa: BLE001 - "collect" reports every failure of a file
            if errors == "raise":
                raise
            text = str(err).splitlines()[0] if str(err) else ""
            if not isinstance(err, OSError | ValueError):  # e.g. uproot DeserializationError
                text = f"{type(err).__name__}: {text}"
            bad[path] = text or type(err).__name__
            continue
        if errors == "raise" and same_layout and good and checked.layout != good[0].layout:
            first = good[0].layout
            raise ValueError(
                f"{path} has a different layout ({checked.layout.flavour}, fields "
                f"{checked.layout.cand_fields}) than the first file ({first.flavour}, "
                f"{first.cand_fields}); pass pf_fields/jet_fields explicitly"
            )
        good.append(checked)
    if errors == "raise" and not allow_empty and sum(f.num_entries for f in good) == 0:
        names = ", ".join(f"{p}:{t}" for p, t in pairs)
        raise ValueError(f"empty tree: {names} has 0 events")
    return good, bad
