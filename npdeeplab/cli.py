"""The `npdeeplab` command line: one subcommand per module in npdeeplab.commands.

Expected errors (bad model, bad image, missing file) print one line and exit with code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from npdeeplab.errors import NpDeepLabError

COMMANDS = ("segment", "inspect", "trace", "compare", "extract", "bench", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="npdeeplab",
        description="Run and inspect TensorFlow Lite segmentation models in pure NumPy.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"npdeeplab.commands.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except NpDeepLabError as error:
        print(f"npdeeplab: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("npdeeplab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
