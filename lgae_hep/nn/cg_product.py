"""Channel-wise Clebsch-Gordan products of irrep features.

Features are dicts ``irrep (k, n) -> complex tensor (..., tau, d)`` with ``d = (k+1)(n+1)`` in
the canonical basis of :mod:`lgae_hep.lorentz`. A channel-wise product couples channel ``c`` of
one operand with channel ``c`` of the other (a single-channel operand broadcasts), and
decomposes the product with the cached Lorentz CG tensors, truncated at ``maxdim``.
"""

from __future__ import annotations

import torch

from lgae_hep.lorentz import allowed_products, cg_tables, irrep_dim

__all__ = ["Feats", "CGProduct", "cg_pair", "complex_dtype"]

Feats = dict[tuple[int, int], torch.Tensor]


def complex_dtype(real_dtype: torch.dtype) -> torch.dtype:
    """complex64 for float32, complex128 for float64."""
    return torch.complex128 if real_dtype == torch.float64 else torch.complex64


class CGProduct(torch.nn.Module):
    """Channel-wise CG products for all pairs of irreps up to ``maxdim``.

    The CG tensors of every ``(rep1, rep2)`` are stacked over the allowed outputs into one
    ``(d1, d2, sum d)`` tensor (a buffer, so it follows ``.to(device)``). A pair costs either one
    outer product ``x (x) y`` and one matmul with the table flattened to ``(d1 * d2, sum d)``, or,
    when ``sum d <= d1`` (e.g. the Minkowski product of two 4-vectors), one matmul ``x @ C``
    with the table flattened to ``(d1, d2 * sum d)`` followed by a product with ``y`` summed over
    ``d2``, which never forms the larger outer product. Both give the same numbers up to
    rounding. Products with the trivial irrep ``(0, 0)`` are plain multiplications (their CG
    tensor is the identity).

    Parameters
    ----------
    maxdim : int
        Irreps with ``k >= maxdim`` or ``n >= maxdim`` are dropped from the outputs.
    dtype : torch.dtype
        Real dtype of the model (the tables are stored in the matching complex dtype).
    """

    def __init__(self, maxdim: int, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.maxdim = maxdim
        tables = cg_tables(maxdim, dtype=complex_dtype(dtype))
        self._outs: dict[tuple, list[tuple[tuple[int, int], int]]] = {}
        self._left: set[tuple] = set()
        self._cl_single_k: dict[tuple, bool] = {}
        self._sparse: dict[tuple, list[list[tuple[int, int, float]]]] = {}
        pairs = sorted({(r1, r2) for (r1, r2, _) in tables})
        for r1, r2 in pairs:
            outs = allowed_products(r1, r2, maxdim)
            if not outs:
                continue
            self._outs[(r1, r2)] = [(r, irrep_dim(r)) for r in outs]
            if r1 == (0, 0) or r2 == (0, 0):
                continue
            d1, d2 = irrep_dim(r1), irrep_dim(r2)
            mat = torch.cat([tables[(r1, r2, r)] for r in outs], dim=-1)  # (d1, d2, dtot)
            dtot = mat.shape[-1]
            if dtot <= d1:
                # contract the left operand first: (x @ C) has d2 * dtot <= d1 * d2 entries,
                # less than the outer product x (x) y (e.g. 4 instead of 16 for 4-vector . 4-vector)
                self._left.add((r1, r2))
                mat = mat.reshape(d1, d2 * dtot)
            else:
                mat = mat.reshape(d1 * d2, dtot)
            self.register_buffer(_name(r1, r2), mat.clone(), persistent=False)
            # packed form (:meth:`packed`): the non-zero entries of the stacked table as index lists
            # (i, j, k) and values (CG tables are sparse: 4 of 16 entries for 4-vector .
            # 4-vector), so a product is two gathers, one multiply and one index_add
            full = mat.reshape(d1, d2, dtot)
            nz = (full.abs() > 1e-12 * full.abs().max()).nonzero()
            order = torch.argsort(nz[:, 2] * d1 * d2 + nz[:, 0] * d2 + nz[:, 1])
            nz = nz[order]
            i, j, k = nz.unbind(1)
            vals = full[i, j, k]
            self.register_buffer(_name(r1, r2) + "_i", i.clone(), persistent=False)
            self.register_buffer(_name(r1, r2) + "_j", j.clone(), persistent=False)
            self.register_buffer(_name(r1, r2) + "_k", k.clone(), persistent=False)
            # real values (all tables up to maxdim 4 are real) multiply as real numbers
            if bool((vals.imag == 0).all()):
                vals = vals.real
            self.register_buffer(_name(r1, r2) + "_v", vals.unsqueeze(-1).clone(),
                                 persistent=False)
            self._cl_single_k[(r1, r2)] = dtot == 1
            # few real entries (4-vector . 4-vector: 4): the packed product is a short sum of
            # slice products, grouped by output component and by a common |value|
            if nz.shape[0] <= 16 and not vals.is_complex():
                terms: dict[int, list[tuple[int, int, float]]] = {}
                for (a, b_, c), v in zip(nz.tolist(), vals.tolist()):
                    terms.setdefault(c, []).append((a, b_, v))
                if len(terms) == dtot:
                    self._sparse[(r1, r2)] = [terms[c] for c in range(dtot)]

    def outputs(self, r1: tuple[int, int], r2: tuple[int, int]) -> list[tuple[int, int]]:
        """Irreps (within ``maxdim``) in ``r1 x r2``."""
        return [r for r, _ in self._outs.get((r1, r2), [])]

    def forward(self, x: torch.Tensor, r1, y: torch.Tensor, r2) -> Feats:
        """Channel-wise product of ``x`` (irrep r1, (..., tau, d1)) and ``y`` (r2, (..., tau, d2)).

        Returns a dict ``irrep -> (..., tau, d)`` over the allowed outputs.
        """
        outs = self._outs.get((r1, r2), [])
        if not outs:
            return {}
        if r1 == (0, 0):
            return {r2: x * y}
        if r2 == (0, 0):
            return {r1: x * y}
        mat = getattr(self, _name(r1, r2))
        if (r1, r2) in self._left:
            d2 = y.shape[-1]
            xc = (x @ mat).unflatten(-1, (d2, -1))  # (..., tau or 1, d2, dtot)
            res = (xc * y.unsqueeze(-1)).sum(-2)
        else:
            prod = (x.unsqueeze(-1) * y.unsqueeze(-2)).flatten(-2)
            res = prod @ mat
        return dict(zip([r for r, _ in outs], res.split([d for _, d in outs], dim=-1)))


    def packed(self, x: torch.Tensor, r1, y: torch.Tensor, r2) -> Feats:
        """:meth:`forward` in the packed layout of :class:`~lgae_hep.nn.LMPLayer`:
        ``x`` (tau or 1, B, d1, N), ``y`` (tau, B, d2, N) -> irrep -> (tau, B, d, N).

        The same numbers as :meth:`forward` up to the order of the CG sums. Every operation
        runs over rows of N nodes (contiguous), never over the tiny component axis.
        """
        outs = self._outs.get((r1, r2), [])
        if not outs:
            return {}
        if r1 == (0, 0):
            return {r2: x * y}
        if r2 == (0, 0):
            return {r1: x * y}
        sparse = self._sparse.get((r1, r2))
        if sparse is not None:
            # unbind, not indexing: its backward is one stack, not a zero-filled tensor per slice
            xs, ys = x.unbind(2), y.unbind(2)
            comps = [_slice_sum(xs, ys, entries) for entries in sparse]
            res = comps[0].unsqueeze(2) if len(comps) == 1 else torch.stack(comps, dim=2)
            return dict(zip([r for r, _ in outs], res.split([d for _, d in outs], dim=2)))
        name = _name(r1, r2)
        i, j = getattr(self, name + "_i"), getattr(self, name + "_j")
        vals = getattr(self, name + "_v")  # (nnz, 1)
        terms = x.index_select(2, i) * (y.index_select(2, j) * vals)  # (tau, B, nnz, N)
        if self._cl_single_k[(r1, r2)]:
            res = terms.sum(2, keepdim=True)
        else:
            k = getattr(self, name + "_k")
            shape = list(terms.shape)
            shape[2] = sum(d for _, d in outs)
            res = terms.new_zeros(shape).index_add_(2, k, terms)
        return dict(zip([r for r, _ in outs], res.split([d for _, d in outs], dim=2)))


def _slice_sum(x, y, entries) -> torch.Tensor:
    """``sum_e v_e x[i_e] y[j_e]`` over ``entries`` ``(i, j, v)`` for the component slices
    ``x``, ``y`` (tau, B, N): a few elementwise operations (the factor ``|v_0|`` applied once)."""
    v0 = abs(entries[0][2])
    acc = None
    for i, j, v in entries:
        t = x[i] * y[j]
        if v not in (v0, -v0):
            t = t * (v / v0)
            v = v0
        if acc is None:
            acc = t if v > 0 else -t
        else:
            acc = acc + t if v > 0 else acc - t
    return acc if v0 == 1.0 else acc * v0


def _name(r1, r2) -> str:
    return f"cg_{r1[0]}_{r1[1]}__{r2[0]}_{r2[1]}"


def cg_pair(cg: CGProduct, a: Feats, b: Feats, symmetric: bool = False) -> dict:
    """All channel-wise products of two feature dicts, grouped by output irrep.

    Returns ``irrep -> list of tensors`` (one per contributing path, to be concatenated along the
    channel axis). With ``symmetric=True`` (``a is b``) only pairs ``r1 <= r2`` are formed, since
    ``F_c x F_c`` for ``(r2, r1)`` repeats ``(r1, r2)`` up to the CG symmetry.
    """
    out: dict[tuple[int, int], list[torch.Tensor]] = {}
    for r1, x in a.items():
        for r2, y in b.items():
            if symmetric and r2 < r1:
                continue
            for r, t in cg(x, r1, y, r2).items():
                out.setdefault(r, []).append(t)
    return out
