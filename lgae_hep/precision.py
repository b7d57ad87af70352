"""Floating-point bounds that lgae-hep promises, derived once and used by the docs and the tests.

Every tolerance in the test suite and every agreement promised in ``docs/RELIABILITY.md`` comes
from the few numbers below, so that a test is never tuned to the rounding of one machine.
This module imports nothing (no numpy, no torch).

Unit roundoff
-------------
``u = 2**-24`` for float32 and ``2**-53`` for float64 (half the distance between 1 and the next
representable number): one correctly rounded operation has a relative error of at most ``u``.

Why two code paths differ at all
--------------------------------
The same network evaluated twice on the same jet is bitwise identical when the *kernels* are
the same: same machine (instruction set), same torch intra-op thread count, same tensor shapes
(batch size), same dtype. Change any of these and torch/MKL/oneDNN pick another blocking or
vector width for the matrix products and another split of the reductions, so the float sums are
added in another order; every such result is still within the rounding bound below of the exact
value, but not equal to the other one. Things that change kernels: ``torch.set_num_threads``
(the coffea processor runs 1 thread, the API torch's default), ``ATEN_CPU_CAPABILITY`` /
another CPU (AVX-512 vs AVX2), ``batch_size``, CPU vs GPU.

The score bound (float32 and float64 alike)
-------------------------------------------
An LGAE forward pass is about ``L = 10`` stages (input mixing, up to 4 + 4 LMP layers, latent
mixing and aggregation, output mixing). Each stage's outputs are sums over at most
``n = 30 particles x 4 channels = 120`` terms; Higham's bound for a sum of ``n`` terms is a
relative error of ``n u`` (worst case). So the network output carries an error of at most about
``L n u = 1200 u`` of the jet's momentum scale. An anomaly score is a *reconstruction distance*:
it measures output minus input, which for a trained model is a fraction ``r >~ 0.1`` of that
scale, so the score's relative error is at most about ``L n u / r = 12000 u``. We round this
amplification up to :data:`SCORE_AMPLIFICATION` ``= 2**14``:

* one evaluation is within ``score_rtol(dtype) = 2**14 u`` of the exact (infinite-precision)
  score: ``2**-10 = 9.8e-4`` in float32, ``1.8e-12`` in float64;
* two evaluations on different kernels (the API and the processor, two thread counts, two CPUs,
  two batch sizes) differ by at most twice that, :func:`path_rtol`: ``2.0e-3`` in float32,
  ``3.6e-12`` in float64.

The relative bound needs ``r >~ 0.1``. A jet that the network reconstructs almost perfectly
(a one-particle jet, say) has a score near zero, and there the rounding of the output itself is
the floor: the output directions carry an angular error of at most :data:`OUTPUT_AMPLIFICATION`
``u = 2**11 u`` (``L n = 1200`` rounded up), and ``chamfer-dr`` adds such errors with pT-fraction
weights that sum to about 1 on each of its two sides, so its absolute floor is
:func:`score_atol` ``= 2 * 2**11 u`` per evaluation (``2.4e-4`` in float32, ``4.5e-13`` in
float64) and :func:`path_atol` twice that between two paths. (``chamfer`` in GeV^2 has no
fixed floor: it scales with the square of the jet's momentum; compare it relatively.)

Measured with ``python benchmarks/determinism.py`` (bundled models, 624 real and generated
jets, 1 vs 2 threads, AVX-512 vs AVX2, batch 256 vs 1, each against a float64 evaluation):
the largest effective amplification was about 5,300 u in float32 and 4,800 u in float64, within
the 16,384 u budget.

Where the bound does not hold: selection aggregations
-----------------------------------------------------
``min`` / ``max`` aggregation picks, per latent channel, the particle with the smallest / largest
invariant norm. When two particles' norms differ by less than the rounding error, which kernel
ran decides which particle is picked, and the latent (and score) jumps by an O(1) amount: the
score is a *discontinuous* function of the input there. With the bundled ``lgae-min-max`` in
float32 this happened to about 1 % of jets (its scalar latent channel is dominated by a learned
offset, so neighbouring norms differ by ~1e-7 relative). In float64 the same jets are resolved
consistently (no flip in the measurement above), which is why the bundled min-max model is
evaluated in float64 (its card's ``inference_dtype``); a user-trained min/max model should be
loaded with ``load_model(..., dtype="float64")`` where scores must agree across machines.
"""

