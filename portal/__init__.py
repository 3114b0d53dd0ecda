"""Conecta: the domain core (settings, models, accounting, counters) and the web portal.

This package does not import Flask; only portal.web does.
"""

__version__ = "0.1.0"
