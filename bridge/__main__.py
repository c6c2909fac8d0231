"""`python -m bridge` runs the `musika` command line."""

import sys

from bridge.cli import main

sys.exit(main())
