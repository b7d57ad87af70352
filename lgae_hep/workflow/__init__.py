"""The workflow of ``lgae-hep run`` and ``lgae-hep plot``: the LGAE coffea processor over a
fileset, its summary and its plots.

::

    lgae-hep run --fileset fileset.json --model lgae-mix --executor futures --workers 2 -o out/
    lgae-hep plot out/

``run`` checks every file first (opens it, finds the tree and the jet collection's PF-candidate
table); unreadable files are reported and skipped with ``--skipbadfiles``, and name the file in
the error without it. It then runs :class:`lgae_hep.processors.LGAEProcessor` through coffea's
``processor.Runner`` with the iterative, futures (local processes) or dask executor (a local
``dask.distributed`` cluster, or ``--scheduler`` to use an existing one: the scale-out path),
saves the accumulated output and draws the plots.

Modules: :mod:`~lgae_hep.workflow.fileset` (reading and checking filesets),
:mod:`~lgae_hep.workflow.execution` (:func:`run_fileset`, :func:`run_dask`, :class:`RunResult`),
:mod:`~lgae_hep.workflow.summary` (:func:`summarize`, the output folder) and
:mod:`~lgae_hep.workflow.plots`. ``lgae_hep.run`` re-exports the same names.

Output folder
-------------
``output.coffea``
    The accumulated output (``coffea.util.save``: cloudpickle + LZ4) and ``hists``, every
    histogram with all datasets on one ``process`` axis (:func:`merged_hists`). It is read back
    with ``coffea.util.load``, i.e. unpickled: only load output folders you wrote yourself.
``summary.json``
    Cutflow per dataset (sorted), skipped files with reasons, AUCs, timing and the run
    settings: model, model file and its SHA-256, score metric, lgae-hep version, selection,
    PUPPI, training domain.
``skim/`` (``--skim``)
    ``<dataset>/<file stem>_<path hash>_<first>-<last>.<root|parquet>``: unique per input file
    and chunk, with ``<jets>_lgaeIdx`` to join back (see :class:`LGAEProcessor`).
``summary.md``
    The same as a Markdown table (AUC per signal).
``plots/``
    ``score.png``, ``roc.png`` (when truth labels or a background dataset are available),
    ``latent_invariants.png``, ``mass_sculpting.png``: CMS style; the label follows
    :func:`plot_label` (no CMS logo on generator-level files of ``lgae-hep generate``, "CMS
    Simulation Private work" for CMS simulation, "CMS Private work" for data; ``--cms-label``,
    ``--energy``, ``--lumi`` override).

``--overwrite`` removes what an earlier run wrote (:data:`RUN_OUTPUTS`) before running, so an
output folder never mixes two runs. The summary is computed once: :func:`save_output` returns
it and :func:`make_plots` takes it (``summary=``).
"""

from __future__ import annotations

from .execution import EXECUTORS, RunResult, merged_hist, merged_hists, run_dask, run_fileset
from .fileset import check_files, dask_fileset, generator_level, load_fileset
from .plots import PLOT_STEMS, latent_invariant_columns, make_plots, plot_label
from .summary import (
    CLASS_MODES,
    RUN_OUTPUTS,
    clear_run_outputs,
    load_output,
    save_output,
    split_classes,
    summarize,
    summary_markdown,
)

__all__ = [
    "CLASS_MODES",
    "EXECUTORS",
    "PLOT_STEMS",
    "RUN_OUTPUTS",
    "RunResult",
    "check_files",
    "clear_run_outputs",
    "dask_fileset",
    "generator_level",
    "latent_invariant_columns",
    "load_fileset",
    "load_output",
    "make_plots",
    "merged_hist",
    "merged_hists",
    "plot_label",
    "run_dask",
    "run_fileset",
    "save_output",
    "split_classes",
    "summarize",
    "summary_markdown",
]
