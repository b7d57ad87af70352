"""Throughput and memory of the LGAE and GNNAE models.

For every configuration (LGAE-Mix tau_v=2, LGAE-Min-Max tau_v=4, GNNAE-JL, GNNAE-PL) x dtype
(float32, float64) x batch size (256, 1024) a fresh subprocess measures

* forward throughput without gradients (jets/s, under ``torch.inference_mode``),
* training-step throughput: forward + Chamfer (in the model's scaled units) + backward + Adam,
* the parameter count and the subprocess's peak RSS (``resource.getrusage(...).ru_maxrss``).

Throughput is reported from wall time and from the process's CPU time
(``time.process_time``), each the best of ``--reps`` timed calls after one warm-up call. On a
shared, oversubscribed machine wall time measures the machine's load more than the model; CPU
time per jet divided by the thread count is the better comparison (with 2 threads it also counts
OpenMP spin-waiting). The load average is printed with the table; compare A/B numbers only from
the same run.

Usage::

    python benchmarks/throughput.py                 # full table, 2 threads, CPU
    python benchmarks/throughput.py --quick         # float32, batch 256 and 1024, fewer repeats
    python benchmarks/throughput.py --threads 1     # intra-op threads
    python benchmarks/throughput.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

MODELS = {
    "LGAE-Mix (tau_v=2)": {"architecture": "lgae", "aggregation": "mix", "tau_v": 2},
    "LGAE-Min-Max (tau_v=4)": {"architecture": "lgae", "aggregation": "min&max", "tau_v": 4},
    "GNNAE-JL": {"architecture": "gnnae", "encoding": "jet"},
    "GNNAE-PL": {"architecture": "gnnae", "encoding": "particle"},
}


def _jets(b: int, n: int, dtype, device):
    import torch

    g = torch.Generator().manual_seed(0)
    pt = torch.rand(b, n, generator=g) * 200 + 1
    eta = torch.randn(b, n, generator=g) * 0.3
    phi = torch.randn(b, n, generator=g) * 0.3
    p4 = torch.stack([pt * torch.cosh(eta), pt * torch.cos(phi), pt * torch.sin(phi),
                      pt * torch.sinh(eta)], -1)
    counts = torch.randint(10, n + 1, (b,), generator=g)
    mask = torch.arange(n)[None] < counts[:, None]
    return (p4 * mask[..., None]).to(dtype=dtype, device=device), mask.to(device)


def worker(spec: dict) -> dict:
    """Measure one configuration in this process."""
    import torch
    from lgae_hep.models import build_model

    from lgae_hep.losses import chamfer

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    device = torch.device(spec["device"])
    cfg = dict(spec["config"], dtype=spec["dtype"])
    model = build_model(cfg).to(device)
    dtype = torch.float32 if spec["dtype"] == "float32" else torch.float64
    p4, mask = _jets(spec["batch"], 30, dtype, device)
    scale = getattr(model, "p4_scale", 0.01)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed(fn, reps):
        """Best (wall, CPU) seconds of ``reps`` calls after one warm-up call."""
        fn()
        sync()
        walls, cpus = [], []
        for _ in range(reps):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            sync()
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        return min(walls), min(cpus)

    model.eval()
    with torch.inference_mode():
        t_inf = timed(lambda: model(p4, mask), spec["reps"])
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        out = model(p4, mask)
        loss = chamfer(out.p4, p4, out.mask, mask, scale=scale).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t_train = timed(step, max(2, spec["reps"] // 2))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB
    return {
        "infer": spec["batch"] / t_inf[0],
        "train": spec["batch"] / t_train[0],
        "infer_cpu": spec["batch"] / t_inf[1],
        "train_cpu": spec["batch"] / t_train[1],
        "params": sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters()),
        "rss_gb": rss,
        "gpu_gb": (torch.cuda.max_memory_allocated() / 1024**3) if device.type == "cuda" else None,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="float32 only, fewer repeats")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--models", nargs="*", default=list(MODELS), help="subset of model names")
    ap.add_argument("--batches", nargs="+", type=int, default=[256, 1024],
                    help="batch sizes (default 256 1024; a GPU wants larger ones too)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    dtypes = ["float32"] if args.quick else ["float32", "float64"]
    reps = args.reps or (3 if args.quick else 4)
    load = os.getloadavg()
    print(f"device={args.device} threads={args.threads} N=30 reps={reps} "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs\n"
          "jets/s from the best wall time and (in brackets) from the best CPU time of the "
          "process; params in real numbers; RSS = peak of a fresh subprocess")
    head = (f"{'model':<24} {'dtype':<8} {'batch':>5} {'infer jets/s (cpu)':>20} "
            f"{'train jets/s (cpu)':>20} {'params':>8} {'peak RSS GB':>12}")
    print(head)
    print("-" * len(head))
    for name in args.models:
        for dt in dtypes:
            for b in args.batches:
                spec = {"config": MODELS[name], "dtype": dt, "batch": b, "reps": reps,
                        "threads": args.threads, "device": args.device}
                res = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                                     capture_output=True, text=True)
                if res.returncode != 0:
                    print(f"{name:<24} {dt:<8} {b:>5} FAILED: {res.stderr.strip()[-200:]}")
                    continue
                r = json.loads(res.stdout.strip().splitlines()[-1])
                mem = f"{r['rss_gb']:.2f}"
                if r["gpu_gb"] is not None:
                    mem += f" (GPU {r['gpu_gb']:.2f})"
                inf = f"{r['infer']:.0f} ({r['infer_cpu']:.0f})"
                tr = f"{r['train']:.0f} ({r['train_cpu']:.0f})"
                print(f"{name:<24} {dt:<8} {b:>5} {inf:>20} {tr:>20} "
                      f"{r['params']:>8} {mem:>12}", flush=True)
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
