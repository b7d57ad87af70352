"""Does a jet get the same score whichever way it comes in? (docs/RELIABILITY.md section 5)

For every bundled model and its default score, scores the same jets along every path a user
can take and prints, per path, the largest change of a jet's score against the reference path
(``lgae_hep.score``, 2 torch threads, batch 256, the jets as read), in absolute terms and in
units of the score's inter-quartile range (IQR) on the QCD jets. The target of issue 19 is
``|delta| <= 1e-3 x IQR`` for every jet.

Paths
-----
* kernels: 1 and 2 torch threads, each also with AVX2 kernels
  (``ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2``, how another CPU looks to torch
  and MKL); every kernel configuration runs in a fresh process (torch reads it once);
* batch sizes 1, 7, 256 and 4096;
* input precision: the jets' (pt, eta, phi, mass) as float32 and as float64 arrays;
* entry points: ``LGAEProcessor`` with coffea's iterative and futures executors and the
  dask-awkward path (``lgae_hep.run.run_fileset``), and ``lgae-hep score`` (parquet output);
* the same weights evaluated in float64 (how far the model's precision is from exact).

Jets: the real CMS PFNano fixture (when present) and 2,000 generated QCD jets (Pythia 8, MPI
on, seed 11; cached under ``data/generated/determinism``; needs the ``sim`` extra).

    python benchmarks/determinism.py                  # prints the table
    python benchmarks/determinism.py --write-docs     # and replaces the table in RELIABILITY.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO.parent / "shared" / "fixtures" / "pfnano.root"
DATA = REPO / "data" / "generated" / "determinism"
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
#: kernel configuration label -> (threads, extra environment)
KERNELS = {"2 threads": (2, {}), "1 thread": (1, {}), "2 threads, AVX2": (2, AVX2),
           "1 thread, AVX2": (1, AVX2)}
BATCHES = (1, 7, 256, 4096)
REFERENCE = "2 threads, batch 256"
TARGET = 1e-3  # of the QCD IQR
DOC = REPO / "docs" / "RELIABILITY.md"
BEGIN, END = "<!-- determinism-table:begin -->", "<!-- determinism-table:end -->"

_WORKER = r"""
import json, sys, warnings, numpy as np, awkward as ak, torch
threads, files, models, out_path = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4]
torch.set_num_threads(int(threads))
warnings.simplefilter("ignore")
import lgae_hep
res = {"capability": torch.backends.cpu.get_cpu_capability()}
for f in files:
    jets = lgae_hep.read_nanoaod(f, flat=True)
    for name in models.split(","):
        m = lgae_hep.load_model(name)
        for b in (1, 7, 256, 4096):
            res[f"{f}|{name}|batch {b}"] = ak.to_numpy(
                lgae_hep.score(jets, m, batch_size=b, progress=False)).tolist()
        if threads == "2":
            for dt in ("float32", "float64"):
                j = ak.zip({k: ak.values_astype(jets[k], dt) for k in ("pt", "eta", "phi", "mass")},
                           with_name="Momentum4D")
                res[f"{f}|{name}|{dt} input"] = ak.to_numpy(
                    lgae_hep.score(j, m, progress=False)).tolist()
            m64 = lgae_hep.load_model(name, dtype="float64")
            res[f"{f}|{name}|float64 model"] = ak.to_numpy(
                lgae_hep.score(jets, m64, progress=False)).tolist()
        res[f"{name}|dtype"] = str(m.dtype).replace("torch.", "")
