"""The gsomia command line (Typer and Rich). One module per command group."""
