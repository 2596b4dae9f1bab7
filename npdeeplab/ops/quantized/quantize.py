"""Quantized preparers: quantize (to be filled)."""
