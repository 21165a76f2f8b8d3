"""`python -m callbackd` runs the command line."""

import sys

from callbackd.cli import main

sys.exit(main())
