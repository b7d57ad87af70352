"""Time to build all Clebsch-Gordan tables for maxdim 2, 3, 4 from scratch (issue 2).

Every caching layer (SU(2) coefficients, spinor bases, CG tensors, torch tables) is cleared
before each build, so the figures are cold-start costs.

    python benchmarks/lorentz_tables.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from lgae_hep.lorentz import cg, group, su2


def _clear_caches() -> None:
    for fn in (
        su2.cg_squared_signed,
        su2.su2_cg_table,
        su2.spin_matrices,
        group.spinor_to_canonical,
        group.irrep_generators,
        cg._clebsch_gordan,
        cg._cg_tables,
        cg._invariant_form,
    ):
        fn.cache_clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"{'maxdim':>6}  {'irreps':>6}  {'triples':>7}  {'complex64 (ms)':>14}  "
          f"{'complex128 (ms)':>15}")
    for maxdim in (2, 3, 4):
        times = {}
        for dtype in (torch.complex64, torch.complex128):
            best = float("inf")
            for _ in range(args.repeat):
                _clear_caches()
                t0 = time.perf_counter()
                tables = cg.cg_tables(maxdim, dtype)
                best = min(best, time.perf_counter() - t0)
            times[dtype] = best * 1e3
        print(f"{maxdim:>6}  {len(group.irreps_up_to(maxdim)):>6}  {len(tables):>7}  "
              f"{times[torch.complex64]:>14.1f}  {times[torch.complex128]:>15.1f}")
    print("target: maxdim 3 under 1000 ms (best of --repeat cold builds)")


if __name__ == "__main__":
    main()
