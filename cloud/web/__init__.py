"""Screens for people: the consumer page at `/` and the operator console at `/console`."""
