"""The node's HTTP API."""
