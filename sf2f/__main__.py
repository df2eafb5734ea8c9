"""`python -m sf2f ...`: see sf2f.cli."""

import sys

from sf2f.cli import main

sys.exit(main())
