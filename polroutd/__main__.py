import sys

from polroutd.cli import main

sys.exit(main())
