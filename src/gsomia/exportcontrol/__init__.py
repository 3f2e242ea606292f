"""Export control: Japan's licence determination and end-user screening, effective-dated.

- :mod:`~gsomia.exportcontrol.tables`: the tables as values (pure)
- :mod:`~gsomia.exportcontrol.determination`: ``determine(tables, request)`` (pure)
- :mod:`~gsomia.exportcontrol.names` and :mod:`~gsomia.exportcontrol.screening`: name matching
- :mod:`~gsomia.exportcontrol.loader`: the data files, validated at the file boundary
- :mod:`~gsomia.exportcontrol.service`: what the CLI and the API share

docs/export-control.md describes all of it.
"""
