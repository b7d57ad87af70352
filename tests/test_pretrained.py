"""Bundled models in models/pretrained: they load safely, match their cards, and score.

``test_card_auc_matches_fresh_evaluation`` generates a small fresh sample (new seeds, Pythia 8
+ FastJet; about 10 s per model here) and is skipped when pythia8mc/fastjet are missing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from lgae_hep.checkpoint import load_checkpoint, load_model_file

PRETRAINED = Path(__file__).resolve().parents[1] / "models" / "pretrained"
REQUIRED = ("lgae-mix", "lgae-minmax")
CARDS = sorted(PRETRAINED.glob("*.json"))


def _card(name: str) -> dict:
    return json.loads((PRETRAINED / f"{name}.json").read_text())


def _jets(n: int, seed: int, num_particles: int = 30):
    g = torch.Generator().manual_seed(seed)
    cnt = torch.randint(10, num_particles + 1, (n,), generator=g)
    mask = torch.arange(num_particles)[None] < cnt[:, None]
    pt = (torch.rand(n, num_particles, generator=g).pow(4) * 300 + 1).sort(1, True).values
    eta, phi = (torch.randn(n, num_particles, generator=g) * 0.15 for _ in range(2))
    p4 = torch.stack([pt * torch.cosh(eta), pt * torch.cos(phi), pt * torch.sin(phi),
                      pt * torch.sinh(eta)], -1)
    return p4 * mask[..., None], mask


def test_required_models_are_bundled():
    names = {c.stem for c in CARDS}
    assert set(REQUIRED) <= names, f"bundled cards: {sorted(names)}"
    from lgae_hep import api

    bundled = api.bundled_models()
    for n in REQUIRED:
        assert bundled[n] == (PRETRAINED / f"{n}.pt").resolve() or bundled[n].name == f"{n}.pt"


@pytest.mark.parametrize("name", REQUIRED)
def test_bundled_model_matches_card_and_scores(name):
    card = _card(name)
    path = PRETRAINED / card["file"]
    assert path.stat().st_size < 5_000_000
    ck = load_checkpoint(path)  # weights_only: no code can run
    model = load_model_file(path)
    assert model.config == card["config"] == ck["config"]
    assert card["architecture"] == model.config["architecture"] == "lgae"
    cr = model.compression_rate
    # both are ratios of small integers, one of them through a JSON float round trip:
    # equal up to float64 rounding, which pytest.approx's default (1e-6) covers
    assert cr == pytest.approx(card["compression_rate"])
    # the card documents the data recipe, its seeds and the test metrics
    data = card["training"]["data"]
    assert data["train_qcd"]["n"] >= 50_000 and data["train_qcd"]["seed"] != data["val_qcd"]["seed"]
    test_seeds = [v["seed"] for v in card["test_sets"].values()]
    assert len(set(test_seeds)) == 4 and not set(test_seeds) & {data["train_qcd"]["seed"]}
    assert all(v["n"] >= 10_000 for v in card["test_sets"].values())
    comb = card["metrics"]["combined"]
    assert 0.0 <= comb["auc"] <= 1.0 and set(comb["eps_s"]) == {"0.1", "0.01"}
    assert ck["metrics"]["combined"]["auc"] == pytest.approx(comb["auc"])  # one number, two files
    assert "anomaly_scores.py" in card["retrain"]
    # the default score was chosen on the validation sets by the benchmark's rule: the best
    # validation AUC among the scores that pass the sculpting floor
    from lgae_hep.zoo import ANOMALY_METRICS

    assert card["score_metric"] in ANOMALY_METRICS
    sel = card["selection"]
    assert sel["metric"].split(" [")[0] == card["score_metric"]
    assert sel["val_combined_auc"] == card["validation_by_score"][sel["metric"]]
    if "none passed" not in sel["rule"]:
        # the bundled seed passes the sculpting floor that its rule names
        floor = re.search(r"1/JSD\S* >= ([0-9.]+)", sel["rule"])
        assert floor is not None and sel["val_inv_jsd"] >= float(floor.group(1))
    # a density score travels in the model file, with the features the card names
    if card["score_metric"].startswith("latent-density"):
        assert model.latent_density is not None and model.score_metric == card["score_metric"]
        assert model.latent_density.info["features"] == card["latent_density"]["features"]
    # the exposure head too, with the inputs the card names, loaded as float64 data
    if card["score_metric"] == "exposure":
        head = model.exposure_head
        assert head.knots.dtype == torch.float64 and model.score_metric == "exposure"
        assert head.config["names"] == card["exposure_head"]["inputs"]
        assert "exposure_head" not in dict(model.named_children())
    # scoring works and is finite; empty jets score 0 (the api's documented convention)
    p4, mask = _jets(64, 0)
    with torch.no_grad():
        out = model(p4, mask)
    assert out.p4.shape == (64, 30, 4) and torch.isfinite(out.p4).all()
    from lgae_hep.losses import chamfer

    s = chamfer(out.p4, p4, out.mask, mask)
    assert torch.isfinite(s).all() and (s > 0).all()
    from lgae_hep.api import score
    from lgae_hep.data import from_tensors

    default = np.asarray(score(from_tensors(p4.double().numpy(), mask.numpy()), name))
    assert np.isfinite(default).all()  # the card's default score, density or reconstruction


def test_default_score_is_the_lgae_mix_cards_score():
    """``lgae_hep.score(jets)`` with no model and no metric gives exactly the numbers of the
    bundled lgae-mix with the score its card records (same path, so bitwise), and not those
    of the other bundled model: what the README and the docstring promise."""
    import warnings

    import lgae_hep
    from lgae_hep.data import from_tensors

    p4, mask = _jets(32, 1)
    jets = from_tensors(p4.double().numpy(), mask.numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # these toy jets are outside the cards' pT range
        default = np.asarray(lgae_hep.score(jets, progress=False))
        mix = np.asarray(lgae_hep.score(jets, "lgae-mix", metric=_card("lgae-mix")
                                        ["score_metric"], progress=False))
        other = np.asarray(lgae_hep.score(jets, "lgae-minmax", progress=False))
    assert np.isfinite(default).all()
    np.testing.assert_array_equal(default, mix)
    assert not np.allclose(default, other)  # another model's scores differ by O(1)


#: a fresh seed for the card-recipe QCD sample below: none of the cards' own seeds
FRESH_SEED = 90_301
N_CARD_JETS = 200


@pytest.fixture(scope="module")
def card_recipe_qcd():
    """``N_CARD_JETS`` QCD jets of the cards' validation recipe (``training.data.val_qcd``:
    Pythia 8, MPI as recorded, the generator's default pT window), with a new seed."""
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    from lgae_hep.data.generate import generate

    recipes = {json.dumps({k: v for k, v in _card(n)["training"]["data"]["val_qcd"].items()
                           if k not in ("n", "seed", "workers")}, sort_keys=True)
               for n in REQUIRED}
    assert len(recipes) == 1, f"the bundled cards' validation recipes differ: {recipes}"
    val = _card(REQUIRED[0])["training"]["data"]["val_qcd"]
    used = {v["seed"] for n in REQUIRED for v in (*_card(n)["training"]["data"].values(),
                                                   *_card(n)["test_sets"].values())}
    assert FRESH_SEED not in used
    return generate(val["process"], N_CARD_JETS, seed=FRESH_SEED, fast=val.get("fast", False),
                    progress=False)


