"""Rate-distortion of LGAE compression against what analysts already do, plus throughput.

    python benchmarks/rate_distortion.py                       # 2,500 jets per class, ~6 min
    python benchmarks/rate_distortion.py --n-jets 500          # quick
    python benchmarks/rate_distortion.py --n-jets 10000 runs/anomaly_scores/*/best.pt   # full

(Not ``benchmarks/compression.py``, the name issue 15 suggests: a script runs with its folder
first on ``sys.path``, and uproot imports the Python 3.14 standard-library package
``compression``, so that name broke every script in ``benchmarks/``.)

Data: the MPI-on generated test jets ``data/generated/anomaly_scores/test_{qcd,t,w,z}_*.root``
(PFNano layout), the N = 30 hardest particles per jet (what the LGAE reconstructs; the raw
baselines store the same 30 particles, so both sides describe the same information).

Methods (bytes per jet = what the data that rebuild the particles add to a ROOT file, i.e. its
size minus that of the same file with no entries, divided by the number of jets; the jet
collection's own kinematics are in NanoAOD anyway):

* ``raw``: the particles' ``pt, eta, phi, mass`` as jagged float32 branches, with the mantissa
  truncated NanoAOD-style to 23 (lossless), 16, 12, 10, 8, 6, 4, 3 and 2 bits
  (:func:`lgae_hep.compression.truncate_mantissa`), each written with LZ4, ZLIB and LZMA
  (and ZSTD when the ``zstandard`` package is installed);
* ``lgae``: for every bundled model (:func:`lgae_hep.zoo.bundled_models`) and every checkpoint
  given on the command line, the latent (float32, float16, float32 with 10 and 7 mantissa
  bits) plus the kept multiplicity (uint8) and, for mass-normalised models, the jet mass
  (float32), written with the same algorithms.

Quality, on the decompressed jets (LGAE: what ``lgae-hep decompress`` writes, ``mass = max(m,
0)``) against the input: Hungarian-matched relative errors (median and IQR) of the particles'
pT_rel, eta_rel, phi_rel and of jet mass and pT (:func:`lgae_hep.metrics.reconstruction_metrics`);
on a subset (``--n-obs-jets``) the median absolute change of the anomaly score (default model
and its card's metric, relative), tau21 and D2. The jet-mass resolution is the IQR of the
relative jet-mass error. Throughput and peak RSS of ``compress_files`` / ``decompress_file``
are measured in child processes against a baseline measured in the same run (read the file
with ``read_nanoaod`` and write it back with ``write_pfnano``, LZMA), and against the network
alone (encode / decode on ready tensors).

Writes ``docs/figures/compression_rate_distortion.png`` and a JSON of every number (``--json``)
and prints a markdown table.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the standard library's ``compression`` package (Python 3.14, and its
# backports that uproot's dependencies import): keep its own folder off the import path.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
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
DATA = REPO / "data" / "generated" / "anomaly_scores"
CLASSES = ("qcd", "t", "w", "z")
RAW_BITS = (23, 16, 12, 10, 8, 6, 4, 3, 2)
LATENT_PRECISIONS = (("float32", None), ("float16", None), ("float32", 10), ("float32", 7))


def compressions() -> dict[str, Any]:
    out = {"LZ4": uproot.LZ4(4), "ZLIB": uproot.ZLIB(6), "LZMA": uproot.LZMA(9)}
    try:
        import zstandard  # noqa: F401

        out["ZSTD"] = uproot.ZSTD(5)
    except ImportError:
        pass
    return out


def test_files() -> dict[str, Path]:
    files = {}
    for c in CLASSES:
        found = sorted(glob.glob(str(DATA / f"test_{c}_*_n10000_s40*.root")))
        if not found:
            raise SystemExit(f"missing test file for class {c!r} under {DATA}; generate the "
                             "anomaly-score data sets first (benchmarks/anomaly_scores.py)")
        files[c] = Path(found[0])
    return files


def load_jets(n_jets: int, n_particles: int) -> tuple[ak.Array, np.ndarray]:
    from lgae_hep.data import read_nanoaod

    parts, labels = [], []
    for i, path in enumerate(test_files().values()):
        j = read_nanoaod(path, max_particles=n_particles, flat=True, progress=False)[:n_jets]
        parts.append(j)
        labels.append(np.full(len(j), i))
    jets = ak.concatenate(parts)
    jets = ak.zip({f: jets[f] for f in ("pt", "eta", "phi", "mass")}, with_name="Momentum4D")
    return ak.to_packed(jets), np.concatenate(labels)


def file_bytes(columns: dict[str, Any], compression: Any, tmp: Path) -> int:
    """Bytes that ``columns`` (one entry per jet) add to a one-tree ROOT file: the size of the
    file minus that of the same file with no entries (headers, streamers, the tree's own
    metadata), so that small samples are not charged the fixed overhead of a file."""
    sizes = []
    for fill in (False, True):
        path = tmp / f"payload_{int(fill)}.root"
        with uproot.recreate(path, compression=compression) as f:
            f.mktree("Jets", {k: (v.type if isinstance(v, ak.Array) else v.dtype)
                              for k, v in columns.items()})
            if fill:
                f["Jets"].extend(columns)
        sizes.append(path.stat().st_size)
    return sizes[1] - sizes[0]


def padded(jets: ak.Array, n: int) -> tuple[np.ndarray, np.ndarray]:
    from lgae_hep.data import to_tensors

    jt = to_tensors(jets, n, dtype=np.float64, backend="numpy")
    return jt.p4, jt.mask


def quality(ref: dict[str, Any], jets_out: ak.Array, n: int, obs_idx: np.ndarray,
            score_model: Any) -> dict[str, Any]:
    """Reconstruction metrics and observable changes of ``jets_out`` against the input."""
    import lgae_hep
    from lgae_hep import observables
    from lgae_hep.metrics import reconstruction_metrics

    p4, mask = padded(jets_out, n)
    m = reconstruction_metrics(ref["p4"], ref["mask"], p4, mask, progress=False)
    out = {f"particle_{k}": {"median": v["median"], "iqr": v["iqr"]}
           for k, v in m["particle"].items()}
    out.update({f"jet_{k}": {"median": v["median"], "iqr": v["iqr"]}
                for k, v in m["jet"].items() if k in ("mass", "pt")})
    sub = jets_out[obs_idx]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = np.asarray(ak.to_numpy(lgae_hep.score(sub, score_model)), np.float64)
        t21 = np.asarray(ak.to_numpy(observables.tau21(sub)), np.float64)
        d2 = np.asarray(ak.to_numpy(observables.energy_correlation(sub).d2), np.float64)

    def med_rel(a: np.ndarray, b: np.ndarray) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.abs(a - b) / np.abs(b)
        r = r[np.isfinite(r)]
        return float(np.median(r)) if r.size else float("nan")

    out["score_change"] = med_rel(s, ref["score"])
    out["tau21_change"] = med_rel(t21, ref["tau21"])
    out["d2_change"] = med_rel(d2, ref["d2"])
    return out


# --------------------------------------------------------------------------------------------
# methods
# --------------------------------------------------------------------------------------------


def raw_methods(jets: ak.Array, ref: dict, n: int, obs_idx: np.ndarray, score_model: Any,
                tmp: Path, rows: list[dict]) -> None:
    from tqdm.auto import tqdm

    from lgae_hep.compression import truncate_mantissa

    counts = ak.num(jets)
    flat = {f: np.asarray(ak.to_numpy(ak.flatten(jets[f])), np.float32)
            for f in ("pt", "eta", "phi", "mass")}
    comps = compressions()
    for bits in tqdm(RAW_BITS, desc="raw constituents", unit="precision"):
        cols = {f: truncate_mantissa(v, bits) for f, v in flat.items()}
        out = ak.unflatten(ak.zip(cols, with_name="Momentum4D"), counts)
        q = quality(ref, out, n, obs_idx, score_model)
        payload = {"PF": ak.zip({f: ak.unflatten(v, counts) for f, v in cols.items()})}
        for cname, comp in comps.items():
            rows.append({"method": f"raw float32 {bits}-bit mantissa" if bits < 23 else
                         "raw float32", "family": "raw", "curve": f"raw + {cname}",
                         "compression": cname, "precision": bits,
                         "bytes_per_jet": file_bytes(payload, comp, tmp) / len(jets), **q})


def lgae_methods(name: str, model: Any, jets: ak.Array, ref: dict, n: int, obs_idx: np.ndarray,
                 score_model: Any, tmp: Path, rows: list[dict]) -> None:
    from tqdm.auto import tqdm

    import lgae_hep
    from lgae_hep.compression import CompressedJets, truncate_mantissa

    comps = compressions()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c32 = lgae_hep.compress(jets, model)
    z32 = np.asarray(ak.to_numpy(c32.jets.latent), np.float32)
    n_keep = np.asarray(ak.to_numpy(c32.jets.n), np.uint8)
    normalised = c32.metadata["model"]["normalization"] != "none"
    p = np.stack([ak.to_numpy(c32.jets[k]) for k in ("E", "px", "py", "pz")], 1)
    mass = np.sqrt(np.clip(p[:, 0] ** 2 - (p[:, 1:] ** 2).sum(1), 0, None)).astype(np.float32)
    width = z32.shape[1]
    for dtype, bits in tqdm(LATENT_PRECISIONS, desc=f"{name} latents", unit="precision"):
        if dtype == "float16":
            stored = z32.astype(np.float16)
            latent = stored.view(np.uint16)
        else:
            stored = z32 if bits is None else truncate_mantissa(z32, bits)
            latent = stored
        jets_c = ak.with_field(c32.jets, ak.from_numpy(latent, regulararray=True), "latent")
        meta = {**c32.metadata, "latent_dtype": dtype, "mantissa_bits": bits}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = lgae_hep.decompress(CompressedJets(jets_c, meta), model)
        out = ak.zip({f: out[f] for f in ("pt", "eta", "phi", "mass")}, with_name="Momentum4D")
        q = quality(ref, out, n, obs_idx, score_model)
        payload = {f"z{i}": np.ascontiguousarray(latent[:, i]) for i in range(width)}
        payload["n"] = n_keep
        # decompress also decodes each jet in its rest frame, found from the stored jet
        # 4-momentum; by equivariance any approximate frame gives the same jets up to rounding,
        # so the momentum is counted only where it carries information: the mass-normalised
        # model's unit
        if normalised:
            payload["mass"] = mass
        label = dtype if bits is None else f"float32 {bits}-bit mantissa"
        for cname, comp in comps.items():
            rows.append({"method": f"{name} latent {label}", "family": "lgae",
                         "curve": f"{name} + {cname}", "compression": cname,
                         "precision": label, "latent_size": width,
                         "normalization": c32.metadata["model"]["normalization"],
                         "bytes_per_jet": file_bytes(payload, comp, tmp) / len(jets), **q})


# --------------------------------------------------------------------------------------------
# throughput (child processes, for peak RSS)
# --------------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB): ``VmHWM`` (reset by ``exec``, unlike
    ``ru_maxrss``, which a child inherits from the process that forked it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    import torch

    op, inp, out = args.child
    model = args.child_model
    import lgae_hep.compression  # noqa: F401 - imports counted before the peak
    import lgae_hep.data  # noqa: F401

    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    info: dict[str, Any] = {}
    if op == "compress":
        from lgae_hep.compression import compress_files

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = compress_files([inp], out, model, progress=False)
        info = {"n_jets": s["n_jets"], "bytes": s["bytes"]}
    elif op == "decompress":
        from lgae_hep.compression import decompress_file

        s = decompress_file(inp, out, progress=False)
        info = {"n_jets": s["n_jets"], "bytes": s["bytes"]}
    elif op == "baseline":
        from lgae_hep.data import read_nanoaod, write_pfnano

        jets = read_nanoaod(inp, max_particles=None, progress=False)
        write_pfnano(out, jets, compression=uproot.LZMA(9))
        info = {"n_jets": int(ak.sum(ak.num(jets))), "bytes": Path(out).stat().st_size}
    elif op == "network":
        import lgae_hep
        from lgae_hep.data import read_nanoaod, to_tensors

        m = lgae_hep.load_model(model)
        jets = read_nanoaod(inp, max_particles=None, flat=True, progress=False)
        jt = to_tensors(jets, m.config["num_particles"], dtype=m.dtype, backend="torch")
        lat = []
        t0 = time.perf_counter()
        with torch.inference_mode():
            for s in range(0, len(jets), 1024):
                lat.append(m.encode(jt.p4[s:s + 1024], jt.mask[s:s + 1024])[0])
            t1 = time.perf_counter()
            for z in lat:
                m.decode(z)
        info = {"n_jets": len(jets), "encode_s": t1 - t0,
                "decode_s": time.perf_counter() - t1}
    info["seconds"] = time.perf_counter() - t0
    info["max_rss_mb"] = peak_rss_mb()
    info["imports_rss_mb"] = rss0
    info["threads"] = torch.get_num_threads()
    print("RESULT " + json.dumps(info))


def run_child(op: str, inp: Path, out: Path, model: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", op, str(inp), str(out), "--child-model", model]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child {op} failed:\n{res.stderr[-3000:]}")


def throughput(model: str, tmp: Path) -> dict[str, Any]:
    src = test_files()["qcd"]
    comp, dec, base = tmp / "c.root", tmp / "d.root", tmp / "b.root"
    import os

    out = {"input": str(src), "model": model,
           "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
           "baseline": run_child("baseline", src, base, model),
           "compress": run_child("compress", src, comp, model),
           "decompress": run_child("decompress", comp, dec, model),
           "network": run_child("network", src, comp, model)}
    out["input_bytes"] = src.stat().st_size
    return out


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def fmt(x: float, digits: int = 3) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.{digits}g}"


def table(rows: list[dict]) -> str:
    head = ("| method | comp. | bytes/jet | pT_rel err med (IQR) | eta_rel | phi_rel | "
            "jet mass err med (IQR) | jet pT | score chg | tau21 chg | D2 chg |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    def q(r: dict, k: str) -> str:
        return f"{fmt(r[k]['median'], 2)} ({fmt(r[k]['iqr'], 2)})"

    for r in rows:
        lines.append(f"| {r['method']} | {r['compression']} | {r['bytes_per_jet']:.1f} | "
                     f"{q(r, 'particle_pt_rel')} | {q(r, 'particle_eta_rel')} | "
                     f"{q(r, 'particle_phi_rel')} | {q(r, 'jet_mass')} | {q(r, 'jet_pt')} | "
                     f"{fmt(r['score_change'], 2)} | {fmt(r['tau21_change'], 2)} | "
                     f"{fmt(r['d2_change'], 2)} |")
    return head + "\n".join(lines) + "\n"


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    floor = 1e-8
    curves: dict[str, list[dict]] = {}
    for r in rows:
        if r["family"] == "raw" or r["compression"] == "LZMA":
            curves.setdefault(r["curve"], []).append(r)
    for name, rs in curves.items():
        rs = sorted(rs, key=lambda r: r["bytes_per_jet"])
        x = [r["bytes_per_jet"] for r in rs]
        y = [max(r["jet_mass"]["iqr"], floor) for r in rs]
        style = "--" if name.startswith("raw") else "-"
        ax.plot(x, y, style, marker="o" if style == "-" else "s", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bytes per jet on disk (30 particles, ROOT file)")
    ax.set_ylabel("jet-mass resolution: IQR of (m_dec - m) / m")
    ax.set_title(f"Rate-distortion (lossless raw float32 drawn at {floor:g})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoints", nargs="*", help="extra LGAE checkpoints to compare")
    p.add_argument("--n-jets", type=int, default=2500, help="test jets per class (max 10000)")
    p.add_argument("--n-obs-jets", type=int, default=250,
                   help="jets per class for the score / tau21 / D2 changes")
    p.add_argument("--figure", default=str(REPO / "docs" / "figures" /
                                            "compression_rate_distortion.png"))
    p.add_argument("--json", default=None, help="write every number to this JSON file")
    p.add_argument("--no-throughput", action="store_true", help="skip the throughput runs")
    p.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-model", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return

    import lgae_hep
    from lgae_hep import observables
    from lgae_hep.zoo import DEFAULT_MODEL, bundled_models

    t_start = time.perf_counter()
    models = {name: name for name in bundled_models()}
    for ck in args.checkpoints:
        path = Path(ck)
        models[f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem] = str(path)
    n = 30
    jets, labels = load_jets(args.n_jets, n)
    rng = np.random.default_rng(0)
    obs_idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == i))
                                      [: args.n_obs_jets] for i in range(len(CLASSES))]))
    score_model = lgae_hep.load_model(DEFAULT_MODEL)
    p4, mask = padded(jets, n)
    sub = jets[obs_idx]
    ref = {"p4": p4, "mask": mask,
           "score": np.asarray(ak.to_numpy(lgae_hep.score(sub, score_model)), np.float64),
           "tau21": np.asarray(ak.to_numpy(observables.tau21(sub)), np.float64),
           "d2": np.asarray(ak.to_numpy(observables.energy_correlation(sub).d2), np.float64)}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        raw_methods(jets, ref, n, obs_idx, score_model, tmp, rows)
        for name, m in models.items():
            model = lgae_hep.load_model(m)
            if model.config.get("num_particles") != n or not hasattr(model, "tau_latent"):
                print(f"skipping {name}: not an LGAE on {n} particles")
                continue
            lgae_methods(name, model, jets, ref, n, obs_idx, score_model, tmp, rows)
        tp = None if args.no_throughput else throughput(DEFAULT_MODEL, tmp)
    figure(rows, Path(args.figure))
    print(f"\n## Rate-distortion: {len(jets)} test jets ({args.n_jets} per class: "
          f"{', '.join(CLASSES)}), score/tau21/D2 on {len(obs_idx)}; score model "
          f"{DEFAULT_MODEL} ({lgae_hep.recommended_metric(DEFAULT_MODEL)})\n")
    print(table(rows))
    if tp is not None:
        b, c, dd, net = tp["baseline"], tp["compress"], tp["decompress"], tp["network"]
        print(f"## Throughput on {tp['input']} ({c['n_jets']} jets, model {tp['model']}, "
              f"{c['threads']} torch threads; load average before: {tp['load']})\n")
        print("| step | jets/s | vs baseline | peak RSS (MB) | peak RSS above imports (MB) | "
              "bytes/jet |\n|---|---|---|---|---|---|")
        rb = b["n_jets"] / b["seconds"]
        for name, r in (("baseline: read_nanoaod + write_pfnano (LZMA)", b),
                        ("lgae-hep compress (LZMA)", c), ("lgae-hep decompress (LZ4)", dd)):
            rate = r["n_jets"] / r["seconds"]
            print(f"| {name} | {rate:.0f} | {rate / rb:.2f}x | {r['max_rss_mb']:.0f} | "
                  f"{r['max_rss_mb'] - r['imports_rss_mb']:.0f} | "
                  f"{r['bytes'] / r['n_jets']:.1f} |")
        for step in ("encode", "decode"):
            rate = net["n_jets"] / net[f"{step}_s"]
            print(f"| network alone: {step} (ready tensors) | {rate:.0f} | {rate / rb:.2f}x "
                  "| | | |")
        print(f"\ninput file: {tp['input_bytes'] / c['n_jets']:.1f} bytes/jet (all constituents,"
              " all branches, LZ4)")
    print(f"\nfigure: {args.figure}  ({time.perf_counter() - t_start:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "throughput": tp,
                                               "n_jets_per_class": args.n_jets}, indent=1,
                                              default=str))


if __name__ == "__main__":
    main()
