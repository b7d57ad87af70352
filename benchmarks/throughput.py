"""Throughput and memory of the LGAE network, this code against the code before the speed-up.

One table (issue 20): for the bundled ``lgae-mix`` (its config and weights, float32) at batch
256 / 1024 / 4096,

* ``inference``: forward without gradients (``torch.inference_mode``), jets/s;
* ``train step``: forward + Chamfer loss (in the model's loss units) + backward + Adam, jets/s;
* ``fit``: one whole :func:`lgae_hep.train.fit` call on the bundled recipe (the ``training``
  section of ``models/pretrained/lgae-mix.json``: loss ``chamfer-dr``, its gradient clipping,
  scheduler, 5,000-jet epochs, 10,000 validation jets) at the new fit defaults batch 64 /
  lr 3e-3 (``--fit-batches``, ``--fit-lr``), ``--fit-epochs`` epochs on synthetic jets, jets/s
  = trained jets / the call's time; measured by ``benchmarks/fit_loop.py``'s
  :func:`measure_fit`, and in the same subprocess its :func:`measure_train_step` at the same
  batch and loss, so that ``fit / step`` is the loop's overhead (issue target >= 70 %);
* ``score``: :func:`lgae_hep.score` (the card's default score, the model's own engine: for the
  new code each jet in its rest frame) on ``--score-jets`` awkward jets (default 100,000, from
  ``benchmarks/score_throughput.py``'s ``toy_jets``, built once before the clock starts) at
  ``batch_size`` = the row's batch; ``score / inference`` at the same batch is printed below
  the table (issue target >= 80 %);
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

``--profile-score N`` (this checkout only) then runs ``lgae_hep.score`` on N jets under
cProfile and prints the shares of the rest-frame boost (``rest_frame_boosts``, ``apply_boosts``,
``to_lab``), the model forward, ``to_tensors`` and the latent density, and the score rate with
the rest-frame evaluation switched off (lab frame) beside it.

More rows: add a function ``measure_<what>(model, spec) -> dict`` (keys ``wall``, ``cpu`` in
seconds per call and ``jets`` per call) and an entry in :data:`MEASUREMENTS`; it is run for both
codes and every batch like the others.

Usage::

    python benchmarks/throughput.py                  # the table, 2 threads, 2 rounds
    python benchmarks/throughput.py --rounds 1 --batches 1024   # quicker
    python benchmarks/throughput.py --device cuda --batches 1024 8192 --fit-batches 8192
    python benchmarks/throughput.py --rows score --no-old --profile-score 20000
    python benchmarks/throughput.py --rows inference "compiled inference" --no-old --batches 1024

``compiled inference`` (not in the default rows: its first call compiles for minutes on 2
cores) is ``torch.compile`` of the same model; its compile time is printed beside the table.
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


def measure_compiled_inference(model, spec: dict) -> dict:
    """``torch.compile(model, dynamic=False)`` forward without gradients (issue 20 asked
    whether compilation now wins). The compile time of the first call is returned as
    ``compile_s`` and is not in the rate; the outputs are checked against the eager forward
    (relative difference reported as ``max_rel_diff``). Needs a C++ compiler (inductor)."""
    import torch

    p4, mask = _jets(spec["batch"], model.num_particles, model.dtype, spec["device"])
    model.eval()
    compiled = torch.compile(model, dynamic=False)
    with torch.inference_mode():
        ref = model(p4, mask).p4
        t0 = time.perf_counter()
        out = compiled(p4, mask).p4
        spec["sync"]()
        compile_s = time.perf_counter() - t0
        wall, cpu = _timed(lambda: compiled(p4, mask), spec["reps"], spec["sync"])
    scale = ref.abs().amax().clamp_min(1e-30)
    return {"wall": wall, "cpu": cpu, "jets": spec["batch"], "compile_s": compile_s,
            "max_rel_diff": float(((out - ref).abs().amax() / scale).item())}


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


def _bench_module(name: str):
    """A sibling script of this one (``benchmarks/<name>.py``) imported as a module."""
    mod = sys.modules.get(f"_bench_{name}")
    if mod is None:
        spec = importlib.util.spec_from_file_location(
            f"_bench_{name}", Path(__file__).resolve().parent / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
    return mod


def measure_fit(model, spec: dict) -> dict:
    """One ``lgae_hep.train.fit`` call on the bundled recipe, and the raw training step at the
    same batch / loss / lr in the same process (``benchmarks/fit_loop.py``). ``model`` is not
    used: ``fit`` builds its own from the recipe's config."""
    fl = _bench_module("fit_loop")
    dev, b, lr = str(spec["device"]), spec["batch"], spec["fit_lr"]
    step = fl.measure_train_step(batch_size=b, lr=lr, steps=spec["fit_steps"], device=dev)
    fit = fl.measure_fit(epochs=spec["fit_epochs"], device=dev, batch_size=b, lr=lr)
    return {"wall": fit["seconds"], "cpu": fit["cpu_seconds"], "jets": fit["jets"],
            "step_rate": (step["jets_per_s"], step["cpu_jets_per_s"]),
            "epoch_rate": fit["epoch_jets_per_s"], "epochs": fit["epochs"]}


