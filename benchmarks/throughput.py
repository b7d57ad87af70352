"""Throughput and memory of the LGAE network, this code against the code before the speed-up.

One table (issue 20): for the bundled ``lgae-mix`` (its config and weights, float32) at batch
256 / 1024 / 4096,

* ``inference``: forward without gradients (``torch.inference_mode``), jets/s;
* ``train step``: forward + Chamfer loss (in the model's loss units) + backward + Adam, jets/s;
* the peak RSS of the measuring subprocess;

each for this checkout (``new``) and for a pinned old commit (``old``, default 3a1d35c, the
main HEAD before the speed change), measured in the same run. The old code is imported from a
``git worktree`` of that commit (created on first use, default ``/tmp/lgae_old``) in a subprocess
whose ``lgae_hep`` / ``lgae_hep.models`` imports are pointed at it (``_use_checkout``): the
editable install maps ``lgae_hep.models`` to this checkout's ``models/``, so ``PYTHONPATH``
alone would mix the two.

Measuring on a shared machine: every (code, measurement, batch) runs in a fresh subprocess, old
and new interleaved, ``--rounds`` times; each subprocess reports the best of ``--reps`` timed
calls after a warm-up. Reported: jets/s from the best wall time and, in brackets, from the best
CPU time of the process divided by the thread count (``time.process_time`` counts all threads;
on an oversubscribed machine it is the steadier number, though cache and memory-bandwidth
contention still slow it). The load average is printed before and after.

More rows: add a function ``measure_<what>(model, spec) -> dict`` (keys ``wall``, ``cpu`` in
seconds per call and ``jets`` per call) and an entry in :data:`MEASUREMENTS`; it is run for both
codes and every batch like the others.

Usage::

    python benchmarks/throughput.py                  # the table, 2 threads, 2 rounds
    python benchmarks/throughput.py --rounds 1 --batches 1024   # quicker
    python benchmarks/throughput.py --device cuda --batches 1024 8192
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OLD_COMMIT = "3a1d35c"


def _use_checkout(root: str) -> None:
    """Import ``lgae_hep`` (and its ``models`` / ``processors`` subpackages, which live at the
    checkout's top level) from the checkout at ``root`` instead of the installed one."""

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            for pkg, sub in (("lgae_hep.models", "models"), ("lgae_hep.processors", "processors")):
                if name == pkg:
                    return importlib.util.spec_from_file_location(
                        name, os.path.join(root, sub, "__init__.py"),
                        submodule_search_locations=[os.path.join(root, sub)])
            return None

    sys.meta_path.insert(0, _Finder())
    sys.path.insert(0, root)


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


def _timed(fn, reps: int, sync) -> tuple[float, float]:
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


def measure_inference(model, spec: dict) -> dict:
    """Forward pass without gradients."""
    import torch

    p4, mask = _jets(spec["batch"], model.num_particles, model.dtype, spec["device"])
    model.eval()
    with torch.inference_mode():
        wall, cpu = _timed(lambda: model(p4, mask), spec["reps"], spec["sync"])
    return {"wall": wall, "cpu": cpu, "jets": spec["batch"]}


def measure_train_step(model, spec: dict) -> dict:
    """Forward + Chamfer loss + backward + Adam step."""
    import torch

    from lgae_hep.losses import chamfer

    p4, mask = _jets(spec["batch"], model.num_particles, model.dtype, spec["device"])
    for p in model.parameters():
        p.requires_grad_(True)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scale = getattr(model, "loss_p4_scale", 1e-3)

    def step():
        out = model(p4, mask)
        loss = chamfer(out.p4, p4, out.mask, mask, scale=scale).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    wall, cpu = _timed(step, max(2, spec["reps"] - 1), spec["sync"])
    return {"wall": wall, "cpu": cpu, "jets": spec["batch"]}


#: row name -> measurement function (run for both codes and every batch size)
MEASUREMENTS = {"inference": measure_inference, "train step": measure_train_step}


def worker(spec: dict) -> dict:
    """Measure one (code, measurement, batch) in this process."""
    if spec.get("root"):
        _use_checkout(spec["root"])
    import copy

    import torch

    import lgae_hep

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    device = torch.device(spec["device"])
    spec = dict(spec, device=device,
                sync=torch.cuda.synchronize if device.type == "cuda" else (lambda: None))
    model = copy.deepcopy(lgae_hep.load_model(spec["model"], dtype=spec["dtype"])).to(device)
    res = MEASUREMENTS[spec["what"]](model, spec)
    res["rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB
    if device.type == "cuda":
        res["gpu_gb"] = torch.cuda.max_memory_allocated() / 1024**3
    res["lgae_hep"] = lgae_hep.__file__
    return res


def _old_root(path: str) -> str:
    root = Path(path)
    if not (root / "lgae_hep").is_dir():
        print(f"creating a worktree of {OLD_COMMIT} at {root} "
              f"(git -C {REPO} worktree add --detach {root} {OLD_COMMIT})", flush=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(root),
                        OLD_COMMIT], check=True, capture_output=True)
    return str(root)


def _run(spec: dict) -> dict | None:
    cwd = spec["root"] or str(REPO)
    res = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker",
                          json.dumps(spec)], capture_output=True, text=True, cwd=cwd)
    if res.returncode != 0:
        print(f"  FAILED {spec['code']} {spec['what']} {spec['batch']}: "
              f"{res.stderr.strip()[-300:]}", flush=True)
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="lgae-mix")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batches", nargs="+", type=int, default=[256, 1024, 4096])
    ap.add_argument("--rows", nargs="+", default=list(MEASUREMENTS), choices=list(MEASUREMENTS))
    ap.add_argument("--rounds", type=int, default=2, help="interleaved old/new repetitions")
    ap.add_argument("--reps", type=int, default=3, help="timed calls per subprocess")
    ap.add_argument("--old", default="/tmp/lgae_old",
                    help=f"worktree of the old commit {OLD_COMMIT} (created if missing)")
    ap.add_argument("--no-old", action="store_true", help="measure this checkout only")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    codes = {"new": None} if args.no_old else {"new": None, "old": _old_root(args.old)}
    load = os.getloadavg()
    print(f"{args.model} {args.dtype}, device={args.device}, threads={args.threads}, "
          f"rounds={args.rounds}, reps={args.reps}; load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f} on {os.cpu_count()} CPUs; old = {OLD_COMMIT}", flush=True)
    best: dict = {}
    for rnd in range(args.rounds):
        for what in args.rows:
            for b in args.batches:
                for code, root in (codes.items() if rnd % 2 == 0 else
                                   reversed(list(codes.items()))):
                    spec = {"root": root, "code": code, "what": what, "batch": b,
                            "model": args.model, "dtype": args.dtype, "reps": args.reps,
                            "threads": args.threads, "device": args.device}
                    r = _run(spec)
                    if r is None:
                        continue
                    key = (what, b, code)
                    old = best.get(key)
                    best[key] = r if old is None else {
                        **old, "wall": min(old["wall"], r["wall"]),
                        "cpu": min(old["cpu"], r["cpu"]),
                        "rss_gb": max(old["rss_gb"], r["rss_gb"])}
    ncpu = args.threads if args.device == "cpu" else 1
    head = (f"{'row':<11} {'batch':>5} {'new jets/s (cpu)':>18} {'old jets/s (cpu)':>18} "
            f"{'speed-up (cpu)':>15} {'RSS new/old GB':>15}")
    print("\njets/s from the best wall time, (cpu): from the best CPU time / threads; "
          "RSS: peak of the measuring subprocess")
    print(head)
    print("-" * len(head))
    for what in args.rows:
        for b in args.batches:
            cells, rates, rss = [], {}, []
            for code in ("new", "old"):
                r = best.get((what, b, code))
                if r is None:
                    cells.append("-")
                    rss.append("-")
                    continue
                rates[code] = (r["jets"] / r["wall"], r["jets"] * ncpu / r["cpu"])
                cells.append(f"{rates[code][0]:.0f} ({rates[code][1]:.0f})")
                rss.append(f"{r['rss_gb']:.2f}")
            sp = "-"
            if len(rates) == 2:
                sp = (f"{rates['new'][0] / rates['old'][0]:.1f}x "
                      f"({rates['new'][1] / rates['old'][1]:.1f}x)")
            print(f"{what:<11} {b:>5} {cells[0]:>18} {cells[1]:>18} {sp:>15} "
                  f"{'/'.join(rss):>15}", flush=True)
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
