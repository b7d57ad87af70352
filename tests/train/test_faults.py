"""Training under faults: SIGKILL mid-epoch then resume; DDP with gloo and 2 CPU processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from lgae_hep.checkpoint import load_checkpoint

JOB = Path(__file__).resolve().parent / "_train_job.py"


def _env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", **extra)
    env.pop("WORLD_SIZE", None)
    return env


def _completed_epochs(out: Path) -> int:
    path = out / "metrics.json"
    if not path.exists():
        return 0
    try:
        return len(json.loads(path.read_text()))
    except json.JSONDecodeError:  # pragma: no cover - written atomically, never half
        return -1


def test_sigkill_mid_epoch_then_resume_loses_at_most_one_epoch(tmp_path):
    out = tmp_path / "run"
    epochs = 4
    env = _env(JOB_JETS="1200", JOB_BS="8")
    proc = subprocess.Popen([sys.executable, str(JOB), str(out), str(epochs)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while _completed_epochs(out) < 1:  # wait for the first epoch's checkpoint
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "first epoch took too long"
            time.sleep(0.05)
        # the run is now inside epoch 2: the checkpoint must load at any moment
        for _ in range(5):
            assert load_checkpoint(out / "last.pt")["epoch"] >= 0
            time.sleep(0.02)
        done_at_kill = _completed_epochs(out)
        assert proc.poll() is None, "training finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert 1 <= done_at_kill < epochs
    ck = load_checkpoint(out / "last.pt")  # never half-written
    saved = ck["epoch"] + 1
    assert saved >= done_at_kill  # at most the epoch in progress is lost
    assert not list(out.glob(".*.tmp")) or all(p.stat().st_size >= 0 for p in out.glob(".*.tmp"))
    res = subprocess.run([sys.executable, str(JOB), str(out), str(epochs), "resume"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"resuming from {out / 'last.pt'} after epoch {saved - 1}" in res.stdout
    final = load_checkpoint(out / "last.pt")
    assert final["epoch"] == epochs - 1 and final["extra"]["done"]
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == list(range(epochs))  # no epoch missing or duplicated
    # the resumed run re-ran only the epochs that were not saved
    ran_after = sum(line.startswith("epoch ") for line in res.stdout.splitlines())
    assert ran_after == epochs - saved


def test_ddp_gloo_two_cpu_processes(tmp_path):
    out, report = tmp_path / "run", tmp_path / "report"
    report.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(29500 + os.getpid() % 1000), str(JOB), str(out), "2", "new",
           str(report)]
    res = subprocess.run(cmd, env=_env(JOB_JETS="64", JOB_BS="8"), capture_output=True,
                         text=True, timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    r0 = json.loads((report / "rank0.json").read_text())
    r1 = json.loads((report / "rank1.json").read_text())
    assert r0["epochs_run"] == r1["epochs_run"] == 2
    assert r0["params"] == r1["params"]  # DDP keeps the replicas identical
    assert r0["history"] == r1["history"]  # losses are averaged over the processes
    ck = load_checkpoint(out / "last.pt")
    assert ck["extra"]["world_size"] == 2 and ck["epoch"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "metrics.csv",
                                                     "metrics.json"]
    best = load_checkpoint(out / "best.pt")["state_dict"]
    flat = torch.cat([v.flatten() for v in best.values()])
    assert flat.numel() == len(r0["params"])
