"""The version of redcore_lite (pyproject.toml holds the same string; a test checks they match)."""
__version__ = "0.1.0"