from __future__ import annotations

__all__ = [
    "OUTPUT_AMPLIFICATION",
    "latent_rtol",
    "SCORE_AMPLIFICATION",
    "path_atol",
    "score_atol",
    "UNIT_ROUNDOFF",
    "path_rtol",
    "score_rtol",
    "unit_roundoff",
]

#: Unit roundoff per dtype name (2**-p for a p-bit significand).
UNIT_ROUNDOFF: dict[str, float] = {"float32": 2.0**-24, "float64": 2.0**-53}

#: Bound on (relative error of a score) / (unit roundoff): ``L n / r`` rounded up, see above.
SCORE_AMPLIFICATION: float = 2.0**14
#: Bound on (relative error of the network's output momenta) / (unit roundoff): ``L n``.
OUTPUT_AMPLIFICATION: float = 2.0**11


def _dtype_name(dtype: object) -> str:
    # torch.float32, numpy's np.float32 / np.dtype("float32"), or the name
    name = getattr(dtype, "__name__", None) if isinstance(dtype, type) else None
    name = name or str(dtype).rsplit(".", 1)[-1]
    name = {"double": "float64", "float": "float32", "dtype('float32')": "float32",
            "dtype('float64')": "float64"}.get(name, name)
    if name not in UNIT_ROUNDOFF:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return name


def unit_roundoff(dtype: object) -> float:
    """Unit roundoff ``u`` of ``dtype`` (``"float32"``, ``torch.float64``, numpy dtypes)."""
    return UNIT_ROUNDOFF[_dtype_name(dtype)]


def score_rtol(dtype: object) -> float:
    """Relative bound on one evaluation's anomaly score against the exact value."""
    return SCORE_AMPLIFICATION * unit_roundoff(dtype)


def path_rtol(dtype: object) -> float:
    """Relative bound on the difference of two evaluations on different kernels.

    Use it to compare the API with the processor, two thread counts, two CPUs or two batch
    sizes: both are within :func:`score_rtol` of the exact score, so within twice that of
    each other.
    """
    return 2.0 * score_rtol(dtype)


def score_atol(dtype: object, metric: str = "chamfer-dr") -> float:
    """Absolute floor of one evaluation's score error (the dimensionless ``chamfer-dr``).

    For ``"chamfer"`` (GeV^2, no fixed scale) this is 0: compare those relatively.
    """
    if metric == "chamfer":
        return 0.0
    if metric != "chamfer-dr":
        raise ValueError(f"metric must be 'chamfer' or 'chamfer-dr', got {metric!r}")
    return 2.0 * OUTPUT_AMPLIFICATION * unit_roundoff(dtype)


def path_atol(dtype: object, metric: str = "chamfer-dr") -> float:
    """Absolute floor of the difference of two evaluations (twice :func:`score_atol`)."""
    return 2.0 * score_atol(dtype, metric)


def latent_rtol(dtype: object) -> float:
    """Relative bound on one evaluation's latent components against the exact value, relative
    to the jet's largest latent component: the latent is a network output, so
    ``OUTPUT_AMPLIFICATION u`` (the ``L n`` of the module docstring). Two paths differ by at
    most twice that. Latent-density scores inherit it through their gradient
    (:meth:`lgae_hep.density.LatentDensity.score_error_bound`)."""
    return OUTPUT_AMPLIFICATION * unit_roundoff(dtype)
