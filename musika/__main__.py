"""`python -m musika` = the `musika` command."""

import sys

from musika.cli import main

sys.exit(main())
