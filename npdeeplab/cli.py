"""The `npdeeplab` command line: one subcommand per module in npdeeplab.commands.

Expected errors (bad model, bad image, missing file) print one line and exit with code 2;
anything else is a bug and keeps its traceback. Output piped into a reader that stops early
(`npdeeplab inspect | head`) ends quietly with the usual SIGPIPE status, 141.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
from collections.abc import Sequence
from importlib import metadata

from npdeeplab.errors import NpDeepLabError

COMMANDS = ("segment", "inspect", "trace", "compare", "extract", "bench", "report", "quant-diff", "explain",
            "evaluate")
BROKEN_PIPE_STATUS = 128 + 13  # what a shell reports for a process killed by SIGPIPE


def version_text() -> str:
    """`npdeeplab 0.1.0 (Python 3.11.7, NumPy 2.4.6, Numba 0.68.1)`, without importing NumPy or Numba."""
    from npdeeplab import __version__

    parts = [f"Python {platform.python_version()}"]
    for name, label in (("numpy", "NumPy"), ("numba", "Numba")):
        try:
            parts.append(f"{label} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"no {label}")
    return f"npdeeplab {__version__} ({', '.join(parts)})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="npdeeplab",
        description="Run and inspect TensorFlow Lite segmentation models in pure NumPy.",
    )
    parser.add_argument("--version", action="version", version=version_text())
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"npdeeplab.commands.{name.replace('-', '_')}")  # quant-diff: quant_diff.py
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "numerics", None) is not None:  # checked before anything runs
            from npdeeplab.runtime.numerics import resolve_numerics

            args.numerics = resolve_numerics(args.numerics)
        status = int(args.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit, where it would print a traceback
        return status
    except NpDeepLabError as error:
        print(f"npdeeplab: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _silence_stdout()
        return BROKEN_PIPE_STATUS
    except KeyboardInterrupt:
        print("npdeeplab: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's final flush at exit finds no closed pipe
    (the recipe in Python's documentation of SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout replaced by something without a descriptor (tests)
        pass


if __name__ == "__main__":
    sys.exit(main())
