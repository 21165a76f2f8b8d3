"""`python -m callbackd` runs the command line."""

import sys

from callbackd.app.cli import main

sys.exit(main())
