"""Tests of the node's HTTP API (in process, over a real socket, and across a crash)."""
