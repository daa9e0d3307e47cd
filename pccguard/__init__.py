"""pccguard: Private Cloud Compute compliance checks and enforcement for LLM serving engines."""

__version__ = "0.1.0"
