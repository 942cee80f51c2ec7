"""Backends: each turns loaded images into a `Reconstruction`."""
