"""``lgae-hep score FILE...``: per-jet anomaly scores of a few ROOT files, no fileset needed.

::

    lgae-hep score nano_1.root nano_2.root -o scores.parquet
    lgae-hep score root://cmsxrootd.fnal.gov//store/...root -o scores.csv --pt-min 300

Output: one row per scored (selected) jet, in file and entry order, with the columns

``file``
    Index of the input in the command line (0, 1, ...); the paths are in the file's
    metadata (parquet) / a ``lgae_hep_metadata`` string (ROOT) / the sidecar
    ``<output>.json`` (CSV).
``entry``
    The event's entry number in its file's tree (0-based).
``run``, ``luminosityBlock``, ``event``
    Event ids, when the tree has them.
``jet_idx``
    The jet's index in the event's original collection (``FatJet``): after any selection,
    ``events.FatJet[jet_idx]`` of event ``entry`` is the scored jet (the join-back key).
``pt``, ``eta``, ``phi``, ``mass`` (``msoftdrop``, ``label`` when present)
    The jet as stored in the file.
``n_constituents``, ``score``
    Constituents fed to the model (after truncation) and the anomaly score (NaN for invalid
    jets, 0 for jets without constituents), named after ``--metric``.
``latent_<name>`` (with ``--latent``)
    The latent columns (``s<i>_re/_im``: latent Lorentz scalars, ``v<i>_norm_re/_im``:
    Minkowski squares of the latent 4-vectors, ``v<i>_<E|px|py|pz>_re/_im``: their components).

The format follows the suffix of ``-o``: ``.parquet`` (default choice: typed, compressed, one
``pandas.read_parquet``/``ak.from_parquet`` away), ``.root`` (a flat TTree ``Jets``, one entry
per jet, written with ``mktree``) or ``.csv`` (a plain table: ``pandas.read_csv(path)``
reads it as it is; the metadata, model, metric, version, file list and selection, go to
``<path>.json`` beside it).

An empty selection (say ``--pt-min 1e6``) is a valid result: the output has every column and
no rows, and the command exits 0.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lgae_hep.cli._common import (
    DEFAULT_MODEL,
    PUPPI_CHOICES,
    UserError,
    add_batch_size,
    add_collection,
    add_device,
    add_metric,
    add_model,
    add_num_particles,
    add_puppi,
    add_quiet,
    check_device,
    check_output_file,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["FORMATS", "add_arguments", "main", "metadata_path", "score_files"]

FORMATS = (".parquet", ".root", ".csv")


def metadata_path(output: str | Path) -> Path:
    """Where the metadata of a ``.csv`` output goes: ``scores.csv`` -> ``scores.csv.json``."""
    out = Path(output)
    return out.with_name(out.name + ".json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="ROOT files or URLs (anything uproot.open reads; FILE:TREE "
                             "selects a tree)")
    parser.add_argument("-o", "--output", required=True,
                        help="output file: .parquet, .root (TTree 'Jets') or .csv")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output file")
    add_model(parser, DEFAULT_MODEL)
    add_collection(parser)
    parser.add_argument("--pt-min", type=float, default=None, help="jet pT > PT_MIN (GeV)")
    parser.add_argument("--eta-max", type=float, default=None, help="jet |eta| < ETA_MAX")
    add_num_particles(parser, None, "particles per jet (default: the model's own; another "
                                    "number is an error)")
    add_metric(parser)
    parser.add_argument("--latent", action="store_true", help="also write the latent columns")
    add_puppi(parser)
    add_batch_size(parser, 256)
    parser.add_argument("--tree", default="Events", help="tree name")
    parser.add_argument("--force", action="store_true",
                        help="score jets of another radius than the model was trained on "
                             "(e.g. --collection Jet, AK4, with an AK8 model); refused without")
    add_device(parser)
    add_quiet(parser)


def score_files(files: list[str], *, model: str, collection: str = "FatJet",
                pt_min: float | None = None, eta_max: float | None = None,
                metric: str | None = None, latent: bool = False, puppi: bool | None = None,
                batch_size: int = 256, device: str | None = None, tree: str = "Events",
                progress: bool = True, force: bool = False) -> dict[str, np.ndarray]:
    """Score the jets of ``files``; returns the output columns (see the module docstring).

    Each file is checked (:func:`lgae_hep.data.check_input_files`), then read once, chunk by
    chunk (``"100 MB"`` of jet branches, as :func:`lgae_hep.data.iter_nanoaod`), and every
    chunk goes through :meth:`lgae_hep.processors.LGAEProcessor.score_chunk`: the processor's
    selection, scorer and per-jet column builder, event ids included. A column that only some
    files have (e.g. ``label``) is NaN (float), -1 (signed) or the largest value (unsigned)
    for the jets of the others. ``force``: score a ``collection`` of another jet radius than
    the model card's (:func:`lgae_hep.domain.check_collection`, checked before reading).
    """
    import numpy as np
    import uproot
    from tqdm.auto import tqdm

    from lgae_hep.data import check_input_files
    from lgae_hep.data.files import normalise_sources
    from lgae_hep.domain import check_collection, training_domain, warn_outside_domain
    from lgae_hep.processors import LGAEProcessor
    from lgae_hep.processors.columns import EVENT_IDS
    from lgae_hep.zoo import load_model, model_num_particles

    domain = training_domain(model)
    check_collection(collection, domain, force=force, where="lgae-hep score")
    proc = LGAEProcessor(model, jets=collection, pt_min=pt_min, eta_max=eta_max,
                         max_particles=model_num_particles(load_model(model)),
                         batch_size=batch_size, device=device, torch_threads=None,
                         latent=latent, metric=metric, puppi=puppi, training_domain=None)
    parts: list[dict[str, np.ndarray]] = []
    for i, source in enumerate(tqdm(files, desc="files", unit="file", disable=not progress)):
        ((path, tname),) = normalise_sources(source, tree)
        (checked,), _ = check_input_files([(path, tname)], collection)
        names = proc.input_branches(checked.branches, path)
        with uproot.open({path: None}) as fh:
            t = fh[tname]
            # the chunking of iter_nanoaod: "100 MB" of the jet branches (not the event ids)
            step = t.num_entries_for("100 MB", [n for n in names if n not in EVENT_IDS])
            entry0 = 0
            for chunk in t.iterate(names, step_size=step, library="ak"):
                n_ev = len(chunk)
                if n_ev == 0:
                    continue
                res = proc.score_chunk({f: chunk[f] for f in chunk.fields}, path,
                                       kinematics_dtype=None, index_dtype=np.int32)
                cols, counts = res["columns"], res["n_per_event"]
                part = {"file": np.full(int(counts.sum()), i, np.int32),
                        "entry": np.repeat(np.arange(entry0, entry0 + n_ev, dtype=np.int64),
                                           counts)}
                part.update({k: v for k, v in cols.items() if k not in ("valid", "outside_domain")})
                parts.append(part)
                entry0 += n_ev
    if not parts:
        raise ValueError(f"no events in {files} (tree {tree!r}); check the files and --tree")
    out = _concatenate(parts)
    if domain is not None:
        warn_outside_domain(out["pt"], out["eta"], domain, where="lgae-hep score",
                            stacklevel=2)
    return out


#: The first output columns, in this order (the rest follow in the order of the first chunk).
LEADING = ("file", "entry", "run", "luminosityBlock", "event", "jet_idx", "pt", "eta", "phi",
           "mass", "msoftdrop", "label", "n_constituents", "score")


def _concatenate(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The chunks' columns end to end; a column some chunks lack is filled for them."""
    import numpy as np

    names: list[str] = []
    for p in parts:
        names += [n for n in p if n not in names]
    names = [n for n in LEADING if n in names] + [n for n in names if n not in LEADING]
    out = {}
    for n in names:
        dtype = np.result_type(*[p[n].dtype for p in parts if n in p])
        pieces = [p[n] if n in p else np.full(len(p["score"]), _missing(dtype), dtype)
                  for p in parts]
        out[n] = np.concatenate(pieces).astype(dtype, copy=False)
    return out


