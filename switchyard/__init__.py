"""Switchyard: the command line, the local stack runner and the benchmarks."""
