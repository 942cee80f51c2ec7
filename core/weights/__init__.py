"""Checkpoints: the registry of official weights, downloads, and the one strict reader."""
