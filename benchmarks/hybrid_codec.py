"""The hybrid codec (LGAE latent + quantised residuals) against mantissa truncation, at equal
bytes per jet after the same general-purpose compressor, on the same jets (issue 22.3).

    python benchmarks/hybrid_codec.py                         # 2,000 jets, writes the doc
    python benchmarks/hybrid_codec.py --input nano.root --n-jets 5000 --doc /tmp/h.md

Jets: the N = 30 hardest particles of the first ``--n-jets`` jets of ``--input`` (default: the
MPI-on QCD test file of ``benchmarks/anomaly_scores.py``, as ``benchmarks/rate_distortion.py``).

Methods (bytes per jet: what the payload adds to a ROOT file compressed with ``--compressor``,
file size minus that of the same empty file, as in ``benchmarks/rate_distortion.py``; the jet
momentum that fixes the decoder's frame is not counted there either, it is in NanoAOD anyway):

* **truncation** (the baseline of ``rate_distortion.py``): ``pt, eta, phi, mass`` as jagged
  float32, mantissa truncated to ``b`` bits (:func:`lgae_hep.compression.truncate_mantissa`).
* **hybrid** (:mod:`lgae_hep.compression.hybrid`): the bundled ``lgae-mix`` latent (float16),
  the multiplicity (uint8), a CRC-32 of the latent per jet (uint32: residuals that do not
  belong to their latent are an error), the residual integers of ``(log pt, eta, phi)``
  against the decoder's prediction at step ``delta`` (originals matched to the decoder nodes
  by the Hungarian algorithm on ``(eta, phi)`` and stored in node order; int16 when they fit)
  and the particle mass truncated like the baseline's.
* **latent alone**: the latent (at each of :data:`LATENT_PRECISIONS`, as
  :func:`lgae_hep.compress` stores it) and the multiplicity, i.e. the hybrid without
  residuals; the jet mass of the decoder's own particles (their 4-vector sum, which
  ``decompress`` keeps when it repairs unphysical particles).
* **quantised, no model** (control): the same residual coding with the prediction replaced by
  the jet axis (``log pt = 0``, the jet's ``eta, phi``), particles in pT order: how much of the
  hybrid's gain is the network's and how much is quantising ``(log pt, eta, phi)`` uniformly.

Quality: the relative error of the jet mass of the 30 particles (median and IQR; the target
is a smaller IQR than truncation at equal bytes) and the IQR of the particles' relative pT
error (matched by position for truncation and the control, by the stored matching for the
hybrid). Prints the table, writes ``docs/figures/compression_hybrid.png`` and, with ``--doc``,
the markdown page (default ``docs/COMPRESSION_HYBRID.md``).
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # keep benchmarks/ off the import path (see rate_distortion.py)

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402

import awkward as ak  # noqa: E402
import numpy as np  # noqa: E402
import uproot  # noqa: E402
import vector  # noqa: E402

vector.register_awkward()

REPO = Path(__file__).resolve().parents[1]
N_PART = 30
TRUNC_BITS = (2, 3, 4, 5, 6, 8, 10, 12)
DELTAS = (2.0 ** -2, 2.0 ** -3, 2.0 ** -4, 2.0 ** -5, 2.0 ** -6, 2.0 ** -8, 2.0 ** -10)
MODEL = "lgae-mix"
#: the latent-alone rows: lgae_hep.compress's storage precisions (latent dtype, mantissa bits)
LATENT_PRECISIONS = (("float32", None), ("float32", 16), ("float32", 14), ("float32", 12),
                     ("float16", None))


def model_label(model: Any) -> str:
    """A bundled model's name, or a checkpoint's folder name (``runs/.../tau_v6/best.pt``)."""
    p = Path(str(model))
    return p.parent.name if p.suffix == ".pt" else str(model)


def default_input() -> Path:
    found = sorted(glob.glob(str(REPO / "data/generated/anomaly_scores/test_qcd_*_n10000_*.root")))
    if not found:
        raise SystemExit("no input: pass --input FILE (a PFNano file), or generate the "
                         "anomaly-score data sets first (benchmarks/anomaly_scores.py)")
    return Path(found[0])


def file_bytes(columns: dict[str, Any], compression: Any, tmp: Path) -> int:
    """Bytes ``columns`` add to a one-tree ROOT file (``rate_distortion.file_bytes``)."""
    return _rate_distortion().file_bytes(columns, compression, tmp)


def _rate_distortion():
    """``benchmarks/rate_distortion.py`` imported by path (its ``file_bytes`` / ``peak_rss_mb``
    are the shared measurements; benchmarks/ is kept off ``sys.path``)."""
    import importlib.util

    mod = sys.modules.get("_bench_rate_distortion")
    if mod is None:
        spec = importlib.util.spec_from_file_location(
            "_bench_rate_distortion", Path(__file__).resolve().parent / "rate_distortion.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
    return mod


def jet_mass(lpe: np.ndarray, mass: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Jet mass of (B, N) particles given as (log pt, eta, phi) and mass."""
    pt = np.where(mask, np.exp(np.where(mask, lpe[..., 0], 0.0)), 0.0)
    eta, phi = np.where(mask, lpe[..., 1], 0.0), np.where(mask, lpe[..., 2], 0.0)
    m = np.where(mask, mass, 0.0)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px ** 2 + py ** 2 + pz ** 2 + m ** 2)
    s = [(c * mask).sum(1) for c in (e, px, py, pz)]
    return np.sqrt(np.maximum(s[0] ** 2 - s[1] ** 2 - s[2] ** 2 - s[3] ** 2, 0.0))