def measure_score(model, spec: dict) -> dict:
    """``lgae_hep.score`` of ``spec["score_jets"]`` awkward jets (built before the clock) at
    ``batch_size`` = the row's batch; one timed call after a one-batch warm-up."""
    import lgae_hep

    jets = _bench_module("score_throughput").toy_jets(spec["score_jets"])
    model.eval()
    b = spec["batch"]
    lgae_hep.score(jets[:b], model, batch_size=b, progress=False)
    spec["sync"]()
    t0, c0 = time.perf_counter(), time.process_time()
    s = lgae_hep.score(jets, model, batch_size=b, progress=False)
    spec["sync"]()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert len(s) == len(jets)
    return {"wall": wall, "cpu": cpu, "jets": len(jets)}


#: row name -> measurement function (run for both codes and every batch size)
MEASUREMENTS = {"inference": measure_inference, "train step": measure_train_step,
                "fit": measure_fit, "score": measure_score,
                "compiled inference": measure_compiled_inference}

#: rows only run when named in ``--rows`` (minutes of compilation per subprocess)
OPT_IN = ("compiled inference",)

#: rows whose batch sizes come from another option than ``--batches``
ROW_BATCHES = {"fit": "fit_batches"}


def profile_score(spec: dict) -> dict:
    """cProfile of ``lgae_hep.score`` (this checkout): shares of its wall time."""
    import cProfile
    import inspect
    import pstats

    import torch

    import lgae_hep
    from lgae_hep.data import to_tensors
    from lgae_hep.scoring import frames

    torch.set_num_threads(spec["threads"])
    model = lgae_hep.load_model(spec["model"], dtype=spec["dtype"]).eval()
    jets = _bench_module("score_throughput").toy_jets(spec["score_jets"])
    b = spec["batch"]
    lgae_hep.score(jets[:b], model, batch_size=b, progress=False)
    pr = cProfile.Profile()
    t0 = time.perf_counter()
    pr.enable()
    lgae_hep.score(jets, model, batch_size=b, progress=False)
    pr.disable()
    total_prof = time.perf_counter() - t0
    st = pstats.Stats(pr).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)

    def key(fn):
        fn = inspect.unwrap(fn)
        return (inspect.getsourcefile(fn), fn.__code__.co_firstlineno, fn.__name__)

    def cum(fn, caller=None):
        e = st.get(key(fn))
        if e is None:
            return 0.0
        if caller is None:
            return e[3]
        return sum(v[3] for c, v in e[4].items() if c[2] == caller)

    fwd = type(model).forward
    density = next((v[3] for k, v in st.items() if k[2] == "score"
                    and k[0].endswith(os.path.join("lgae_hep", "density.py"))), 0.0)
    root = next((v[3] for k, v in st.items() if k[2] == "score"
                 and k[0].endswith(os.path.join("lgae_hep", "api.py"))), total_prof)
    parts = {
        "rest_frame_boosts": cum(frames.rest_frame_boosts),
        "apply_boosts (to rest, in forward_batches)": cum(frames.apply_boosts, "forward_batches"),
        "to_lab (incl. its apply_boosts)": cum(frames.to_lab),
        "model forward (LGAE.forward)": cum(fwd),
        "to_tensors": cum(to_tensors),
        "latent density score": density,
    }
    parts["rest frame total"] = sum(list(parts.values())[:3])
    top = sorted(st.items(), key=lambda kv: -kv[1][2])[:12]
    # the same call with the rest-frame evaluation switched off (lab frame), and with it on
    rates = {}
    # every engine module that imported the predicate (the engine has moved between modules)
    users = [m for n, m in list(sys.modules.items()) if n.startswith("lgae_hep.")
             and getattr(m, "is_lorentz_equivariant", None) is frames.is_lorentz_equivariant
             and m is not frames]
    for name, flag in (("lab frame", False), ("rest frame", True)):
        for m in users:
            m.is_lorentz_equivariant = frames.is_lorentz_equivariant if flag else (
                lambda model: False)
        try:
            t0 = time.perf_counter()
            lgae_hep.score(jets, model, batch_size=b, progress=False)
            rates[name] = len(jets) / (time.perf_counter() - t0)
        finally:
            for m in users:
                m.is_lorentz_equivariant = frames.is_lorentz_equivariant
    return {"total": root, "parts": parts, "rates": rates, "jets": len(jets),
            "top": [(f"{os.path.basename(k[0])}:{k[1]}({k[2]})", v[2], v[3]) for k, v in top]}


