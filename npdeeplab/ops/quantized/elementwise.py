"""Quantized preparers: elementwise (to be filled)."""
