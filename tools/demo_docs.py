"""Write the demo's numbers and figures into the docs: README's demo table, docs/figures/demo_*.

    python tools/demo_docs.py            # run `lgae-hep demo` (400 jets per class), write docs
    python tools/demo_docs.py --check    # exit 1 if README's table is not this run's

The table sits in README.md between ``<!-- demo-table:begin -->`` and
``<!-- demo-table:end -->``; :func:`render_table` writes it from the demo summary: the AUC of
each signal against QCD and its statistical error (Hanley-McNeil, from the numbers of jets).
``docs/figures/demo_roc.png`` and ``demo_score.png`` are the demo's ``roc`` and ``score``
plots. ``tests/test_demo.py`` reads the table back (:func:`read_table`) and checks that a
smaller demo run agrees with it within the statistical errors.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
FIGURES = REPO / "docs" / "figures"
BEGIN, END = "<!-- demo-table:begin -->", "<!-- demo-table:end -->"


def render_table(summary: Mapping[str, Any]) -> str:
    """The README demo table of a demo summary (:func:`lgae_hep.demo.demo`)."""
    from lgae_hep.metrics import auc_standard_error

    sig = summary["metrics"]["signals"]
    lines = [f"`lgae-hep demo` (model `{summary['model']}`, score `{summary['metric']}`, "
             f"{summary['jets_per_class']} jets per class, lgae-hep "
             f"{summary['lgae_hep_version']}; written by `python tools/demo_docs.py`):", "",
             "| signal (vs QCD) | AUC | stat. error | signal / QCD jets |",
             "|---|---:|---:|---:|"]
    for name in ("t", "W", "Z"):
        m = sig[name]
        se = auc_standard_error(m["auc"], m["n_background"], m["n_signal"])
        lines.append(f"| {name} | {m['auc']:.3f} | {se:.3f} | {m['n_signal']} / "
                     f"{m['n_background']} |")
    return "\n".join(lines)


def read_table(text: str | None = None) -> dict[str, Any]:
    """``{"jets_per_class": n, "auc": {signal: (auc, error, n_signal, n_background)}}`` from
    README's demo table."""
    text = README.read_text() if text is None else text
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    n = int(re.search(r"(\d+) jets per class", block).group(1))
    rows = re.findall(r"^\| (\w+) \| ([\d.]+) \| ([\d.]+) \| (\d+) / (\d+) \|$", block, re.M)
    return {"jets_per_class": n,
            "auc": {r[0]: (float(r[1]), float(r[2]), int(r[3]), int(r[4])) for r in rows}}


def replace_table(text: str, table: str) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md lacks the markers {BEGIN} ... {END}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def run_demo(outdir: Path, jets_per_class: int) -> dict[str, Any]:
    from lgae_hep.demo import demo

    summary = demo(outdir, jets_per_class=jets_per_class, progress=False)
    summary["jets_per_class"] = jets_per_class
    return summary


def main(argv: list[str] | None = None) -> int:
    from lgae_hep.demo import DEFAULT_JETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare README's table with a fresh run instead of writing")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="demo output folder (default: a temporary one)")
    args = parser.parse_args(argv)
    out = args.output or Path(tempfile.mkdtemp(prefix="lgae-demo-docs-"))
    summary = run_demo(out, DEFAULT_JETS)
    table = render_table(summary)
    text = README.read_text()
    new = replace_table(text, table)
    if args.check:
        if new != text:
            print("README.md's demo table differs from this run:\n" + table, file=sys.stderr)
            return 1
        print("README.md's demo table is current")
        return 0
    README.write_text(new)
    for stem in ("roc", "score"):
        shutil.copyfile(out / "plots" / f"{stem}.png", FIGURES / f"demo_{stem}.png")
    print(table)
    print(f"wrote {README} and {FIGURES}/demo_roc.png, demo_score.png (demo output: {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
