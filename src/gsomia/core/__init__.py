"""The pure core of gsomia: no I/O, no clock, no globals, and nothing else of ours imported."""
