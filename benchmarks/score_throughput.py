"""Throughput and peak memory of ``lgae_hep.score``.

    python benchmarks/score_throughput.py                    # 100k jets, then 1M jets for RSS
    python benchmarks/score_throughput.py --jets 20000 --rss-jets 200000 --threads 1

Prints jets/s of ``score`` (float32) on toy jets (30-60 particles, kept: 30) and the peak
resident memory of a separate process scoring ``--rss-jets`` jets in one call. The model is the
bundled ``lgae-mix`` when installed, else an untrained LGAE with the default (paper) config:
the same cost. Targets (issue 6): >= 20,000 jets/s, < 2 GB peak RSS for 1,000,000 jets.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import awkward as ak
import numpy as np
import vector

vector.register_awkward()


def toy_jets(n_jets: int, seed: int = 0) -> ak.Array:
    rng = np.random.default_rng(seed)
    counts = rng.integers(30, 61, n_jets)
    tot = int(counts.sum())
    axis_eta = np.repeat(rng.uniform(-2, 2, n_jets), counts).astype(np.float32)
    axis_phi = np.repeat(rng.uniform(-3, 3, n_jets), counts).astype(np.float32)
    p = ak.zip({"pt": (rng.exponential(30, tot) + 0.5).astype(np.float32),
                "eta": axis_eta + rng.normal(0, .2, tot).astype(np.float32),
                "phi": axis_phi + rng.normal(0, .2, tot).astype(np.float32),
                "mass": np.zeros(tot, np.float32)}, with_name="Momentum4D")
    return ak.unflatten(p, counts)


def get_model(kind: str):
    import torch
    from lgae_hep.models import LGAE

    from lgae_hep.api import DEFAULT_MODEL, bundled_models, load_model

    if kind == "bundled" and DEFAULT_MODEL in bundled_models():
        return load_model(DEFAULT_MODEL), DEFAULT_MODEL
    torch.manual_seed(0)
    if kind == "tiny":
        return LGAE(encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4,
                    num_basis=2).eval(), "tiny LGAE (untrained)"
    return LGAE().eval(), "LGAE default config (untrained)"


def rss_child(n_jets: int, model_kind: str, threads: int | None) -> None:
    import torch

    import lgae_hep

    if threads:
        torch.set_num_threads(threads)
    jets = toy_jets(n_jets, seed=1)
    model, _ = get_model(model_kind)
    t = time.perf_counter()
    s = lgae_hep.score(jets, model, progress=False)
    dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # GB (Linux: kB)
    print(json.dumps({"n": len(s), "finite": bool(np.isfinite(ak.to_numpy(s)).all()),
                      "peak_rss_gb": peak, "seconds": dt}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=100_000)
    parser.add_argument("--rss-jets", type=int, default=1_000_000)
    parser.add_argument("--model", choices=("bundled", "default", "tiny"), default="bundled")
    parser.add_argument("--rss-model", choices=("bundled", "default", "tiny"), default=None,
                        help="model for the RSS run (default: --model)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--_child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child is not None:
        rss_child(args._child, args.rss_model or args.model, args.threads)
        return 0

    import torch

    import lgae_hep

    if args.threads:
        torch.set_num_threads(args.threads)
    model, name = get_model(args.model)
    jets = toy_jets(args.jets)
    lgae_hep.score(jets[:args.batch_size], model, batch_size=args.batch_size)  # warm-up
    t = time.perf_counter()
    s = lgae_hep.score(jets, model, batch_size=args.batch_size, progress=False)
    dt = time.perf_counter() - t
    print(f"model: {name}; torch threads: {torch.get_num_threads()}; batch {args.batch_size}")
    finite = bool(np.isfinite(ak.to_numpy(s)).all())
    print(f"| jets | seconds | jets/s | all finite |\n|---:|---:|---:|---|\n"
          f"| {len(s)} | {dt:.1f} | {len(s) / dt:.0f} | {finite} |")
    if args.rss_jets:
        cmd = [sys.executable, __file__, "--_child", str(args.rss_jets), "--model", args.model]
        if args.rss_model:
            cmd += ["--rss-model", args.rss_model]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"peak RSS scoring {r['n']} jets in one call "
              f"({args.rss_model or args.model} model): {r['peak_rss_gb']:.2f} GB "
              f"({r['seconds']:.0f} s, all finite: {r['finite']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