def _missing(dtype: np.dtype) -> Any:
    import numpy as np

    if np.issubdtype(dtype, np.floating):
        return np.nan
    if np.issubdtype(dtype, np.unsignedinteger):
        return np.iinfo(dtype).max
    if np.issubdtype(dtype, np.integer):
        return -1
    return False


def _write(columns: dict[str, np.ndarray], path: Path, files: list[str], meta: dict) -> None:
    """Write ``columns`` to ``path`` (format from the suffix; a CSV's metadata to
    :func:`metadata_path`) through temporary files, which a failure removes."""
    info = json.dumps({"files": files, **meta})
    tmp = path.with_name(f".{path.name}.tmp")
    suffix = path.suffix.lower()
    side = metadata_path(path) if suffix == ".csv" else None
    side_tmp = side.with_name(f".{side.name}.tmp") if side is not None else None
    try:
        _write_format(columns, tmp, suffix, info)
        if side is not None and side_tmp is not None:
            side_tmp.write_text(json.dumps({"lgae_hep": json.loads(info)}, indent=2) + "\n")
            side_tmp.replace(side)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if side_tmp is not None:
            side_tmp.unlink(missing_ok=True)
        raise


def _write_format(columns: dict[str, np.ndarray], tmp: Path, suffix: str, info: str) -> None:
    import numpy as np

    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(columns).replace_schema_metadata({"lgae_hep": info})
        pq.write_table(table, tmp)
    elif suffix == ".root":
        import uproot

        with uproot.recreate(tmp) as f:
            f.mktree("Jets", {k: v.dtype for k, v in columns.items()})
            f["Jets"].extend(columns)
            f["lgae_hep_metadata"] = info
    else:
        with open(tmp, "w") as f:  # plain CSV: the metadata is in the sidecar JSON
            f.write(",".join(columns) + "\n")
            data = np.column_stack([np.asarray(v, dtype=object) for v in columns.values()]) \
                if columns else np.zeros((0, 0))
            for row in data:
                f.write(",".join(repr(float(x)) if isinstance(x, float | np.floating)
                                 else str(x) for x in row) + "\n")


