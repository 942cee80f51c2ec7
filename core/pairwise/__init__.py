"""Pairwise backend internals: scene graphs, the pair engine, prediction storage, memory plan."""
