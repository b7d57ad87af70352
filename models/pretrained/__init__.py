"""Bundled pretrained models: checkpoints and JSON model cards."""
