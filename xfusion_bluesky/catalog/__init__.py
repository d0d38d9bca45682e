"""Tiled: raw runs in, derived runs out."""
