import sys

from polroutd.cli.main import main

sys.exit(main())
