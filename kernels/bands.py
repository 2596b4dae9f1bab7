"""Bands of output rows, so that loops over an output's rows work in a core's cache.

A NumPy kernel that makes several passes over its output (one per filter tap, one per
interpolation term) runs faster band by band: the band and its temporaries stay in L2 between
passes, and temporaries of a band's size are reused by the allocator instead of being fresh
pages each time. 256 KiB bands measured about 2x faster than whole images (x86_64, 2 MiB L2).
"""

from __future__ import annotations

import numpy as np

BAND_BYTES = 256 * 1024


def row_bands(out: np.ndarray) -> list[slice]:
    """Slices along axis 1 (rows) of out [N,H,...], each about BAND_BYTES."""
    rows = max(1, BAND_BYTES // max(out[:, :1].nbytes, 1))
    return [slice(y, min(y + rows, out.shape[1])) for y in range(0, max(out.shape[1], 1), rows)]