def main(args: argparse.Namespace) -> int:
    """Run ``lgae-hep score``."""
    import numpy as np

    from lgae_hep import __version__
    from lgae_hep.cli._common import check_model
    from lgae_hep.domain import OutsideTrainingDomainWarning, check_collection, training_domain
    from lgae_hep.zoo import load_model, model_num_particles, resolve_metric

    check_device(args.device)
    out = Path(args.output)
    if out.suffix.lower() not in FORMATS:
        raise UserError(f"-o {str(out)!r}: the suffix picks the format, one of {FORMATS}")
    if out.is_dir():
        raise UserError(f"output {str(out)!r} is a folder; -o names a file")
    check_output_file(out, args.overwrite)
    if out.suffix.lower() == ".csv":
        check_output_file(metadata_path(out), args.overwrite)
    check_model(args.model)
    with warnings.catch_warnings():  # here only the refusal; score_files warns
        warnings.simplefilter("ignore", OutsideTrainingDomainWarning)
        check_collection(args.collection, training_domain(args.model), force=args.force,
                         where="lgae-hep score")
    n_model = model_num_particles(load_model(args.model))
    if args.num_particles is not None and args.num_particles != n_model:
        raise UserError(f"--num-particles {args.num_particles}: model {args.model!r} takes "
                        f"{n_model} particles per jet")
    metric = resolve_metric(args.metric, args.model)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Missing cross-reference")
        cols = score_files(args.files, model=args.model, collection=args.collection,
                           pt_min=args.pt_min, eta_max=args.eta_max, metric=metric,
                           latent=args.latent,
                           puppi=PUPPI_CHOICES[args.puppi],
                           batch_size=args.batch_size, device=args.device, tree=args.tree,
                           progress=not args.quiet, force=args.force)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(cols, out, [str(f) for f in args.files],
           {"model": args.model, "metric": metric, "lgae_hep_version": __version__,
            "collection": args.collection, "pt_min": args.pt_min, "eta_max": args.eta_max})
    n = len(cols["score"])
    print(f"{n} jets from {len(args.files)} file(s) scored with {args.model!r} "
          f"(metric {metric}); {int(np.isnan(cols['score']).sum())} invalid")
    print(f"output: {out.resolve()}"
          + (f" (metadata: {metadata_path(out).name})" if out.suffix.lower() == ".csv" else ""))
    return 0