def worker(spec: dict) -> dict:
    """Measure one (code, measurement, batch) in this process."""
    if spec.get("root"):
        _use_checkout(spec["root"])
    if spec["what"] == "profile":
        return profile_score(spec)
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
    ap.add_argument("--rows", nargs="*", default=[m for m in MEASUREMENTS if m not in OPT_IN],
                    choices=list(MEASUREMENTS),
                    help="rows of the table (none: only --profile-score)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved old/new repetitions")
    ap.add_argument("--reps", type=int, default=3, help="timed calls per subprocess")
    ap.add_argument("--old", default="/tmp/lgae_old",
                    help=f"worktree of the old commit {OLD_COMMIT} (created if missing)")
    ap.add_argument("--no-old", action="store_true", help="measure this checkout only")
    ap.add_argument("--fit-batches", nargs="+", type=int, default=[64],
                    help="fit row batch sizes (default: the new fit default 64)")
    ap.add_argument("--fit-lr", type=float, default=3e-3, help="fit row learning rate")
    ap.add_argument("--fit-epochs", type=int, default=3, help="epochs per fit call")
    ap.add_argument("--fit-steps", type=int, default=40,
                    help="timed raw steps beside each fit call")
    ap.add_argument("--score-jets", type=int, default=100_000, help="jets per score call")
    ap.add_argument("--profile-score", type=int, default=0, metavar="N",
                    help="then profile lgae_hep.score on N jets (this checkout)")
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
    def batches(what):
        return getattr(args, ROW_BATCHES.get(what, "batches"))

    common = {"model": args.model, "dtype": args.dtype, "reps": args.reps,
              "threads": args.threads, "device": args.device, "fit_lr": args.fit_lr,
              "fit_epochs": args.fit_epochs, "fit_steps": args.fit_steps,
              "score_jets": args.score_jets}
    best: dict = {}
    for rnd in range(args.rounds):
        for what in args.rows:
            for b in batches(what):
                for code, root in (codes.items() if rnd % 2 == 0 else
                                   reversed(list(codes.items()))):
                    spec = {**common, "root": root, "code": code, "what": what, "batch": b}
                    t0 = time.perf_counter()
                    r = _run(spec)
                    if r is None:
                        continue
                    print(f"  {code} {what} {b}: {r['jets'] / r['wall']:.0f} jets/s "
                          f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
                    key = (what, b, code)
                    old = best.get(key)
                    if old is not None:
                        keep = r if r["wall"] < old["wall"] else old
                        r = {**keep, "wall": min(old["wall"], r["wall"]),
                             "cpu": min(old["cpu"], r["cpu"]),
                             "rss_gb": max(old["rss_gb"], r["rss_gb"])}
                    best[key] = r
    ncpu = args.threads if args.device == "cpu" else 1
    head = (f"{'row':<18} {'batch':>5} {'new jets/s (cpu)':>18} {'old jets/s (cpu)':>18} "
            f"{'speed-up (cpu)':>15} {'RSS new/old GB':>15}")
    if args.rows:
        print("\njets/s from the best wall time, (cpu): from the best CPU time / threads; "
              "RSS: peak of the measuring subprocess")
        print(head)
        print("-" * len(head))
    for what in args.rows:
        for b in batches(what):
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
            print(f"{what:<18} {b:>5} {cells[0]:>18} {cells[1]:>18} {sp:>15} "
                  f"{'/'.join(rss):>15}", flush=True)
    _print_ratios(args, best, batches, ncpu)
    if args.profile_score:
        _print_profile(args, common)
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    return 0


def _rate(r: dict, ncpu: int) -> tuple[float, float]:
    return r["jets"] / r["wall"], r["jets"] * ncpu / r["cpu"]


def _print_ratios(args, best: dict, batches, ncpu: int) -> None:
    """fit / training step and score / inference, per code, wall (CPU)."""
    lines = []
    for code in ("new", "old"):
        for b in batches("fit") if "fit" in args.rows else ():
            r = best.get(("fit", b, code))
            if r is None:
                continue
            fw, fc = _rate(r, ncpu)
            sw, sc = r["step_rate"][0], r["step_rate"][1] * ncpu
            lines.append(f"{code}: fit {b} = {fw / sw:.0%} ({fc / sc:.0%}) of the raw step at "
                         f"batch {b} in the same process ({sw:.0f} ({sc:.0f}) jets/s; recipe "
                         f"loss); its epochs alone {r['epoch_rate'] / sw:.0%}")
            for tb in batches("train step") if "train step" in args.rows else ():
                t = best.get(("train step", tb, code))
                if t is not None:
                    tw, tc = _rate(t, ncpu)
                    lines.append(f"{code}: fit {b} = {fw / tw:.0%} ({fc / tc:.0%}) of the "
                                 f"'train step' row at batch {tb}")
        for b in batches("compiled inference") if "compiled inference" in args.rows else ():
            r, i = best.get(("compiled inference", b, code)), best.get(("inference", b, code))
            if r is not None:
                rel = "" if i is None else f" = {_rate(r, ncpu)[0] / _rate(i, ncpu)[0]:.2f}x eager"
                lines.append(f"{code}: compiled inference {b}: compile {r['compile_s']:.0f} s, "
                             f"max |compiled - eager| / max|eager| {r['max_rel_diff']:.1e}{rel}")
        for b in batches("score") if "score" in args.rows else ():
            r, i = best.get(("score", b, code)), best.get(("inference", b, code))
            if r is not None and i is not None:
                (sw, sc), (iw, ic) = _rate(r, ncpu), _rate(i, ncpu)
                lines.append(f"{code}: score {b} = {sw / iw:.0%} ({sc / ic:.0%}) of the "
                             f"inference row at batch {b}")
    if lines:
        print("\nratios, wall (CPU); targets: fit >= 70 % of the training step, score >= 80 % "
              "of inference")
        print("\n".join(lines))


def _print_profile(args, common: dict) -> None:
    b = args.batches[0]
    spec = {**common, "root": None, "code": "new", "what": "profile", "batch": b,
            "score_jets": args.profile_score}
    r = _run(spec)
    if r is None:
        return
    print(f"\ncProfile of lgae_hep.score, {r['jets']} jets, batch {b} (this checkout; "
          f"cumulative time as a share of the score call, {r['total']:.1f} s profiled)")
    for name, t in r["parts"].items():
        print(f"  {name:<44} {t:7.2f} s {t / r['total']:6.1%}")
    print("  unprofiled score rate: " + ", ".join(
        f"{k} {v:.0f} jets/s" for k, v in r["rates"].items()))
    print("  top self time: " + "; ".join(f"{n} {tt:.2f} s" for n, tt, _ in r["top"][:8]))


if __name__ == "__main__":
    raise SystemExit(main())
