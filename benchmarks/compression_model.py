"""Training recipe for a compression LGAE (issue 22.2): LGAE-Mix at latent sizes spanning the
paper's compression rates, trained for per-particle fidelity, evaluated against the paper.

    python benchmarks/compression_model.py                        # list the configs (no work)
    python benchmarks/compression_model.py --train --tau-v 4 --budget-min 60   # one size
    python benchmarks/compression_model.py --train --budget-min 60             # every size
    python benchmarks/compression_model.py --eval                 # table of what was trained

Recipe (what the bundled anomaly models lack for compression, docs/RESULTS.md#compression):

* **model**: LGAE-Mix (``aggregation="mix"``: the decoder's nodes keep their order, so a
  per-particle loss is defined), ``tau_v`` in :data:`TAU_V` (compression rates 0.20-0.56 of the
  paper's ``30 x 3``, :attr:`LGAE.compression_rate`), default channels, float32.
* **loss**: ``"mse"``, the order-preserving Cartesian squared error of
  :func:`lgae_hep.losses.mse`: every particle's energy and 3-momentum count, which the angular
  ``chamfer-dr`` of the anomaly models does not constrain.
* **data**: the MPI-on QCD training jets of ``benchmarks/anomaly_scores.py``
  (``data/generated/anomaly_scores/train_qcd_*.root``), the 30 hardest particles, 10 %
  validation; evaluation on the QCD test file.
* **fit**: :func:`lgae_hep.train.fit` defaults (batch 64, lr 3e-3, plateau schedule, early
  stopping), a wall-clock budget per size (``--budget-min``), checkpoints under
  ``runs/compression_model/tau_v<k>/``.
* **evaluation** (``--eval``): :func:`lgae_hep.metrics.reconstruction_metrics` on the test
  jets (Hungarian-matched, as the paper): median and IQR of the relative jet-mass error and of
  the particles' pT_rel / eta_rel / phi_rel errors, beside the paper's LGAE-Mix targets
  (compression rate <= 0.62: jet-mass median <= 1e-3, IQR <= 0.003).

Nothing is trained unless ``--train`` is given (it takes the budget per size on 2 cores).
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # keep benchmarks/ off the import path (see rate_distortion.py)

import argparse  # noqa: E402
import copy  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "generated" / "anomaly_scores"
OUT = REPO / "runs" / "compression_model"
TAU_V = (2, 3, 4, 5, 6)
N_PART = 30
TARGET = {"rate": 0.62, "mass_median": 1e-3, "mass_iqr": 3e-3}


def config(tau_v: int, output: str = "free") -> dict:
    """The recipe's model config; ``output`` ``"lightlike"`` / ``"massive"``: with the lab time
    direction as a reference vector and that decoder output (decoded particles massless, or
    with a learned mass, physical by construction, issue 22.1)."""
    cfg = {"architecture": "lgae", "num_particles": N_PART, "aggregation": "mix",
           "tau_v": int(tau_v), "dtype": "float32"}
    if output != "free":
        cfg.update(references=["time"], output=output)
    return cfg


def variant(output: str = "free", mass_weight: float = 0.0, momentum_weight: float = 0.0
            ) -> str:
    """The suffix of a run's name and docs block: decoder output, jet-mass and jet-momentum
    weights (empty for the default free output without either term)."""
    return (("" if output == "free" else f"-{output}")
            + (f"-mw{mass_weight:g}" if mass_weight else "")
            + (f"-pw{momentum_weight:g}" if momentum_weight else ""))


def output_flag(output: str, mass_weight: float = 0.0, momentum_weight: float = 0.0) -> str:
    """The command-line options that select ``output`` and the weights (empty for the
    defaults)."""
    return (("" if output == "free" else f" --output {output}")
            + (f" --mass-weight {mass_weight:g}" if mass_weight else "")
            + (f" --momentum-weight {momentum_weight:g}" if momentum_weight else ""))


def run_name(tau_v: int, output: str = "free", mass_weight: float = 0.0,
             momentum_weight: float = 0.0) -> str:
    """The run directory under :data:`OUT` of one config."""
    return f"tau_v{tau_v}" + variant(output, mass_weight, momentum_weight)


def _shown(path: Path) -> str:
    """``path`` relative to the checkout when inside it (as docs and cards name files), else
    absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def data_file(kind: str) -> Path:
    found = sorted(glob.glob(str(DATA / f"{kind}_qcd_qcd_*.root")))
    if not found:
        raise SystemExit(f"no {kind} QCD file under {DATA}: generate the anomaly-score data "
                         "sets first (python benchmarks/anomaly_scores.py --stages data)")
    return Path(found[0])


