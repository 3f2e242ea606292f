"""Wire formats for labels that need a third-party parser (so they live outside the pure core)."""
