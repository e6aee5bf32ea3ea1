from polroutd.cli.main import entry

entry()
