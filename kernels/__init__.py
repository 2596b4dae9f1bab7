"""Compute kernels: NumPy arrays in, NumPy arrays out.

Nothing here knows about flatbuffers or imports npdeeplab. Every kernel takes a small params
record first (strides, paddings, activation bounds...) and then its input arrays, and returns its
output. The NumPy kernels are the specification: read them to learn what an op computes.
"""

from npdeeplab.kernels.registry import NUMPY_KERNELS

__all__ = ["NUMPY_KERNELS"]
