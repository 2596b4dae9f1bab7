"""The one place Numba's compile options are set.

cache=True writes compiled kernels next to this file, or, where that directory is read-only,
into Numba's per-user cache; NUMBA_CACHE_DIR overrides both. Caching parallel kernels was
checked on Numba 0.68: a cache written with 2 threads loads and runs with 1 and back. Both
are tests in tests/test_backends.py. fastmath stays off: reassociation would change float32
results against TFLite's reference order.
"""

from __future__ import annotations

import functools

from numba import njit

FASTMATH = False

serial = functools.partial(njit, cache=True, fastmath=FASTMATH, nogil=True)
parallel = functools.partial(njit, cache=True, fastmath=FASTMATH, nogil=True, parallel=True)
