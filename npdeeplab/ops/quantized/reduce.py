"""Quantized preparers: reduce (to be filled)."""