@pytest.mark.sim
@pytest.mark.parametrize("name", REQUIRED)
def test_scores_of_fresh_card_jets_follow_the_cards_qcd_quantiles(name, card_recipe_qcd):
    """Rescore fresh jets of the card's validation recipe: the fraction below each stored QCD
    quantile (``score_axes``, tools/score_axes.py) is that quantile's level, within the
    binomial spread. A wrong model file, score, input frame or unit would move the bulk.

    Tolerance: the fraction of n fresh jets below the card's quantile q_p (estimated on N
    jets) has variance p (1 - p) (1/n + 1/N) (binomial, plus the card's own estimate of q_p);
    allowed 4 standard deviations (two-sided 6e-5 per check). The upper tail: the number of
    fresh jets above q_0.995 is Poisson with mean 0.005 n = 1; 7 or more has probability 8e-5.
    The values are read from the card at test time (the models may be re-bundled).
    """
    import warnings

    import awkward as ak

    from lgae_hep import api

    card = _card(name)
    axes = card["score_axes"]
    big_n, n = axes["n_jets"], N_CARD_JETS
    model = api.load_model(name)
    for metric in (card["score_metric"], "chamfer-dr"):
        q = axes["quantiles"][metric]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = np.asarray(ak.flatten(api.score(card_recipe_qcd, model=model, metric=metric,
                                                progress=False), axis=None), dtype=float)
        assert s.size == n and np.isfinite(s).all()
        for level in ("0.25", "0.5", "0.75"):
            p = float(level)
            frac = float(np.mean(s < q[level]))
            tol = 4 * np.sqrt(p * (1 - p) * (1 / n + 1 / big_n))
            assert abs(frac - p) <= tol, (name, metric, level, frac, q[level])
        assert int(np.sum(s > q["0.995"])) <= 6, (name, metric, np.sort(s)[-8:], q["0.995"])


def test_unknown_bundled_name_lists_the_bundled_ones():
    from lgae_hep import api

    with pytest.raises(ValueError, match="lgae-mix"):
        api.load_model("lgae-does-not-exist")


@pytest.mark.sim
@pytest.mark.filterwarnings("ignore:background sample has")
@pytest.mark.parametrize("name", REQUIRED)
def test_card_auc_matches_fresh_evaluation(name):
    """Fresh small test sample (new seeds): combined AUC agrees with the card (loose)."""
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    from lgae_hep import api
    from lgae_hep.data.generate import generate
    from lgae_hep.evaluate import anomaly_metrics

    card = _card(name)
    fast = card["test_sets"]["test_qcd"].get("fast", True)
    n_b, n_s = 600, 200
    qcd = generate("qcd", n_b, seed=90_001, fast=fast, progress=False)
    sig = {p: generate(p, n_s, seed=90_002 + i, fast=fast, progress=False)
           for i, p in enumerate(("t", "w", "z"))}
    model = api.load_model(name)
    metric = card.get("score_metric", "chamfer")  # the card's metrics use this score
    import awkward as ak

    s_b = np.asarray(ak.flatten(api.score(qcd, model=model, metric=metric)), dtype=float)
    s_s = {k: np.asarray(ak.flatten(api.score(v, model=model, metric=metric)), dtype=float)
           for k, v in sig.items()}
    m = anomaly_metrics(s_b, s_s)
    fresh = m["signals"]["combined"]["auc"]
    # statistical spread of an AUC with 600 x 600 jets is ~0.015; allow a loose 0.06
    assert fresh == pytest.approx(card["metrics"]["combined"]["auc"], abs=0.06)
