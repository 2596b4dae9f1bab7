"""Quantized preparers: shape (to be filled)."""
