"""recdistill: LLM-enhanced sequential recommendation, made practical and measured."""

__version__ = "0.1.0"
