import sys

from npdeeplab.cli import main

sys.exit(main())
