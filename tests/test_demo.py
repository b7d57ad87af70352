"""`lgae-hep demo` in reduced size: generates, runs the processor, writes plots and a summary."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("pythia8mc", reason="the demo generates jets with pythia8mc")
pytest.importorskip("fastjet", reason="the demo clusters jets with fastjet")


@pytest.mark.sim
def test_demo_small(tmp_path, capsys):
    from lgae_hep.cli import main

    out = tmp_path / "demo"
    cache = tmp_path / "cache"
    rc = main(["demo", "--small", "--jets-per-class", "8", "-o", str(out), "--cache-dir",
               str(cache), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert str(out.resolve()) in printed
    for name in ("score", "roc", "latent_invariants"):
        f = out / "plots" / f"{name}.png"
        assert f.is_file() and f.stat().st_size > 1000, name
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["auc"]) == {"t", "W", "Z"}
    assert all(0.0 <= v <= 1.0 for v in summary["auc"].values())
    for ds in ("QCD", "Top", "W", "Z"):
        c = summary["cutflow"][ds]
        assert c["jets_selected"] == 8 and c["jets_scored"] == 8
    assert "AUC" in (out / "summary.md").read_text()
    # a second run reuses the cached samples (no regeneration)
    files = sorted(p.name for p in next(cache.glob("*")).glob("*.root"))
    assert files == ["qcd.root", "top.root", "w.root", "z.root"]
    mtimes = [p.stat().st_mtime_ns for p in sorted(next(cache.glob("*")).glob("*.root"))]
    from lgae_hep.demo import demo_samples

    again = demo_samples(8, cache_dir=cache, progress=False)
    assert json.loads((out / "fileset.json").read_text()) == again
    assert [p.stat().st_mtime_ns for p in sorted(next(cache.glob("*")).glob("*.root"))] == mtimes
