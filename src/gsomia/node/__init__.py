"""A national node: its identity and configuration here; items, shares and peers beside them."""
