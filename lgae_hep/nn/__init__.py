"""Equivariant neural-network building blocks on irreps of SO+(3,1)."""
