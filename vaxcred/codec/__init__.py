"""Codec layers: pure bytes <-> structures; no keys, no clock, no I/O."""
