"""`python -m gisapp.cli`: the same as the `gisapp` command."""

import sys

from gisapp.cli import main

sys.exit(main())
