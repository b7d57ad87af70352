"""``lgae-hep demo``: generate jets, score them with the coffea processor, plot, summarise.

::

    lgae-hep demo                 # ~2 x 4 x 400 jets, a few minutes on 2 cores
    lgae-hep demo --small -o out  # CI size

Steps:

1. Generate seeded QCD, t, W and Z jet samples with Pythia 8 + FastJet
   (:func:`lgae_hep.data.generate.generate`, **fast mode**: MPI off, so less underlying event
   than the JetNet recipe) into PFNano-layout ROOT files, or reuse them from the cache
   ``$LGAE_HEP_CACHE/demo/<hash of the settings>`` (default ``~/.cache/lgae-hep``).
2. Write ``fileset.json`` and run :class:`lgae_hep.processors.LGAEProcessor` with the bundled
   ``lgae-mix`` model through coffea's ``Runner`` (``FuturesExecutor``, 2 workers).
3. Write the CMS-style plots (score per class, ROC, latent invariants, QCD mass sculpting), the
   saved output and ``summary.md`` (AUC per signal) into the output folder, and print it.

If the bundled model is not installed, the demo says so and falls back to a randomly
initialised (seeded) LGAE, so that the pipeline still runs end to end; its AUCs are then
meaningless and the summary says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from lgae_hep import __version__
from lgae_hep.api import DEFAULT_MODEL, bundled_models
from lgae_hep.checkpoint import save_checkpoint
from lgae_hep.data.generate import generate
from lgae_hep.models import LGAE
from lgae_hep.processors import LGAEProcessor
from lgae_hep.workflow import make_plots, run_fileset, save_output

__all__ = ["DEFAULT_JETS", "DEMO_PROCESSES", "SMALL_JETS", "demo", "demo_samples"]

#: dataset name -> generator process
DEMO_PROCESSES: dict[str, str] = {"QCD": "qcd", "Top": "t", "W": "w", "Z": "z"}
DEFAULT_JETS = 400
SMALL_JETS = 25
SEED = 2022


def _cache_root() -> Path:
    env = os.environ.get("LGAE_HEP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lgae-hep"


def demo_samples(jets_per_class: int, *, seed: int = SEED, cache_dir: str | Path | None = None,
                 workers: int = 2, progress: bool = True) -> dict[str, list[str]]:
    """Generate (or reuse) one PFNano file per demo class; returns the fileset.

    The cache key hashes the generator settings and the lgae-hep version, so changing any of
    them regenerates; files are written to a temporary name and renamed when complete.
    """

    if isinstance(jets_per_class, bool) or not isinstance(jets_per_class, int) \
            or jets_per_class < 1:
        raise ValueError(f"jets_per_class must be a positive integer, got {jets_per_class!r}")
    settings = {"jets": jets_per_class, "seed": seed, "fast": True, "workers": workers,
                "processes": DEMO_PROCESSES, "version": __version__}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir is not None else _cache_root() / "demo"
    folder = root / key
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    fileset: dict[str, list[str]] = {}
    for i, (name, process) in enumerate(DEMO_PROCESSES.items()):
        path = folder / f"{name.lower()}.root"
        if not path.is_file():
            tmp = folder / f".{name.lower()}.{os.getpid()}.tmp.root"
            generate(process, jets_per_class, seed=seed + i, workers=workers, output=tmp,
                     fast=True, progress=progress)
            os.replace(tmp, path)
        elif progress:
            print(f"reusing cached {path}")
        fileset[name] = [str(path)]
    return fileset


def _fallback_model(cache: Path) -> Path:


    path = cache / "untrained-lgae-seed0.pt"
    if not path.is_file():
        torch.manual_seed(0)
        save_checkpoint(path, LGAE())
    return path


def demo(outdir: str | Path | None = None, *, jets_per_class: int = DEFAULT_JETS,
         model: str | None = None, cache_dir: str | Path | None = None, workers: int = 2,
         executor: str = "futures", progress: bool = True) -> dict[str, Any]:
    """Run the demo; returns the summary (see :func:`lgae_hep.workflow.summary.summarize`).

    Parameters
    ----------
    outdir : path, optional
        Output folder (default ``./lgae-demo``).
    jets_per_class : int
        Jets generated per class (QCD, t, W, Z).
    model : str, optional
        Model name or checkpoint; default the bundled ``lgae-mix`` (with a seeded untrained
        fallback when it is not installed).
    cache_dir : path, optional
        Where generated samples are cached.
    workers : int
        Generator and ``FuturesExecutor`` worker processes.
    """

    start = time.perf_counter()
    outdir = Path(outdir or "lgae-demo")
    outdir.mkdir(parents=True, exist_ok=True)
    fileset = demo_samples(jets_per_class, cache_dir=cache_dir, workers=workers,
                           progress=progress)
    (outdir / "fileset.json").write_text(json.dumps(fileset, indent=2))
    trained = True
    if model is None:
        if DEFAULT_MODEL in bundled_models():
            model = DEFAULT_MODEL
        else:
            cache = Path(cache_dir) if cache_dir is not None else _cache_root() / "demo"
            model = str(_fallback_model(cache))
            trained = False
            print(
                f"NOTE: the bundled model {DEFAULT_MODEL!r} is not installed (bundled: "
                f"{sorted(bundled_models()) or 'none'}); running the demo with a randomly "
                "initialised LGAE instead, so the pipeline runs but the AUCs are meaningless. "
                "Pass --model <checkpoint> to use a trained model.",
                file=sys.stderr,
            )
    proc = LGAEProcessor(model)
    result = run_fileset(fileset, proc, executor=executor, workers=workers, status=progress)
    summary = save_output(result, outdir)
    plots = make_plots(result, outdir, progress=progress, summary=summary)
    summary["model"] = model
    summary["metric"] = proc.metric
    summary["trained_model"] = trained
    summary["plots"] = [str(p) for p in plots]
    summary["total_s"] = time.perf_counter() - start
    text = (outdir / "summary.md").read_text()
    header = f"# lgae-hep demo\n\nmodel: `{model}`" + (
        "" if trained else " (untrained fallback: AUCs are meaningless)") + \
        f", anomaly score: `{proc.metric}` (lgae_hep.score metric)" + \
        f"\n\njets per class: {jets_per_class}, generator fast mode (MPI off), seed {SEED}\n\n"
    (outdir / "summary.md").write_text(header + text)
    return summary