def list_configs() -> None:
    from lgae_hep.models import LGAE

    print("| tau_v | latent reals | compression rate (paper, 30 x 3) | (30 x 4) |")
    print("|---|---|---|---|")
    for tv in TAU_V:
        cfg = {k: v for k, v in config(tv).items() if k != "architecture"}
        m = LGAE(**cfg)
        r = m.compression_rate
        print(f"| {tv} | {m.latent_size} | {r['paper']:.3f} | {r['p4']:.3f} |")


def train(tau_v: int, budget_min: float, n_jets: int | None, output: str = "free",
          mass_weight: float = 0.0, init: Path | None = None, momentum_weight: float = 0.0,
          control: str = "") -> None:
    """Train (or resume) one config; ``init``: start from that checkpoint's weights (a model
    of the same config) instead of a fresh initialisation; ``control``: a name for a run that
    the other options do not tell apart (``runs/compression_model/<run name>-<control>``,
    e.g. a warm start continued without the jet terms); such runs are evaluated with
    ``--checkpoint`` and never bundled."""
    import lgae_hep
    from lgae_hep.data import read_nanoaod
    from lgae_hep.train import fit

    jets = read_nanoaod(data_file("train"), max_particles=N_PART, flat=True, progress=False)
    if n_jets:
        jets = jets[:n_jets]
    model = config(tau_v, output)
    out_dir = OUT / (run_name(tau_v, output, mass_weight, momentum_weight)
                     + (f"-{control}" if control else ""))
    info = {"recipe": "benchmarks/compression_model.py", "issue": "22.2",
            "budget_min": budget_min}
    if init is not None and not (out_dir / "last.pt").exists():
        start = lgae_hep.load_model(init)
        want = {k: v for k, v in model.items() if k != "architecture"}
        got = {k: start.config.get(k) for k in want}
        if got != want:
            raise SystemExit(f"--init {init}: its config {got} is not this run's {want}")
        # load_model's models are frozen and cached: train a copy
        model = copy.deepcopy(start).requires_grad_(True)
        info["init"] = _shown(Path(init))
    res = fit(model, jets, loss="mse", out_dir=out_dir, mass_weight=mass_weight,
              momentum_weight=momentum_weight, max_seconds=60.0 * budget_min, epochs=1000,
              resume=True, extra_info=info)
    print(f"tau_v={tau_v}: best epoch {res.best_epoch}, val loss {res.best_val_loss:.4g}, "
          f"{res.seconds / 60:.1f} min -> {res.out_dir}")


def padded_p4(rec, n: int):
    """``(E, px, py, pz)`` (B, n, 4) float64 and mask (B, n) of reconstructed jets, in their
    output order, whatever their 4-vectors (spacelike or E < 0 included)."""
    import awkward as ak
    import numpy as np

    counts = ak.to_numpy(ak.num(rec, axis=1))
    mask = np.arange(n)[None, :] < counts[:, None]
    p4 = np.zeros((len(counts), n, 4))
    for k, name in enumerate(("E", "px", "py", "pz")):
        flat = ak.to_numpy(ak.flatten(getattr(rec, name), axis=None)).astype(np.float64)
        p4[..., k][mask] = flat
    return p4, mask


def checkpoints(output: str = "free", mass_weight: float = 0.0, momentum_weight: float = 0.0
                ) -> list[Path]:
    """The trained runs' best checkpoints of one decoder output and jet-mass weight (run
    names of :func:`run_name`)."""
    want = variant(output, mass_weight, momentum_weight)
    return [c for c in sorted(OUT.glob("tau_v*/best.pt"))
            if c.parent.name[len(c.parent.name.split("-")[0]):] == want]


