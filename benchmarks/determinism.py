"""How much do the bundled models' scores move between code paths? (docs/RELIABILITY.md sec. 5)

Scores the same jets with each bundled model under several kernel configurations, each in a
fresh process (torch reads ``ATEN_CPU_CAPABILITY`` once): 2 threads (the API's default here),
1 thread (the coffea processor's default), both again with AVX2 kernels
(``ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2``, how another CPU looks to torch and
MKL) and with batch size 1, plus a float64 evaluation of the same weights as the reference.
Prints, per model, dtype and path: the largest absolute and relative difference from the
2-thread path and from float64, the jets that are bitwise equal, and the effective rounding
amplification (max relative error from float64 / unit roundoff) that lgae_hep.precision bounds
by 2**14.

Jets: the real CMS PFNano fixture (if present) plus Pythia jets (QCD, t, W, Z; needs the
``sim`` extra) or, without Pythia, seeded synthetic jet-like clouds.

    python benchmarks/determinism.py [--jets-per-class 150] [--models lgae-mix,lgae-minmax]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "pfnano.root"
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
#: label -> (threads, batch size, extra environment)
PATHS = {
    "2 threads (API)": (2, 256, {}),
    "1 thread (processor)": (1, 256, {}),
    "2 threads, AVX2": (2, 256, AVX2),
    "1 thread, AVX2": (1, 256, AVX2),
    "2 threads, batch 1": (2, 1, {}),
}

_WORKER = """
import json, sys, numpy as np, torch, awkward as ak
threads, batch, jets_path, out_path, models = sys.argv[1:6]
torch.set_num_threads(int(threads))
import lgae_hep
jets = ak.from_parquet(jets_path)
res = {"capability": torch.backends.cpu.get_cpu_capability()}
for name in models.split(","):
    for dtype in ("card", "float64"):
        m = lgae_hep.load_model(name, dtype=None if dtype == "card" else dtype)
        s = lgae_hep.score(jets, m, batch_size=int(batch), progress=False)
        res[f"{name}/{dtype}"] = ak.to_numpy(s).tolist()
        res[f"{name}/{dtype}/dtype"] = str(m.dtype).replace("torch.", "")
json.dump(res, open(out_path, "w"))
"""


def _jets(per_class: int):
    import awkward as ak
    import vector

    import lgae_hep

    vector.register_awkward()

    def clean(j):
        while j.ndim > 2:
            j = ak.flatten(j, axis=1)
        return ak.zip({k: ak.values_astype(j[k], np.float64) for k in ("pt", "eta", "phi",
                                                                        "mass")},
                      with_name="Momentum4D")

    parts, sources = [], []
    if FIXTURE.exists():
        parts.append(clean(lgae_hep.read_nanoaod(FIXTURE)))
        sources.append(f"{len(parts[-1])} real CMS jets")
    try:
        from lgae_hep.data.generate import generate

        for proc in ("qcd", "t", "w", "z"):
            parts.append(clean(generate(proc, per_class, seed=11, progress=False)))
        sources.append(f"{4 * per_class} Pythia jets (QCD, t, W, Z)")
    except ImportError:
        rng = np.random.default_rng(3)
        n = 4 * per_class
        counts = rng.integers(1, 80, n)
        tot = int(counts.sum())
        pt = rng.exponential(1.0, tot) * np.repeat(1000.0 / counts, counts) + 0.5
        parts.append(ak.unflatten(ak.zip(
            {"pt": pt, "eta": np.repeat(rng.uniform(-2, 2, n), counts) + rng.normal(0, .15, tot),
             "phi": rng.normal(0, 0.15, tot), "mass": np.full(tot, 0.14)},
            with_name="Momentum4D"), counts))
        sources.append(f"{n} synthetic jets (no Pythia installed)")
    return ak.concatenate(parts), ", ".join(sources)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jets-per-class", type=int, default=150)
    ap.add_argument("--models", default="lgae-mix,lgae-minmax")
    args = ap.parse_args(argv)
    import awkward as ak

    from lgae_hep.precision import SCORE_AMPLIFICATION, path_rtol, unit_roundoff

    jets, sources = _jets(args.jets_per_class)
    with tempfile.TemporaryDirectory() as tmp:
        jets_path = str(Path(tmp) / "jets.parquet")
        ak.to_parquet(jets, jets_path)
        runs = {}
        for label, (threads, batch, env) in PATHS.items():
            out = str(Path(tmp) / "out.json")
            full = {k: v for k, v in os.environ.items() if k not in AVX2}
            full.update(env)
            subprocess.run([sys.executable, "-c", _WORKER, str(threads), str(batch), jets_path,
                            out, args.models], check=True, env=full)
            runs[label] = json.load(open(out))
    ref_label = next(iter(PATHS))
    print(f"# {len(jets)} jets: {sources}; CPU capability "
          f"{runs[ref_label]['capability']} (AVX2 paths: {runs['2 threads, AVX2']['capability']})")
    print("| model | dtype | path | max abs diff vs 2 threads | max rel diff vs 2 threads | "
          "jets bitwise equal | beyond path bound | max rel err vs float64 | amplification / u |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        ref = np.asarray(runs[ref_label][f"{name}/card"])
        dtype = runs[ref_label][f"{name}/card/dtype"]
        u = unit_roundoff(dtype)
        for label, run in runs.items():
            s = np.asarray(run[f"{name}/card"])
            exact = np.asarray(run[f"{name}/float64"])
            ok = np.isfinite(ref) & (ref != 0)
            d = np.abs(s - ref)[ok]
            rel = d / np.abs(ref[ok])
            err = (np.abs(s - exact) / np.abs(exact))[ok]
            beyond = int((rel > path_rtol(dtype)).sum())
            print(f"| {name} | {dtype} | {label} | {d.max():.3g} | {rel.max():.3g} | "
                  f"{int((s == ref).sum())}/{len(s)} | {beyond} | {err.max():.3g} | "
                  f"{err.max() / u:.0f} |")
    print(f"\nBound (lgae_hep.precision): one path within {SCORE_AMPLIFICATION:.0f} u of exact; "
          f"two paths within path_rtol = {path_rtol('float32'):.3g} (float32), "
          f"{path_rtol('float64'):.3g} (float64).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
