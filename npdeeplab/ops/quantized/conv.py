"""Quantized preparers: conv (to be filled)."""