def evaluate(n_jets: int, only: list[Path] | None = None, split: str = "test") -> list[dict]:
    """Fidelity of each checkpoint on the first ``n_jets`` QCD jets of ``split`` ("val":
    the validation file, where choices between runs are made; "test": the test file)."""
    import numpy as np

    import lgae_hep
    from lgae_hep.data import read_nanoaod, to_tensors
    from lgae_hep.metrics import reconstruction_metrics

    jets = read_nanoaod(data_file(split), max_particles=N_PART, flat=True,
                        progress=False)[:n_jets]
    ref = to_tensors(jets, N_PART, dtype=np.float64, backend="numpy")
    rows = []
    for ckpt in (checkpoints() if only is None else only):
        model = lgae_hep.load_model(ckpt)
        rec = lgae_hep.reconstruct(jets, model, progress=False)
        # the network's own output 4-vectors, padded: not to_tensors, whose bad-input policy
        # flags (and zeroes) every jet with a spacelike output particle
        p4, mask = padded_p4(rec, N_PART)
        m = reconstruction_metrics(ref.p4, ref.mask, p4, mask, progress=False)
        spacelike = (p4[..., 0] ** 2 < (p4[..., 1:] ** 2).sum(-1)) & mask
        row = {"checkpoint": _shown(ckpt),
               "rate": model.compression_rate["paper"],
               "spacelike_particle_fraction": float(spacelike.sum() / max(mask.sum(), 1)),
               "negative_energy_fraction": float(((p4[..., 0] < 0) & mask).sum()
                                                 / max(mask.sum(), 1)),
               **{f"{k}_{s}": m["jet"][k][s] for k in ("mass", "pt") for s in ("median", "iqr")},
               **{f"particle_{k}_{s}": v[s] for k, v in m["particle"].items()
                  for s in ("median", "iqr")}}
        hist = OUT / ckpt.parent.name / "metrics.json"  # fit's one row per epoch
        if hist.exists():
            row["epochs"] = len(json.loads(hist.read_text()))
        row["meets_target"] = bool(row["rate"] <= TARGET["rate"]
                                   and abs(row["mass_median"]) <= TARGET["mass_median"]
                                   and row["mass_iqr"] <= TARGET["mass_iqr"])
        rows.append(row)
    if not rows:
        print(f"nothing trained under {OUT}: run with --train first")
        return rows
    print(table(rows, n_jets, split))
    return rows


def table(rows: list[dict], n_jets: int, split: str = "test") -> str:
    """The markdown table of :func:`evaluate`'s rows."""
    keys = [k for k in rows[0] if k.startswith("particle_")]
    lines = ["| checkpoint | epochs | rate | jet mass median (IQR) | jet pT median (IQR) | "
             + " | ".join(k.replace("particle_", "") for k in keys)
             + " | spacelike / E < 0 particles | target |",
             "|---|---|---|---|---|" + "---|" * len(keys) + "---|---|"]
    for r in rows:
        lines.append(
            f"| `{r['checkpoint']}` | {r.get('epochs', '-')} | {r['rate']:.3f} | "
            f"{r['mass_median']:.3g} ({r['mass_iqr']:.3g}) | {r['pt_median']:.3g} "
            f"({r['pt_iqr']:.3g}) | " + " | ".join(f"{r[k]:.3g}" for k in keys)
            + f" | {r['spacelike_particle_fraction']:.1%} / {r['negative_energy_fraction']:.1%}"
            + f" | {'met' if r['meets_target'] else 'not met'} |")
    lines.append(f"\nQCD {split} jets: the first {n_jets} of the MPI-on {split} file; particles "
                 "Hungarian-matched (`lgae_hep.metrics.reconstruction_metrics`). The paper's "
                 f"LGAE-Mix target: compression rate <= {TARGET['rate']}, jet-mass median <= "
                 f"{TARGET['mass_median']} and IQR <= {TARGET['mass_iqr']}.")
    return "\n".join(lines)


