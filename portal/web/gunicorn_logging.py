"""gunicorn's error and access logs through Conecta's one formatter (`--logger-class`, which
`conecta run` and `conecta portal` pass): no request path, header or field can start a log line."""

from __future__ import annotations

from gunicorn.glogging import Logger

from portal.core.logs import FORMAT, OneLine


class OneLineLogger(Logger):
    """gunicorn's Logger with every handler's formatter replaced by OneLine."""

    def setup(self, cfg) -> None:  # noqa: ANN001 - gunicorn's Config
        """Let gunicorn open its files and streams, then format through OneLine."""
        super().setup(cfg)
        for log, fmt in ((self.error_log, FORMAT), (self.access_log, "%(message)s")):
            for handler in log.handlers:
                handler.setFormatter(OneLine(fmt))

    def atoms(self, resp, req, environ, request_time) -> dict:  # noqa: ANN001
        """The access log's fields, without the client's address, query or capport token."""
        atoms = super().atoms(resp, req, environ, request_time)
        path = atoms.get("U", "")
        if path.startswith("/capport/"):        # /capport/<session>-<MAC>
            atoms["U"] = "/capport/…"
        atoms.update({"h": "-", "q": "", "r": f"{atoms.get('m', '')} {atoms['U']}", "a": "-", "f": "-"})
        return atoms
