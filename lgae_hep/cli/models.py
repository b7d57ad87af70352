"""``lgae-hep models``: the bundled pretrained models and their model-card summaries.

Everything shown is read from the cards through :mod:`lgae_hep.zoo` (nothing is hard-coded
here), so retrained or added models appear as they are bundled.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["add_arguments", "card_summary", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the summaries as JSON instead of text")
    parser.add_argument("--full", action="store_true",
                        help="with --json: print the complete model cards")


def _cards() -> dict[str, Mapping[str, Any]]:
    from lgae_hep import zoo

    return {name: zoo.model_card(name) for name in sorted(zoo.bundled_models())}


def card_summary(name: str, card: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a model card a user picks a model by (missing entries are ``None``)."""
    from lgae_hep import zoo
    from lgae_hep.domain import training_domain

    cfg = card.get("config") if isinstance(card.get("config"), Mapping) else {}
    metrics = card.get("metrics") if isinstance(card.get("metrics"), Mapping) else {}
    aucs = {k: v.get("auc") for k, v in metrics.items()
            if isinstance(v, Mapping) and v.get("auc") is not None}
    domain = training_domain(name)
    path = zoo.bundled_models()[name]
    return {
        "name": name,
        "description": card.get("description"),
        "architecture": cfg.get("architecture", card.get("architecture")),
        "aggregation": cfg.get("aggregation"),
        "num_particles": cfg.get("num_particles"),
        "compression_rate": card.get("compression_rate"),
        "score_metric": card.get("score_metric", "chamfer"),
        "test_auc": aucs,
        "training_domain": domain.describe() if domain is not None else None,
        "status": card.get("status"),
        "retrain": card.get("retrain"),
        "file": str(path),
        "default": name == zoo.DEFAULT_MODEL,
    }


def _text(s: Mapping[str, Any]) -> str:
    head = f"{s['name']}" + ("  (default)" if s["default"] else "")
    lines = [head, "-" * len(head)]
    if s["description"]:
        lines.append(f"  {s['description']}")
    arch = ", ".join(f"{k} {s[k]}" for k in ("architecture", "aggregation", "num_particles")
                     if s[k] is not None)
    if arch:
        lines.append(f"  model          : {arch}")
    if s["compression_rate"] is not None:
        rate = s["compression_rate"]
        text = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in rate.items()) if isinstance(rate, Mapping) else str(rate)
        lines.append(f"  compression    : {text} (latent reals / input reals)")
    lines.append(f"  score metric   : {s['score_metric']}")
    if s["test_auc"]:
        lines.append("  test AUC       : " + ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in s["test_auc"].items()))
    if s["training_domain"]:
        lines.append(f"  trained on     : {s['training_domain']}")
    if s["status"]:
        lines.append(f"  status         : {s['status']}")
    if s["retrain"]:
        lines.append(f"  retrain        : {s['retrain']}")
    lines.append(f"  file           : {s['file']}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Run ``lgae-hep models``."""
    cards = _cards()
    if args.json:
        data = dict(cards) if args.full else {n: card_summary(n, c) for n, c in cards.items()}
        print(json.dumps(data, indent=2, default=str))
        return 0
    if not cards:
        from lgae_hep import zoo

        print(f"no bundled models installed (looked in {zoo._pretrained_dir()})")
        return 0
    print("\n\n".join(_text(card_summary(n, c)) for n, c in cards.items()))
    print("\nuse one with --model NAME, lgae_hep.load_model(NAME) or lgae_hep.score(jets, NAME)")
    return 0
