"""The public API behind `amphisbaena`'s top-level names: halves, a loaded model and its results."""
