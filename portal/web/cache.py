"""A tiny per-app cache with expiry, for what every splash page asks and rarely changes."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps

from flask import current_app


def expiring(seconds: float, limit: int = 10_000) -> Callable:
    """Cache a function of hashable arguments for `seconds`, per app (None results are not cached)."""
    def decorate(fn: Callable) -> Callable:
        @wraps(fn)
        def wrapper(*args: object) -> object:
            store = current_app.extensions.setdefault("conecta_cache", {}).setdefault(fn.__qualname__, {})
            now = time.monotonic()
            hit = store.get(args)
            if hit is not None and now - hit[0] < seconds:
                return hit[1]
            value = fn(*args)
            if value is not None:
                if len(store) >= limit:
                    store.clear()
                store[args] = (now, value)
            return value
        return wrapper
    return decorate
