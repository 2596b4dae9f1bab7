"""Quantized preparers: activation (to be filled)."""
