"""The domain core: settings, models, accounting, counters, people, sites, reports.

It imports neither Flask, click nor the RADIUS daemon (tests/test_layout.py checks it); the web,
the CLI and the daemon import it.
"""
