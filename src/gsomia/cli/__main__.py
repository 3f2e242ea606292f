"""python -m gsomia.cli: the same as the gsomia console script."""

from gsomia.cli.main import run

run()
