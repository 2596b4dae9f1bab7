"""Quantized preparers: resize (to be filled)."""
