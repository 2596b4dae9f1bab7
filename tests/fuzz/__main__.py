"""``python tests/fuzz ...`` (from anywhere) or ``python -m fuzz ...`` (from tests/): see cli.py."""

import sys
from pathlib import Path

if not __package__:  # run as a folder: its parent goes on sys.path, so that the package imports as `fuzz`
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from fuzz.cli import main  # noqa: E402 - after the path is set

sys.exit(main())
