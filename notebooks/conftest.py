"""nbval settings for the workbook: compare outputs deterministically.

stderr is not compared (library warnings and kernel messages vary between machines and versions);
neither are widget views (nbval already skips their random model ids) nor PNG figures (nbval's
default). Figures must be PNG: SVG embeds a date. Regex replacements (timings, addresses, kernel
paths) live in ``sanitize.cfg``.
"""
from __future__ import annotations


def pytest_collectstart(collector):
    """Add stderr to the keys that nbval's notebook collector does not compare."""
    path = getattr(collector, "path", None)
    if path is not None and path.suffix == ".ipynb" and hasattr(collector, "skip_compare"):
        collector.skip_compare = tuple(collector.skip_compare) + ("stderr",)
