"""``lgae-hep run`` / ``lgae-hep plot`` as a library: the names of :mod:`lgae_hep.workflow`.

The code lives in :mod:`lgae_hep.workflow` (fileset, execution, summary, plots; the output
folder is described there); this module keeps ``from lgae_hep.run import ...`` working.
"""

from __future__ import annotations

from lgae_hep.workflow import (
    CLASS_MODES,
    EXECUTORS,
    PLOT_STEMS,
    RUN_OUTPUTS,
    RunResult,
    check_files,
    clear_run_outputs,
    load_fileset,
    load_output,
    make_plots,
    merged_hists,
    plot_label,
    run_dask,
    run_fileset,
    save_output,
    split_classes,
    summarize,
    summary_markdown,
)

#: the former private name of :func:`lgae_hep.workflow.summary.split_classes`
_classes = split_classes

__all__ = [
    "CLASS_MODES",
    "EXECUTORS",
    "PLOT_STEMS",
    "RUN_OUTPUTS",
    "RunResult",
    "check_files",
    "clear_run_outputs",
    "load_fileset",
    "load_output",
    "make_plots",
    "merged_hists",
    "plot_label",
    "run_dask",
    "run_fileset",
    "save_output",
    "split_classes",
    "summarize",
    "summary_markdown",
]
