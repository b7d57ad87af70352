"""``lgae_hep.train.fit`` end to end against the raw training step, on the bundled recipe.

Two numbers, measured interleaved in one process (A/B/A/B...) so that the load of a shared
machine hits both alike:

* **raw step**: forward + per-jet training loss + backward + Adam on pre-made tensors (batches
  sliced from one pool, nothing else): the network's training speed;
* **fit**: one whole :func:`lgae_hep.train.fit` call on in-memory tensors (model build, data
  preparation, every epoch's batching, validation, checkpoints, metrics files, the progress
  bookkeeping), jets/s = trained jets / the call's wall (or CPU) time. The epochs' own rate
  (training + validation as the run's history times them) is printed beside it.

Both report wall time and the process's CPU time (``time.process_time``; with 2 threads it
also counts OpenMP spin-waits). On a shared, loaded machine compare the ratio fit / step from
the same run, not absolute numbers across runs.

The recipe is the ``training`` section of ``models/pretrained/lgae-mix.json`` (loss, batch size,
learning rate, gradient clipping, epoch size, scheduler, seed) with its 10,000 validation jets;
the jets are synthetic (pT-sorted, 10-30 particles): the cost of the network and the loss does
not depend on the values. ``--ref COMMIT`` also runs ``lgae_hep/train.py`` of that commit (the
loop before a change) in the same run.

Usage::

    python benchmarks/fit_loop.py                       # 2 threads, float32, 3 rounds
    python benchmarks/fit_loop.py --ref 3a1d35c         # and the fit loop of commit 3a1d35c
    python benchmarks/fit_loop.py --epochs 2 --rounds 1 --device cuda --batch-size 8192

Other scripts call :func:`measure_train_step` and :func:`measure_fit` (e.g.
``benchmarks/throughput.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
CARD = REPO / "models" / "pretrained" / "lgae-mix.json"


def recipe() -> tuple[dict[str, Any], str, dict[str, Any], int]:
    """(model config, loss, fit options, validation jets) of the bundled lgae-mix."""
    card = json.loads(CARD.read_text())
    tr = card["training"]
    return (dict(card["config"]), tr["loss"], dict(tr["options"]),
            int(tr["data"]["val_qcd"]["n"]))


def synthetic_jets(n: int, seed: int, num_particles: int = 30, dtype=torch.float32):
    """(p4, mask): pT-sorted massless particles near a common axis, 10..N per jet, GeV."""
    g = torch.Generator().manual_seed(seed)
    cnt = torch.randint(10, num_particles + 1, (n,), generator=g)
    mask = torch.arange(num_particles)[None] < cnt[:, None]
    pt, _ = (torch.rand(n, num_particles, generator=g).pow(3) * 400 + 1).sort(1, descending=True)
    eta = torch.randn(n, num_particles, generator=g) * 0.2
    phi = torch.randn(n, num_particles, generator=g) * 0.2
    p4 = torch.stack([pt * torch.cosh(eta), pt * torch.cos(phi), pt * torch.sin(phi),
                      pt * torch.sinh(eta)], -1)
    return (p4 * mask[..., None]).to(dtype), mask


def measure_train_step(config: dict[str, Any] | None = None, *, loss: str | None = None,
                       batch_size: int | None = None, lr: float = 1e-3, steps: int = 30,
                       device: str = "cpu", seed: int = 0) -> dict[str, float]:
    """Raw training-step rate: forward + loss + backward + Adam on pre-made tensors.

    Defaults come from the bundled recipe. ``steps`` timed steps after 3 warm-up steps; the
    batches are consecutive slices of one pool of 8 batches on ``device`` (no copies).
    Returns ``{"jets_per_s", "cpu_jets_per_s", "seconds", "cpu_seconds", "jets"}``.
    """
    from lgae_hep.models import build_model

    from lgae_hep.objectives import forward_model, per_jet_loss

    cfg, rloss, opts, _ = recipe()
    config = dict(config or cfg)
    loss = loss or rloss
    batch_size = int(batch_size or opts["batch_size"])
    dev = torch.device(device)
    torch.manual_seed(seed)
    model = build_model(config).to(dev)
    dtype = next(p.dtype for p in model.parameters() if not p.is_complex())
    p4, mask = synthetic_jets(8 * batch_size, seed + 1, int(config.get("num_particles", 30)),
                              dtype)
    p4, mask = p4.to(dev), mask.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def step(i: int) -> None:
        sl = slice((i % 8) * batch_size, (i % 8 + 1) * batch_size)
        pb, mb = p4[sl], mask[sl]
        opt.zero_grad(set_to_none=True)
        per_jet_loss(model, forward_model(model, pb, mb, None), pb, mb, loss).mean().backward()
        opt.step()

    for i in range(3):
        step(i)
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(steps):
        step(i)
    sync()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    jets = steps * batch_size
    return {"jets_per_s": jets / wall, "cpu_jets_per_s": jets / cpu, "seconds": wall,
            "cpu_seconds": cpu, "jets": jets}


def _load_fit(ref: str | None):
    """``fit`` of this tree, or of ``lgae_hep/train.py`` at commit ``ref`` (imported as a
    module of the installed package, so that its relative imports resolve)."""
    if ref is None:
        from lgae_hep.train import fit

        return fit
    import lgae_hep

    src = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:lgae_hep/train.py"],
                         check=True, capture_output=True, text=True).stdout
    name = f"lgae_hep._train_at_{ref}"
    path = Path(tempfile.mkdtemp()) / "train_ref.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = lgae_hep.__name__
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod.fit


def measure_fit(config: dict[str, Any] | None = None, *, epochs: int = 3,
                n_train: int = 10_000, n_val: int | None = None, device: str = "cpu",
                ref: str | None = None, data: tuple | None = None,
                **overrides: Any) -> dict[str, float]:
    """End-to-end rate of one :func:`lgae_hep.train.fit` call on the bundled recipe.

    ``epochs`` epochs of the recipe's ``epoch_size`` jets drawn from ``n_train`` training
    jets, validated on ``n_val`` jets (default: the recipe's 10,000); ``overrides`` replace
    recipe options (``batch_size=...``, fit keywords). ``data``: ``(train, val)`` to use
    instead of synthetic jets. ``ref``: a commit whose ``lgae_hep/train.py`` runs instead.
    Returns wall and CPU jets/s of the whole call, and ``epoch_jets_per_s`` from the epochs'
    own seconds (``FitResult.history``: training + validation, no setup, no checkpoints).
    """
    cfg, loss, opts, rval = recipe()
    config = dict(config or cfg)
    opts = dict(opts, epochs=epochs, loss=loss, device=device, progress=False,
                log=lambda m: None)
    opts.update(overrides)
    n_part = int(config.get("num_particles", 30))
    if data is None:
        data = (synthetic_jets(n_train, 11, n_part), synthetic_jets(n_val or rval, 12, n_part))
    fit = _load_fit(ref)
    with tempfile.TemporaryDirectory() as out:
        t0, c0 = time.perf_counter(), time.process_time()
        res = fit(config, data[0], data[1], out_dir=out, **opts)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        n_tr = len(data[0][0])
        per_epoch = min(int(opts.get("epoch_size") or n_tr), n_tr)
        jets = per_epoch * res.epochs_run
        loop = sum(h["seconds"] for h in res.history)  # each epoch's training + validation
    return {"jets_per_s": jets / wall, "cpu_jets_per_s": jets / cpu,
            "epoch_jets_per_s": jets / max(loop, 1e-9), "seconds": wall, "cpu_seconds": cpu,
            "jets": jets, "epochs": res.epochs_run, "best_val_loss": res.best_val_loss}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved step/fit rounds")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per fit call")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--steps", type=int, default=40, help="timed raw steps per round")
    ap.add_argument("--ref", default=None, help="also time lgae_hep/train.py of this commit")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg, loss, opts, n_val = recipe()
    bs = args.batch_size or opts["batch_size"]
    over = {"batch_size": bs}
    load = os.getloadavg()
    print(f"lgae-mix recipe: loss {loss}, batch {bs}, epoch_size {opts['epoch_size']}, "
          f"{n_val} validation jets; {args.threads} threads, {args.device}, float32; "
          f"load average {load[0]:.1f} on {os.cpu_count()} CPUs")
    variants = [("fit (this tree)", None)] + ([(f"fit ({args.ref})", args.ref)]
                                              if args.ref else [])
    rows: dict[str, list[dict[str, float]]] = {"raw step": []}
    for name, _ in variants:
        rows[name] = []
    for r in range(args.rounds):
        rows["raw step"].append(measure_train_step(batch_size=bs, steps=args.steps,
                                                   device=args.device))
        for name, ref in (variants if r % 2 == 0 else variants[::-1]):
            rows[name].append(measure_fit(epochs=args.epochs, device=args.device, ref=ref,
                                          **over))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    step = max(x["jets_per_s"] for x in rows["raw step"])
    step_cpu = max(x["cpu_jets_per_s"] for x in rows["raw step"])
    head = (f"{'what':<22} {'jets/s wall':>12} {'jets/s CPU':>11} {'per-epoch wall':>15} "
            f"{'of step (wall)':>15} {'of step (CPU)':>14}")
    print(head)
    print("-" * len(head))
    for name, xs in rows.items():
        w = max(x["jets_per_s"] for x in xs)
        c = max(x["cpu_jets_per_s"] for x in xs)
        ep = max(x.get("epoch_jets_per_s", x["jets_per_s"]) for x in xs)
        print(f"{name:<22} {w:>12.0f} {c:>11.0f} {ep:>15.0f} {w / step:>14.0%} "
              f"{c / step_cpu:>13.0%}")
    print("(best of the rounds; fit counts the whole call, per-epoch only the epochs' "
          "training + validation)")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
