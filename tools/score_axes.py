"""QCD validation quantiles of every score of the bundled models: the processor's histogram axes.

The coffea processor bins each score around the QCD bulk of the model at hand
(:func:`lgae_hep.processors.hists.score_edges`). The bulk is measured here, on QCD jets of the
validation recipe of the model cards (``benchmarks/anomaly_scores.py``: MPI on, pT 0.8-1.6 TeV,
seed 302), and stored in each card as ``score_axes``::

    python tools/score_axes.py            # print the quantiles
    python tools/score_axes.py --write    # store them in models/pretrained/<name>.json

The sample (``N_JETS`` jets, ``generate("qcd", N_JETS, seed=302, workers=2, fast=False)``) is
generated once and cached under ``$LGAE_HEP_CACHE/score_axes`` (default
``~/.cache/lgae-hep/score_axes``). Every score the model file supports is measured: the
reconstruction scores, the density scores when it holds a latent density, the decorrelated
scores it holds maps for. Only the card's ``score_axes`` entry is rewritten.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PRETRAINED = REPO / "models" / "pretrained"
N_JETS = 4000
SEED = 302
LEVELS = ("0.001", "0.005", "0.25", "0.5", "0.75", "0.995", "0.999")


def sample_path() -> Path:
    env = os.environ.get("LGAE_HEP_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "lgae-hep"
    return root / "score_axes" / f"val_qcd_qcd_n{N_JETS}_s{SEED}.root"


def qcd_sample() -> Path:
    path = sample_path()
    if not path.is_file():
        from lgae_hep.data.generate import generate

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.root")
        generate("qcd", N_JETS, seed=SEED, workers=2, fast=False, output=tmp, progress=False)
        os.replace(tmp, path)
    return path


def supported_scores(model) -> list[str]:
    from lgae_hep.scoring.registry import SCORES

    out = []
    for name, spec in SCORES.items():
        if spec.kind == "reconstruction":
            out.append(name)
        elif spec.kind == "density" and getattr(model, "latent_density", None) is not None:
            out.append(name)
        elif spec.kind == "exposure" and getattr(model, "exposure_head", None) is not None:
            out.append(name)
        elif spec.kind == "decorrelated" and spec.base in (getattr(model, "decorrelation", None)
                                                           or {}):
            if spec.base in out:
                out.append(name)
    return out


def quantiles(name: str, jets) -> dict[str, dict[str, float]]:
    import awkward as ak

    import lgae_hep

    model = lgae_hep.load_model(name)
    out = {}
    for metric in supported_scores(model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = ak.to_numpy(lgae_hep.score(jets, name, metric=metric, progress=False))
        s = np.asarray(s, dtype=np.float64)
        s = s[np.isfinite(s)]
        qs = np.quantile(s, [float(p) for p in LEVELS])
        out[metric] = {p: float(f"{v:.6g}") for p, v in zip(LEVELS, qs, strict=True)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="store the quantiles in the cards")
    parser.add_argument("--models", default=None,
                        help="comma-separated bundled models (default: every bundled model)")
    args = parser.parse_args(argv)
    import lgae_hep
    from lgae_hep.zoo import bundled_models

    names = sorted(bundled_models()) if args.models is None else args.models.split(",")
    unknown = sorted(set(names) - set(bundled_models()))
    if unknown:
        parser.error(f"not bundled: {', '.join(unknown)}; bundled: "
                     f"{', '.join(sorted(bundled_models()))}")
    path = qcd_sample()
    jets = lgae_hep.read_nanoaod(path, flat=True)
    for name in names:
        q = quantiles(name, jets)
        entry = {
            "quantiles": q,
            "n_jets": int(len(jets)),
            "sample": f"generate('qcd', {N_JETS}, seed={SEED}, workers=2, fast=False): the "
                      "val_qcd recipe of benchmarks/anomaly_scores.py",
            "how": "python tools/score_axes.py --write; the processor's score axis "
                   "(lgae_hep.processors.hists.score_edges) is centred on the median, "
                   "K = 25 bins per half-width max(q0.995 - q0.5, q0.5 - q0.005), sinh-widened "
                   "beyond",
        }
        print(json.dumps({name: entry}, indent=2))
        if args.write:
            card_path = PRETRAINED / f"{name}.json"
            card = json.loads(card_path.read_text())
            card["score_axes"] = entry
            card_path.write_text(json.dumps(card, indent=1) + "\n")
            print(f"wrote score_axes into {card_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