def write_docs(rows: list[dict], n_jets: int, path: Path = REPO / "docs" / "RESULTS.md",
               output: str = "free", mass_weight: float = 0.0, split: str = "test",
               momentum_weight: float = 0.0) -> None:
    """Put the table into ``path`` between the ``compression-model`` markers (appended to the
    compression section the first time); another ``output`` / ``mass_weight`` / ``split``:
    the ``compression-<variant>[-val]`` markers (the table of those runs)."""
    v = variant(output, mass_weight, momentum_weight)
    name = ("compression-model" if not v else f"compression{v}") + ("-val" if split == "val"
                                                                    else "")
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    on = "" if split == "test" else f" --split {split}"
    body = (f"{begin}\nGenerated by `python benchmarks/compression_model.py --eval"
            f"{output_flag(output, mass_weight, momentum_weight)}{on} "
            f"--n-test {n_jets} --write-docs`.\n\n{table(rows, n_jets, split)}\n{end}")
    text = path.read_text()
    if begin in text:
        head, rest = text.split(begin, 1)
        text = head + body + rest.split(end, 1)[1]
    else:
        anchor = "<!-- compression:end -->"
        heading = ("### A model trained for compression (issue 22.2)" if output == "free" else
                   f"### Decoder output {output!r}: physical by construction (issue 22.1)")
        if mass_weight:
            heading += f", with the jet-mass term (weight {mass_weight:g})"
        if momentum_weight:
            heading += f", with the jet 4-momentum term (weight {momentum_weight:g})"
        if split != "test":
            heading += f", on the {split} jets"
        text = text.replace(anchor, heading + "\n\n" + body + "\n\n" + anchor)
    path.write_text(text)


def _keep_previous(pretrained: Path, model) -> str | None:
    """Keep the bundled ``lgae-compress`` about to be replaced as ``lgae-compress-v<k>`` (the
    next free k; weights copied byte for byte, card renamed), so that files compressed with it
    still decompress (:func:`lgae_hep.compression.jets.model_for` finds a bundled model by the
    file hash a compressed file records). Returns the kept name (None: nothing bundled, or
    the bundled weights are ``model``'s)."""
    import shutil

    import lgae_hep
    from lgae_hep.compression.jets import model_checksum

    card_path, weights = pretrained / "lgae-compress.json", pretrained / "lgae-compress.pt"
    if not (card_path.exists() and weights.exists()):
        return None
    if model_checksum(lgae_hep.load_model(weights)) == model_checksum(model):
        return None
    k = 1
    while (pretrained / f"lgae-compress-v{k}.json").exists():
        k += 1
    name = f"lgae-compress-v{k}"
    card = json.loads(card_path.read_text())
    card.update(name=name, file=f"{name}.pt",
                purpose="superseded compression model, kept so that files compressed with it "
                        "still decompress (found by the file hash they record); compress uses "
                        "lgae-compress")
    shutil.copyfile(weights, pretrained / f"{name}.pt")
    (pretrained / f"{name}.json").write_text(json.dumps(card, indent=1) + "\n")
    return name


def _start_record(init: Path, base: Path, bundled_by: str) -> dict | None:
    """The training record of the run a warm-started run began from: ``base`` (this recipe's
    run without the jet terms) or a model file whose card says it was bundled from that run
    (``bundled_by`` ends its retrain command); None for anything else."""
    if init.resolve() == base.resolve():
        hist = json.loads((base.parent / "metrics.json").read_text())
        return {"run": _shown(base), "epochs": len(hist),
                "train_seconds": float(sum(h["seconds"] for h in hist))}
    card_path = init.with_suffix(".json")
    if not card_path.exists():
        return None
    card = json.loads(card_path.read_text())
    if not str(card.get("retrain", "")).endswith(bundled_by):
        return None
    t = card.get("training") or {}
    return {"run": _shown(base),
            "weights_from": f"{_shown(init)}: the {card.get('name')} bundled from "
                            "that run before this one",
            "epochs": t.get("epochs"), "train_seconds": t.get("train_seconds"),
            "its_fidelity": card.get("fidelity")}


