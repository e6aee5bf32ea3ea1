"""polroutd: policy routing for multi-homed Linux servers."""

__version__ = "0.1.0"
