"""Score jets held in an awkward array with ``lgae_hep.score`` (and look at the latent).

    python examples/score_jets.py                      # toy jets, bundled lgae-mix model
    python examples/score_jets.py --model my.pt        # a checkpoint of your own
    python examples/score_jets.py --file nano.root     # jets read from a NanoAOD/PFNano file

Any ``[...][jet][particle]`` array of Lorentz vectors works (pt/eta/phi/mass or px/py/pz/E);
the result keeps the outer structure.
"""

from __future__ import annotations

import argparse

import awkward as ak
import numpy as np
import vector

import lgae_hep

vector.register_awkward()


def toy_events(n_events: int = 20, seed: int = 0) -> ak.Array:
    """[event][jet][particle]: 0-3 jets per event, 1-60 massless particles per jet."""
    rng = np.random.default_rng(seed)
    n_jets = rng.integers(0, 4, n_events)
    n_part = rng.integers(1, 60, n_jets.sum())
    total = n_part.sum()
    axis_eta = np.repeat(rng.uniform(-2, 2, len(n_part)), n_part)
    axis_phi = np.repeat(rng.uniform(-np.pi, np.pi, len(n_part)), n_part)
    particles = ak.zip(
        {
            "pt": rng.exponential(30.0, total) + 0.5,
            "eta": axis_eta + rng.normal(0, 0.25, total),
            "phi": axis_phi + rng.normal(0, 0.25, total),
            "mass": np.zeros(total),
        },
        with_name="Momentum4D",
    )
    return ak.unflatten(ak.unflatten(particles, n_part), n_jets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lgae-mix", help="bundled name or checkpoint")
    parser.add_argument("--file", default=None, help="NanoAOD/PFNano file to read jets from")
    parser.add_argument("--events", type=int, default=20, help="toy events")
    args = parser.parse_args(argv)

    if args.file:
        jets = lgae_hep.read_nanoaod(args.file, jets="FatJet", max_particles=None)
    else:
        jets = toy_events(args.events)
    model = lgae_hep.load_model(args.model)
    scores = lgae_hep.score(jets, model)           # [event][jet], like the input
    latent = lgae_hep.encode(jets, model)          # [event][jet] records
    print(f"input  : {jets.type}")
    print(f"scores : {scores.type}")
    print(f"latent : {latent.type}")
    flat = ak.to_numpy(ak.flatten(scores, axis=None))
    print(f"{len(flat)} jets, score median {np.median(flat):.4g}, "
          f"all finite: {bool(np.isfinite(flat).all())}")
    for i, (ev, s) in enumerate(zip(jets[:5], scores[:5])):
        print(f"event {i}: {len(ev)} jet(s), multiplicities {ak.num(ev).tolist()}, "
              f"scores {[round(float(x), 2) for x in s]}")
    if "norms_re" in ak.fields(latent):
        print("latent 4-vector Minkowski norms (Re) of the first jet:",
              ak.flatten(latent["norms_re"])[0].tolist())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
