"""Helper for benchmarks/platforms.sh (plain Python 3.10+, no project imports at module level).

    python platform_check.py versions            # inside the foreign root: what runs npdeeplab there
    python platform_check.py compare A.png B.png [--min-agreement 0.999]
                                                 # on the host: share of identical pixels of two masks;
                                                 # exit 1 below the threshold
"""

import argparse
import platform
import sys
from importlib import metadata
from pathlib import Path


def versions() -> None:
    import numpy
    import PIL

    import npdeeplab
    from npdeeplab.runtime.backends import resolve_backend

    def where(module) -> str:
        folder = Path(module.__file__).parent
        return "Debian's" if str(folder).startswith("/usr/lib/python3/dist-packages") else f"from {folder}"

    print(f"machine   {platform.machine()} ({platform.architecture()[0]}), {platform.libc_ver()[0]} "
          f"{platform.libc_ver()[1]}")
    print(f"python    {platform.python_version()} ({sys.executable})")
    print(f"numpy     {numpy.__version__} ({where(numpy)})")
    print(f"pillow    {PIL.__version__} ({where(PIL)})")
    for name in ("tqdm", "threadpoolctl", "flatbuffers", "tflite"):
        print(f"{name:<9} {metadata.version(name)}")
    try:
        blas = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        print(f"blas      {blas.get('name')} {blas.get('version', '')}".rstrip())
    except Exception:  # older NumPy: no dict form
        pass
    try:
        numba = metadata.version("numba")
    except metadata.PackageNotFoundError:
        numba = "not installed"
    print(f"numba     {numba}")
    print(f"npdeeplab {metadata.version('npdeeplab')} ({Path(npdeeplab.__file__).parent}), "
          f"backend auto -> {resolve_backend('auto')}")


def compare(first: str, second: str, min_agreement: float) -> int:
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(first))
    b = np.asarray(Image.open(second))
    if a.shape != b.shape:
        print(f"masks differ in shape: {first} {a.shape}, {second} {b.shape}")
        return 1
    differing = int(np.count_nonzero(a != b))
    agreement = 1 - differing / a.size
    classes = ", ".join(f"{c}:{np.count_nonzero(b == c)}" for c in np.unique(b))
    print(f"pixel agreement {agreement:.4%} ({differing} of {a.size} pixels differ; class:pixels {classes})")
    if agreement < min_agreement:
        print(f"FAIL: agreement below {min_agreement:.1%}")
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("versions")
    masks = commands.add_parser("compare")
    masks.add_argument("first")
    masks.add_argument("second")
    masks.add_argument("--min-agreement", type=float, default=0.999)
    args = parser.parse_args()
    if args.command == "versions":
        versions()
    else:
        sys.exit(compare(args.first, args.second, args.min_agreement))


if __name__ == "__main__":
    main()
