"""`npdeeplab report MODEL IMAGE -o report.html [--compare]`: one self-contained HTML page."""

from __future__ import annotations

import argparse

from npdeeplab.commands import add_numerics_option


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write one self-contained HTML page: segmentation, graph, every op's output, errors",
        description="Write an HTML report (images inline, no network needed to view it).",
    )
    parser.add_argument("model", help="registry name or .tflite path")
    parser.add_argument("image", help="image to segment and trace")
    parser.add_argument("-o", "--output", default="report.html", help="HTML file to write (report.html)")
    parser.add_argument("--compare", action="store_true", help="add the per-op error table against LiteRT")
    parser.add_argument("--float-model", metavar="FLOAT_MODEL", help="the quantized MODEL's float original: add "
                        "'where quantization hurts', quant-diff's layer ranking on IMAGE")
    add_numerics_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from npdeeplab.segmentation.images import load_image
    from npdeeplab.tools.report import write_report

    load_image(args.image)  # a bad image fails before anything is computed or written
    path = write_report(args.model, args.image, args.output, compare=args.compare, numerics=args.numerics,
                        float_model=args.float_model)
    print(f"wrote {path}")
    return 0
