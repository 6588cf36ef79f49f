"""The book layer: what the chapters use, on top of the core."""
