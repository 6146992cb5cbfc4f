"""`python3 -m mailappliance.archive`: the archive's command line on the host."""

import sys

from .cli import main

sys.exit(main())
