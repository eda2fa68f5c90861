"""Benchmarks: one command per figure, each measuring our code beside its baseline."""
