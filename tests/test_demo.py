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
    # each AUC recomputed by hand from the saved per-jet scores (Mann-Whitney U, ties 1/2)
    from coffea.util import load

    out_cols = load(out / "output.coffea")["output"]
    cols = {ds: out_cols[ds]["columns"]["score"].value for ds in ("QCD", "Top", "W", "Z")}
    b = cols["QCD"]
    for name, ds in (("t", "Top"), ("W", "W"), ("Z", "Z")):
        s = cols[ds]
        u = (s[:, None] > b[None, :]).sum() + 0.5 * (s[:, None] == b[None, :]).sum()
        assert summary["auc"][name] == pytest.approx(u / (s.size * b.size), abs=1e-12), name
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


@pytest.mark.sim
def test_demo_agrees_with_the_readme_table(tmp_path):
    """A smaller demo run (same generator settings and seed, fewer jets) agrees with README's
    table (written by tools/demo_docs.py) within the statistical errors of both: 3 standard
    deviations (Hanley-McNeil, from the numbers of jets)."""
    import importlib.util
    from pathlib import Path

    from lgae_hep.demo import demo
    from lgae_hep.metrics import auc_standard_error

    tool = Path(__file__).resolve().parents[1] / "tools" / "demo_docs.py"
    spec = importlib.util.spec_from_file_location("demo_docs", tool)
    docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs)
    table = docs.read_table()
    assert set(table["auc"]) == {"t", "W", "Z"}
    n = 60
    summary = demo(tmp_path / "demo", jets_per_class=n, cache_dir=tmp_path / "cache",
                   progress=False)
    for name, (ref, ref_err, n_s, n_b) in table["auc"].items():
        assert ref_err == pytest.approx(auc_standard_error(ref, n_b, n_s), abs=5e-4)
        got = summary["auc"][name]
        err = auc_standard_error(got, n, n)
        assert abs(got - ref) <= 3 * (err**2 + ref_err**2) ** 0.5, (name, got, ref)
    # the table's own rendering of this summary has the same layout (what the tool writes)
    summary["jets_per_class"] = n
    again = docs.read_table(f"{docs.BEGIN}\n{docs.render_table(summary)}\n{docs.END}")
    assert again["jets_per_class"] == n and set(again["auc"]) == set(table["auc"])