json.dump(res, open(out_path, "w"))
"""


def _files() -> list[Path]:
    out = [FIXTURE] if FIXTURE.exists() else []
    path = DATA / "qcd_n2000_s11.root"
    if not path.exists():
        from lgae_hep.data.generate import generate

        DATA.mkdir(parents=True, exist_ok=True)
        tmp = DATA / ".qcd_n2000_s11.tmp.root"
        generate("qcd", 2000, seed=11, output=tmp, progress=True)
        os.replace(tmp, path)
    out.append(path)
    return out


def _entry_points(files: list[Path], models: list[str], tmp: Path) -> dict[str, list[float]]:
    """Scores through the processor (three executors) and ``lgae-hep score``."""
    import awkward as ak
    from lgae_hep.processors import LGAEProcessor

    from lgae_hep.run import run_fileset

    res: dict[str, list[float]] = {}
    for name in models:
        for f in files:
            fileset = {"jets": [str(f)]}
            for ex in ("iterative", "futures", "dask-awkward"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = run_fileset(fileset, LGAEProcessor(name, latent=False), executor=ex,
                                      workers=2, status=False)
                res[f"{f}|{name}|processor, {ex}"] = list(
                    out.output["jets"]["columns"]["score"].value)
            o = tmp / f"{name}_{f.stem}.parquet"
            subprocess.run(["lgae-hep", "score", str(f), "-o", str(o), "--model", name,
                            "--quiet", "--overwrite"], check=True, capture_output=True)
            res[f"{f}|{name}|lgae-hep score"] = ak.to_numpy(ak.from_parquet(o)["score"]).tolist()
    return res


def measure(models: list[str]) -> dict:
    files = _files()
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.json")
        for label, (threads, env) in KERNELS.items():
            full = {k: v for k, v in os.environ.items() if k not in AVX2}
            full.update(env)
            subprocess.run([sys.executable, "-c", _WORKER, str(threads),
                            ",".join(map(str, files)), ",".join(models), out],
                           check=True, env=full)
            runs[label] = json.load(open(out))
        entry = _entry_points(files, models, Path(tmp))
    table = []
    for name in models:
        for f in files:
            ref = np.asarray(runs["2 threads"][f"{f}|{name}|batch 256"], dtype=float)
            qcd = np.asarray(runs["2 threads"][f"{files[-1]}|{name}|batch 256"], dtype=float)
            iqr = float(np.subtract(*np.nanpercentile(qcd, [75, 25])))
            paths: dict[str, np.ndarray] = {}
            for label, run in runs.items():
                for key, v in run.items():
                    if key.startswith(f"{f}|{name}|"):
                        paths[f"{label}, {key.split('|')[2]}"] = np.asarray(v, dtype=float)
            for key, v in entry.items():
                if key.startswith(f"{f}|{name}|"):
                    paths[key.split("|")[2]] = np.asarray(v, dtype=float)
            for label, s in paths.items():
                if label == REFERENCE:
                    continue
                if s.shape != ref.shape or not np.array_equal(np.isnan(s), np.isnan(ref)):
                    raise RuntimeError(f"{name} {f.name} {label}: other jets or NaNs than the "
                                       "reference path")
                d = np.abs(s - ref)[np.isfinite(ref)]
                table.append({"model": name, "dtype": runs["2 threads"][f"{name}|dtype"],
                              "jets": f"{f.name} ({len(ref)})", "path": label,
                              "max_abs": float(d.max()), "iqr": iqr,
                              "max_over_iqr": float(d.max() / iqr),
                              "beyond": int((d > TARGET * iqr).sum()),
                              "bitwise": int((s == ref).sum())})
    return {"capability": runs["2 threads"]["capability"],
            "avx2": runs["2 threads, AVX2"]["capability"], "rows": table}


def markdown(result: dict) -> str:
    lines = [f"Reference path: `lgae_hep.score`, {REFERENCE}; CPU capability "
             f"{result['capability']} (AVX2 paths: {result['avx2']}). Target: every jet within "
             f"{TARGET:g} x the score's QCD IQR.", "",
             "| model (dtype) | jets | path | max abs. change | / QCD IQR | jets beyond target "
             "| bitwise equal |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['model']} ({r['dtype']}) | {r['jets']} | {r['path']} | "
                     f"{r['max_abs']:.2g} | {r['max_over_iqr']:.1e} | {r['beyond']} | "
                     f"{r['bitwise']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="lgae-mix,lgae-minmax")
    ap.add_argument("--write-docs", action="store_true",
                    help=f"replace the table between the markers in {DOC.relative_to(REPO)}")
    args = ap.parse_args(argv)
    result = measure(args.models.split(","))
    text = markdown(result)
    print(text)
    worst = max(r["max_over_iqr"] for r in result["rows"])
    print(f"\nworst path: {worst:.2e} x IQR (target {TARGET:g}): "
          f"{'met' if worst <= TARGET else 'MISSED'}")
    if args.write_docs:
        doc = DOC.read_text()
        a, b = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        DOC.write_text(doc[:a] + "\n" + text + "\n" + doc[b:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
