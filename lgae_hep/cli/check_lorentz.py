"""``lgae-hep check-lorentz``: the residuals of the group-theory identities."""

from __future__ import annotations

import argparse
import time

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="seed of the random group elements")


def main(args: argparse.Namespace) -> int:
    """Print the residual table; exit status 1 if any residual exceeds its bound."""
    from lgae_hep.lorentz.check import residual_table  # lazy: fast `--help`

    t0 = time.perf_counter()
    rows = residual_table(args.seed)
    width = max(len(r[0]) for r in rows)
    print(f"{'check':<{width}}  {'dtype':<7}  {'residual':>10}  {'bound':>7}  status")
    ok = True
    for name, dtype, value, bound in rows:
        good = value <= bound
        ok &= good
        print(f"{name:<{width}}  {dtype:<7}  {value:10.2e}  {bound:7.0e}  "
              f"{'ok' if good else 'FAIL'}")
    print(f"({time.perf_counter() - t0:.1f} s; residuals of CG identities are relative to "
          "|D1 x| |D2 y|, see lgae_hep/lorentz/check.py)")
    return 0 if ok else 1
