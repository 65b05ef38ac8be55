"""ser_bench: a speech-emotion-recognition benchmark with actor-disjoint evaluation."""

__version__ = "0.1.0"
