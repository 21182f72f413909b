"""judgeloop: train an LLM judge without human labels, as a versioned DVC pipeline."""

__version__ = "0.1.0"
