"""Quantized kernels that compute what XNNPACK computes (LiteRT's default delegate), for the
"xnnpack" numerics personality: one function per XNNPACK routine mirrored, named in its docstring.
They reuse the reference kernels' exact integer accumulation and differ in the rescaling only.
Which ops XNNPACK takes over, and with which params, is decided in npdeeplab.ops.xnnpack.
"""

from collections.abc import Callable

from npdeeplab.kernels.xnnpack import conv, convert, elementwise, resize

XNNPACK_KERNELS: dict[str, Callable] = {**conv.KERNELS, **convert.KERNELS, **elementwise.KERNELS, **resize.KERNELS}
