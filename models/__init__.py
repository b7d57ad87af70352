"""Model architectures (LGAE, GNNAE baselines) and the bundled model zoo."""
