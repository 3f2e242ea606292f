"""The real-time missile-warning link (the 2023 trilateral mechanism): tracks and a simulator.

:mod:`gsomia.link.tracks` and :mod:`gsomia.link.simulator` are pure (no I/O, no clock).
"""
