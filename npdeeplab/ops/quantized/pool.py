"""Quantized preparers: pool (to be filled)."""