def summary(rel: np.ndarray) -> tuple[float, float]:
    rel = rel[np.isfinite(rel)]
    q25, q50, q75 = np.percentile(rel, [25, 50, 75])
    return float(q50), float(q75 - q25)


def padded(values: dict[str, np.ndarray], counts: np.ndarray) -> dict[str, np.ndarray]:
    b = len(counts)
    mask = np.arange(N_PART)[None] < counts[:, None]
    out = {}
    for k, v in values.items():
        a = np.zeros((b, N_PART), np.float64)
        a[mask] = v
        out[k] = a
    out["mask"] = mask
    return out


def int_payload(q: np.ndarray, mask: np.ndarray, counts: np.ndarray) -> dict[str, Any]:
    dt = np.int16 if np.abs(q).max(initial=0) < 2 ** 15 else np.int32
    return {f"r{i}": ak.unflatten(q[..., i][mask].astype(dt), counts) for i in range(3)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import lgae_hep
    from lgae_hep.compression import truncate_mantissa
    from lgae_hep.compression.hybrid import (
        check_tags,
        decode_residuals,
        encode_residuals,
        latent_tags,
        log_pt_eta_phi,
        match_to_nodes,
    )
    from lgae_hep.data import read_nanoaod

    comp = {"LZMA": uproot.LZMA(9), "ZLIB": uproot.ZLIB(6)}[args.compressor]
    src = args.input or default_input()
    jets = read_nanoaod(src, max_particles=N_PART, flat=True, progress=False)[: args.n_jets]
    jets = ak.to_packed(ak.zip({f: jets[f] for f in ("pt", "eta", "phi", "mass")},
                               with_name="Momentum4D"))
    counts = np.asarray(ak.to_numpy(ak.num(jets)), np.int64)
    flat = {f: np.asarray(ak.to_numpy(ak.flatten(jets[f])), np.float64)
            for f in ("pt", "eta", "phi", "mass")}
    ref = padded(flat, counts)
    mask = ref["mask"]
    orig = np.stack([np.log(np.where(mask, ref["pt"], 1.0)), ref["eta"], ref["phi"]], -1)
    m_ref = jet_mass(orig, ref["mass"], mask)
    keep = m_ref > 0
    rows: list[dict[str, Any]] = []

    def round_trip(dtype: str, bits: int | None) -> tuple[Any, np.ndarray]:
        """``compress`` / ``decompress(physical=False)`` at one latent precision: the
        compressed jets and the decoder's particles (B, N, 4) ``(E, px, py, pz)`` in node
        order."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cj = lgae_hep.compress(jets, args.model, latent_dtype=dtype, mantissa_bits=bits)
            dj = lgae_hep.decompress(cj, args.model, physical=False)
        if not np.array_equal(np.asarray(ak.to_numpy(cj.jets.n), np.int64), counts):
            raise SystemExit("decoder multiplicities differ from the kept particles")
        out = np.zeros((len(counts), N_PART, 4))
        out[mask] = np.stack([np.asarray(ak.to_numpy(ak.flatten(dj[k])), np.float64)
                              for k in ("E", "px", "py", "pz")], -1)
        return cj, out

    def add(method: str, family: str, precision: Any, payload: dict, lpe: np.ndarray,
            mass: np.ndarray | None, pt_ref_order: np.ndarray, tmp: Path,
            m: np.ndarray | None = None) -> None:
        """One row; ``m``: the jets' masses if not those of ``lpe`` and ``mass``."""
        if m is None:
            m = jet_mass(lpe, mass, mask)
        med, iqr = summary((m / m_ref - 1)[keep])
        pt = np.exp(np.where(mask, lpe[..., 0], 0.0))
        _, pt_iqr = summary((pt / pt_ref_order - 1)[mask])
        rows.append({"method": method, "family": family, "precision": precision,
                     "bytes_per_jet": file_bytes(payload, comp, tmp) / len(counts),
                     "mass_median": med, "mass_iqr": iqr, "pt_rel_iqr": pt_iqr})

    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        # truncation
        for bits in TRUNC_BITS:
            cols = {f: truncate_mantissa(v, bits) for f, v in flat.items()}
            t = padded({f: v.astype(np.float64) for f, v in cols.items()}, counts)
            lpe = np.stack([np.log(np.where(mask, t["pt"], 1.0)), t["eta"], t["phi"]], -1)
            payload = {"PF": ak.zip({f: ak.unflatten(v, counts) for f, v in cols.items()})}
            add(f"truncation {bits}-bit mantissa", "truncation", bits, payload, lpe, t["mass"],
                ref["pt"], tmp)
        # the decoder's prediction from the stored (float16) latent
        t0 = time.perf_counter()
        c, p4 = round_trip("float16", None)
        t_net = time.perf_counter() - t0
        stored = np.asarray(ak.to_numpy(c.jets.latent))
        n_keep = np.asarray(ak.to_numpy(c.jets.n), np.int64)
        pred = log_pt_eta_phi(p4)
        tags = latent_tags(stored)
        # the jet axis (control): log pt 0, the summed particles' eta, phi
        vsum = ak.sum(jets, axis=1)
        axis = np.zeros_like(pred)
        axis[..., 1] = np.asarray(ak.to_numpy(vsum.eta))[:, None]
        axis[..., 2] = np.asarray(ak.to_numpy(vsum.phi))[:, None]
        t_match = 0.0
        side = {f"z{i}": np.ascontiguousarray(stored[:, i]) for i in range(stored.shape[1])}
        side_bytes = {"latent + n": file_bytes({**side, "n": n_keep.astype(np.uint8)}, comp,
                                               tmp) / len(counts),
                      "latent + n + tag": file_bytes({**side, "n": n_keep.astype(np.uint8),
                                                      "tag": tags}, comp, tmp) / len(counts)}
        # the latent alone (what lgae-hep compress stores per jet, with the multiplicity), at
        # each storage precision of compress: the decoder's particles as they are, the jet
        # mass from their 4-vector sum (which decompress's repair of unphysical particles
        # keeps), particles matched to the originals as the hybrid's
        done = {("float16", None): (c, p4)}  # the hybrid's own latent and prediction
        for dtype, bits in LATENT_PRECISIONS:
            cl, pl = done.get((dtype, bits)) or round_trip(dtype, bits)
            sums = pl.sum(1)
            m_dec = np.sqrt(np.maximum(sums[:, 0] ** 2 - (sums[:, 1:] ** 2).sum(-1), 0.0))
            lat = np.asarray(ak.to_numpy(cl.jets.latent))
            pred_l = log_pt_eta_phi(pl)
            order_l = np.maximum(match_to_nodes(orig, pred_l, mask), 0)
            label = dtype + (f", {bits}-bit mantissa" if bits is not None else "")
            add(f"latent alone {model_label(args.model)}, {label}", "latent", label,
                {**{f"z{i}": np.ascontiguousarray(lat[:, i]) for i in range(lat.shape[1])},
                 "n": n_keep.astype(np.uint8)}, pred_l, None,
                np.take_along_axis(ref["pt"], order_l, axis=1), tmp, m=m_dec)
        for delta in DELTAS:
            k = int(round(-np.log2(delta)))
            mbits = max(min(k, 23), 1)
            mass_t = truncate_mantissa(flat["mass"], mbits)
            mass_pad = padded({"m": mass_t.astype(np.float64)}, counts)["m"]
            mass_col = {"mass": ak.unflatten(mass_t, counts)}
            t1 = time.perf_counter()
            q, perm = encode_residuals(orig, pred, mask, delta)
            t_match += time.perf_counter() - t1
            check_tags(stored, tags, n_keep, counts, where="benchmark")
            rec = decode_residuals(pred, q, mask, delta)
            order = np.maximum(perm, 0)
            mass_h = np.take_along_axis(mass_pad, order, axis=1)
            pt_ref_h = np.take_along_axis(ref["pt"], order, axis=1)
            payload = {f"z{i}": np.ascontiguousarray(stored[:, i]) for i in
                       range(stored.shape[1])}
            payload.update(n=n_keep.astype(np.uint8), tag=tags,
                           **int_payload(q, mask, counts),
                           mass=ak.unflatten(np.take_along_axis(
                               padded({"m": mass_t.astype(np.float32)}, counts)["m"], order,
                               axis=1)[mask].astype(np.float32), counts))
            add(f"hybrid {model_label(args.model)}, delta 2^-{k}", "hybrid", delta, payload,
                rec, mass_h, pt_ref_h, tmp)
            # control: no model
            qa = np.rint((orig - axis) / delta)
            qa[..., 2] = np.rint((((orig[..., 2] - axis[..., 2]) + np.pi) % (2 * np.pi) - np.pi)
                                 / delta)
            qa = np.where(mask[..., None], qa, 0).astype(np.int32)
            reca = decode_residuals(axis, qa, mask, delta)
            add(f"quantised, no model, delta 2^-{k}", "control", delta,
                {**int_payload(qa, mask, counts), **mass_col}, reca, mass_pad, ref["pt"], tmp)
    return {"input": str(src), "n_jets": int(len(counts)), "compressor": args.compressor,
            "side_bytes": side_bytes,
            "rows": rows, "network_s": t_net, "matching_s": t_match / len(DELTAS),
            "load": " ".join(f"{x:.1f}" for x in os.getloadavg())}


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| method | bytes/jet | jet mass rel. error median | jet mass IQR | "
             "particle pT_rel IQR |", "|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["family"], -r["bytes_per_jet"])):
        lines.append(f"| {r['method']} | {r['bytes_per_jet']:.1f} | {r['mass_median']:.2g} | "
                     f"{r['mass_iqr']:.3g} | {r['pt_rel_iqr']:.3g} |")
    return "\n".join(lines)


def interpolate(rows: list[dict[str, Any]], family: str, at: float, key: str = "mass_iqr"
                ) -> float:
    """log-log interpolated ``key`` (the jet-mass IQR) of ``family`` at ``at`` bytes/jet (nan
    outside)."""
    pts = sorted((r["bytes_per_jet"], r[key]) for r in rows if r["family"] == family)
    x = np.log([p[0] for p in pts])
    y = np.log([max(p[1], 1e-12) for p in pts])
    if not x[0] <= np.log(at) <= x[-1]:
        return float("nan")
    return float(np.exp(np.interp(np.log(at), x, y)))


def compare(iqr: float, baseline: float, n_jets: int) -> str:
    """"yes" / "no" / "equal within the spread": an IQR of ``n_jets`` values has a relative
    standard error of about ``1.16 / sqrt(n)`` (normal errors); two such IQRs (the baseline
    interpolated between two of them) differ by more than chance only beyond twice the error
    of their ratio, ``2 sqrt(2) 1.16 / sqrt(n)`` (7 % for 2,000 jets)."""
    tol = 2.0 * np.sqrt(2.0) * 1.16 / np.sqrt(max(n_jets, 1))
    if abs(np.log(iqr / baseline)) < tol:
        return "equal within the spread"
    return "yes" if iqr < baseline else "no"


def verdict(rows: list[dict[str, Any]], n_jets: int) -> list[str]:
    out = []
    for r in rows:
        if r["family"] == "truncation":
            continue
        t = interpolate(rows, "truncation", r["bytes_per_jet"])
        if np.isfinite(t):
            out.append(f"| {r['method']} | {r['bytes_per_jet']:.1f} | {r['mass_iqr']:.3g} | "
                       f"{t:.3g} | {compare(r['mass_iqr'], t, n_jets)} |")
    return ["| method | bytes/jet | its jet-mass IQR | truncation's at the same bytes "
            "(log-log interpolated) | smaller? |", "|---|---|---|---|---|", *out]


def reading(res: dict[str, Any]) -> str:
    """Why the hybrid wins or loses, from the numbers: its side information and how its
    residuals compare with the control's at the same delta."""
    rows = res["rows"]
    side = res["side_bytes"]["latent + n + tag"]
    by = {(r["family"], r["precision"]): r for r in rows}
    gaps = [by[("hybrid", d)]["bytes_per_jet"] - by[("control", d)]["bytes_per_jet"]
            for d in DELTAS if ("hybrid", d) in by and ("control", d) in by]
    resid = [g - side for g in gaps]
    n = res["n_jets"]
    wins = [r for r in rows if r["family"] == "hybrid" and np.isfinite(
        t := interpolate(rows, "truncation", r["bytes_per_jet"]))
            and compare(r["mass_iqr"], t, n) == "yes"]
    lines = [
        f"* The hybrid's side information (latent float16 + multiplicity + CRC-32) takes "
        f"{side:.1f} bytes per jet after {res['compressor']} (latent + multiplicity alone: "
        f"{res['side_bytes']['latent + n']:.1f}).",
        f"* At equal delta the hybrid takes {min(gaps):.1f} to {max(gaps):.1f} bytes per jet "
        f"more than the control: its residuals against the decoder cost {min(resid):+.1f} to "
        f"{max(resid):+.1f} bytes per jet compared with residuals against the jet axis. "
        + ("The network's prediction is no closer to the particles than the jet axis "
           "(docs/RESULTS.md has the model's particle resolutions), so the latent is pure "
           "overhead." if min(resid) >= -1.0 else  # nowhere saves more than a byte per jet
           "The network's prediction saves that much in the residuals; whether it wins "
           "depends on the latent's cost."),
        ("* **The hybrid does not beat mantissa truncation at any operating point.**"
         if not wins else f"* The hybrid beats truncation at {len(wins)} operating point(s)."),
        *_latent_reading(rows, n),
        "* The control (uniform quantisation of log pt and of eta, phi relative to the jet "
        "axis, no network) beats truncation at every precision: the gain available here comes "
        "from coding (log pt, eta, phi) with a fixed absolute step instead of float mantissas, "
        "not from the LGAE. A hybrid could win only with a decoder whose particle errors are "
        "well below the particles' spread around the axis (the paper's LGAE-Mix: jet-mass "
        "IQR 0.003; issue 22.2).",
    ]
    return "\n".join(lines)


def _latent_reading(rows: list[dict[str, Any]], n_jets: int) -> list[str]:
    """The latent-alone points against truncation at their bytes (jet mass, particle pT)."""
    out = []
    for r in (r for r in rows if r["family"] == "latent"):
        t_mass = interpolate(rows, "truncation", r["bytes_per_jet"])
        if not np.isfinite(t_mass):
            continue
        t_pt = interpolate(rows, "truncation", r["bytes_per_jet"], "pt_rel_iqr")
        word = {"yes": "**smaller**", "no": "not smaller",
                "equal within the spread": f"equal within the spread of an IQR of {n_jets} "
                                           "jets"}[compare(r["mass_iqr"], t_mass, n_jets)]
        out.append(f"* {r['method']} ({r['bytes_per_jet']:.1f} bytes per jet): jet-mass IQR "
                   f"{r['mass_iqr']:.3g} against truncation's {t_mass:.3g} at the same bytes, "
                   f"{word}; particle pT_rel IQR {r['pt_rel_iqr']:.3g} against {t_pt:.3g}.")
    if out:
        out.append("* The latent alone can at best match truncation, and only on the jet: the "
                   "decoder is trained to keep the jet mass (the jet-mass term) while each "
                   "particle carries its own reconstruction error (the (eta, phi) matching of "
                   "this page also swaps nearby soft particles, which inflates pT_rel). The jet "
                   "mass is a difference of large numbers (m^2 = E^2 - |P|^2), so it needs "
                   "most of the latent's precision: float16 storage loses it.")
    return out


def figure(rows: list[dict[str, Any]], path: Path, model: Any = MODEL) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for family, style in (("truncation", "o-"), ("hybrid", "s-"), ("control", "^--"),
                          ("latent", "*")):
        pts = sorted((r["bytes_per_jet"], r["mass_iqr"]) for r in rows if r["family"] == family)
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label={
            "truncation": "mantissa truncation",
            "hybrid": f"hybrid: {model_label(model)} latent + residuals",
            "control": "quantised residuals, no model",
            "latent": f"{model_label(model)} latent alone"}[family], markersize=10
            if family == "latent" else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bytes per jet (LZMA)")
    ax.set_ylabel("jet-mass resolution (IQR of relative error)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", type=Path, default=None)
    p.add_argument("--n-jets", type=int, default=2000)
    p.add_argument("--model", default=MODEL,
                   help="bundled model name or checkpoint whose latent and decoder the hybrid "
                        "uses (e.g. runs/compression_model/tau_v6/best.pt)")
    p.add_argument("--compressor", choices=("LZMA", "ZLIB"), default="LZMA")
    p.add_argument("--figure", type=Path, default=REPO / "docs/figures/compression_hybrid.png")
    p.add_argument("--doc", type=Path, default=REPO / "docs/COMPRESSION_HYBRID.md")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    res = run(args)
    rows = res["rows"]
    tab, ver = table(rows), "\n".join(verdict(rows, res["n_jets"]))
    print(tab, "\n\n" + ver)
    figure(rows, args.figure, args.model)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    if args.doc:
        cmd = "python benchmarks/hybrid_codec.py" + (
            f" --input {args.input.name}" if args.input else "") + f" --n-jets {args.n_jets}" + (
            f" --model {args.model} --doc {os.path.relpath(args.doc, REPO)} --figure "
            f"{os.path.relpath(args.figure, REPO)}" if args.model != MODEL else "")
        rel_fig = os.path.relpath(args.figure, args.doc.parent)
        args.doc.write_text(DOC.format(cmd=cmd, input=Path(res["input"]).name,
                                       n=res["n_jets"], reading=reading(res),
                                       comp=res["compressor"], table=tab, verdict=ver,
                                       figure=rel_fig, load=res["load"], model=args.model,
                                       net=res["network_s"], match=res["matching_s"]))
        print(f"wrote {args.doc}")


DOC = """# The hybrid codec: LGAE latent + quantised residuals vs mantissa truncation

*Generated by `{cmd}`; do not edit by hand.* Issue 22.3.

Can a learned codec beat NanoAOD-style mantissa truncation at equal bytes per jet? The
"latent alone" rows are what `lgae-hep compress` stores (the latent at one of its storage
precisions, float32 by default, and the multiplicity), their jet mass that of the decoded
particles' 4-vector sum (what `decompress` writes). The hybrid stores the latent plus each
particle's quantised residual against the decoder's prediction
(`lgae_hep.compression.hybrid`: originals matched to the decoder nodes by the Hungarian
algorithm on (eta, phi) and stored in node order, residuals of (log pt, eta, phi) at step
delta, a CRC-32 of the latent per jet so residuals never decode against the wrong latent).
The control quantises the same residuals against the jet axis instead of the network.

* Jets: {n} jets of `{input}`, the 30 hardest particles; the hybrid's model: `{model}`.
* Bytes per jet: the payload added to a ROOT file, {comp} (the jet momentum that fixes the
  decoder's frame is not counted, as in `benchmarks/rate_distortion.py`).
* Jet-mass resolution: IQR of the relative error of the 30-particle jet mass.
* Load average at the end: {load} (2 cores); network {net:.1f} s, matching {match:.1f} s per
  precision.

{table}

![bytes per jet vs jet-mass resolution]({figure})

## At equal bytes per jet

{verdict}

## Reading it

{reading}
"""


if __name__ == "__main__":
    main()