def bundle(tau_v: int, n_jets: int, pretrained: Path = REPO / "models" / "pretrained",
           output: str = "free", mass_weight: float = 0.0, momentum_weight: float = 0.0
           ) -> None:
    """Bundle ``runs/compression_model/tau_v<k>[<variant>]/best.pt`` as ``lgae-compress`` (the
    default model of ``compress``): weights-only model file and a card with the recipe, the
    training history and the fidelity measured here on the test jets, beside the paper's target.

    A run started (``--init``) from this recipe's run without the jet terms, or from the
    bundled ``lgae-compress`` that such a run made (its card's retrain command ends in this
    recipe's ``--bundle``), gets that run in its retrain chain and its training record."""
    import lgae_hep
    from lgae_hep.checkpoint import load_checkpoint, save_checkpoint
    from lgae_hep.jsonio import jsonable

    flag = output_flag(output, mass_weight, momentum_weight)
    ckpt = OUT / run_name(tau_v, output, mass_weight, momentum_weight) / "best.pt"
    row = evaluate(n_jets, [ckpt])[0]

    model = lgae_hep.load_model(ckpt)
    hist = json.loads((ckpt.parent / "metrics.json").read_text())
    best = min(hist, key=lambda h: h["val_loss"] if h["val_loss"] is not None else 1e300)
    # a run started from another run's weights (--init): that run is part of the recipe
    info = (load_checkpoint(ckpt).get("extra") or {}).get("info") or {}
    init = info.get("init")
    budget = f" --budget-min {info['budget_min']:g}" if "budget_min" in info else ""
    me = "python benchmarks/compression_model.py"
    retrain = ["python benchmarks/anomaly_scores.py --stages data"]
    before: dict = {}
    if init:
        base = OUT / run_name(tau_v, output) / "best.pt"
        before = _start_record(REPO / init, base, f"{me} --bundle {tau_v}{output_flag(output)}")
        if before is None:
            raise SystemExit(f"{ckpt} was started from {init}, neither this recipe's "
                             f"{base.relative_to(REPO)} nor the lgae-compress it bundled: its "
                             "card could not say how to retrain it")
        retrain.append(f"{me} --train --tau-v {tau_v}{output_flag(output)}")
    retrain += [f"{me} --train --tau-v {tau_v}{flag}{budget}"
                + (f" --init {OUT.relative_to(REPO) / run_name(tau_v, output)}/best.pt"
                   if init else ""),
                f"{me} --bundle {tau_v}{flag}"]
    what = {"free": "", "lightlike": ", decoder output 'lightlike' (massless particles, "
            "physical by construction)", "massive": ", decoder output 'massive' (particles on "
            "or inside the light cone by construction)"}[output]
    loss = ("mse" + (f" + {mass_weight:g} x jet-mass term" if mass_weight else "")
            + (f" + {momentum_weight:g} x jet 4-momentum term" if momentum_weight else ""))
    card = {
        "name": "lgae-compress",
        "file": "lgae-compress.pt",
        "purpose": "compression: the default model of lgae-hep compress / lgae_hep.compress "
                   "(not an anomaly detector: its anomaly score is the plain reconstruction "
                   "error, never chosen or validated)",
        "description": f"LGAE-Mix (tau_v={tau_v}{what}) trained for per-particle fidelity "
                       "(the order-preserving Cartesian mse loss"
                       + (f" plus {mass_weight:g} x the squared relative jet-mass error"
                          if mass_weight else "")
                       + (f" plus {momentum_weight:g} x the jet's squared 3-momentum error over"
                          " its energy squared" if momentum_weight else "")
                       + ") on MPI-on generated QCD jets",
        "architecture": model.config["architecture"],
        "config": model.config,
        "compression_rate": model.compression_rate,
        "score_metric": "chamfer",
        "fidelity": {**{k: v for k, v in row.items() if k != "checkpoint"},
                     "test_jets": f"first {n_jets} jets of {data_file('test').name}",
                     "paper_target": TARGET,
                     "how": f"python benchmarks/compression_model.py --eval{flag} "
                            f"--n-test {n_jets}"},
        "training": {"recipe": "benchmarks/compression_model.py", "loss": loss,
                     "data": data_file("train").name,
                     "epochs": len(hist), "best_epoch": int(best["epoch"]),
                     "best_val_loss": best["val_loss"],
                     "train_seconds": float(sum(h["seconds"] for h in hist)),
                     **({"initialised_from": before} if init else {}),
                     "note": "fit defaults (batch 64, lr 3e-3, plateau schedule), trained in "
                             "wall-clock budgets on 2 CPU cores beside other jobs (no GPU was "
                             "lent); not trained to convergence",
                     "hardware": "2 CPU cores, torch 2.13.0+cpu"},
        "training_domain": {"collection": "FatJet", "pt_range": [800.0, 1600.0],
                            "eta_max": 2.5, "jet_radius": 0.8},
        "retrain": " && ".join(retrain),
    }
    pretrained.mkdir(parents=True, exist_ok=True)
    kept = _keep_previous(pretrained, model)
    if kept and init and "weights_from" in before:
        before["weights_from"] += f", kept as {kept}"
    save_checkpoint(pretrained / "lgae-compress.pt", model, rng_state=False,
                    extra={"name": "lgae-compress"})
    (pretrained / "lgae-compress.json").write_text(json.dumps(jsonable(card), indent=1) + "\n")
    print(f"bundled {ckpt} as {pretrained / 'lgae-compress.pt'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", action="store_true", help="train (budget per size)")
    p.add_argument("--tau-v", type=int, nargs="+", default=list(TAU_V))
    p.add_argument("--budget-min", type=float, default=60.0, help="minutes per size")
    p.add_argument("--n-train", type=int, default=None, help="first N training jets only")
    p.add_argument("--eval", action="store_true", help="evaluate what was trained")
    p.add_argument("--n-test", type=int, default=10_000)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--bundle", type=int, metavar="TAU_V", default=None,
                   help="bundle runs/compression_model/tau_v<TAU_V>/best.pt as lgae-compress "
                        "(fidelity measured on --n-test jets)")
    p.add_argument("--output", choices=("free", "lightlike", "massive"), default="free",
                   help="--train / --eval / --bundle: the decoder output; not 'free': with the "
                        "time reference (runs/compression_model/tau_v<k>-<output>)")
    p.add_argument("--mass-weight", type=float, default=0.0,
                   help="--train / --eval / --bundle: weight of fit's jet-mass term "
                        "(runs/compression_model/tau_v<k>[-<output>]-mw<weight>)")
    p.add_argument("--momentum-weight", type=float, default=0.0,
                   help="--train / --eval / --bundle: weight of fit's jet 4-momentum term "
                        "(run name suffix -pw<weight>)")
    p.add_argument("--init", type=Path, default=None,
                   help="--train: start a new run from this checkpoint's weights (same config)")
    p.add_argument("--control", default="",
                   help="--train: a name for a control run the other options do not tell "
                        "apart (run directory suffix -<name>; evaluate it with --checkpoint)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="--eval: this model file instead of the trained runs (e.g. the "
                        "bundled models/pretrained/lgae-compress.pt)")
    p.add_argument("--split", choices=("val", "test"), default="test",
                   help="--eval: the QCD jets to evaluate on (choices between runs: val)")
    p.add_argument("--write-docs", action="store_true",
                   help="--eval: write the table into docs/RESULTS.md")
    args = p.parse_args()
    if args.bundle is not None:
        bundle(args.bundle, args.n_test, output=args.output, mass_weight=args.mass_weight,
               momentum_weight=args.momentum_weight)
        return
    if not (args.train or args.eval):
        list_configs()
        return
    if args.train:
        for tv in args.tau_v:
            train(tv, args.budget_min, args.n_train, args.output, args.mass_weight, args.init,
                  args.momentum_weight, args.control)
    if args.eval:
        only = ([args.checkpoint.resolve()] if args.checkpoint is not None
                else checkpoints(args.output, args.mass_weight, args.momentum_weight))
        rows = evaluate(args.n_test, only, args.split)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        if args.write_docs and rows and args.checkpoint is not None:
            raise SystemExit("--write-docs goes with the trained runs, not --checkpoint")
        if args.write_docs and rows:
            write_docs(rows, args.n_test, output=args.output, mass_weight=args.mass_weight,
                       split=args.split, momentum_weight=args.momentum_weight)


if __name__ == "__main__":
    main()
