"""The subcommands, one module each (npdeeplab.cli adds them); options several of them share."""

from __future__ import annotations

import argparse


def add_numerics_option(parser: argparse.ArgumentParser, what: str = "npdeeplab's quantized kernels") -> None:
    """--numerics NAME, one of npdeeplab.runtime.numerics.NUMERICS; npdeeplab.cli checks the name
    before the command runs (an unknown one: one line, exit 2)."""
    from npdeeplab.runtime.numerics import NUMERICS

    parser.add_argument(
        "--numerics", default="reference", metavar="{" + ",".join(NUMERICS) + "}",
        help=f"whose rounding {what} reproduce (default reference: LiteRT's reference kernels; xnnpack: "
             "LiteRT's default interpreter, XNNPACK on); see npdeeplab.runtime.numerics",
    )
