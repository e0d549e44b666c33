"""Structured logs: one JSON object per line on stderr.

What may appear in a log: event names, node and key ids, counts, sizes, durations, HTTP
method, path and status. What never does: names, dates of birth, DICOM attribute values,
clinical text, query strings (a DICOMweb search carries PatientName there), request or
response bodies. Log call sites pass fields explicitly (``extra={"fields": {...}}``)
so that nothing is logged by accident.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, RequestKey, StreamResponse

LOGGER = "tsfnode"

# Set by a handler whose requests are many per bundle (a chunk PUT: hundreds for a CT):
# its plain successes (204) get their line at debug level only (`[log] level = "debug"`),
# the transfer service logging the bundle's progress at info instead (first chunks, all
# held); any other answer gets its line at info.
LOGGED_PER_BUNDLE = RequestKey("logged_per_bundle", bool)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type and where, not its message: messages can carry data.
            out["error"] = record.exc_info[0].__name__
        return json.dumps(out, ensure_ascii=False, default=str)


def setup_logging(level: str = "info", stream: IO[str] | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pydicom's log records quote attribute values (which may identify a patient): none
    # of them may reach the node's log.
    pydicom_log = logging.getLogger("pydicom")
    pydicom_log.handlers[:] = [logging.NullHandler()]
    pydicom_log.propagate = False
    # aiosqlite's debug records quote every statement's parameters (a pseudonym map's
    # rows): never in the log, whatever its level.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path without its query string, status, size, time;
    at debug level for a 204 to a request marked ``LOGGED_PER_BUNDLE``."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        level = logging.INFO
        if response.status == 204 and request.get(LOGGED_PER_BUNDLE):
            level = logging.DEBUG
            if not self.logger.isEnabledFor(level):
                return
        self.logger.log(
            level,
            "http request",
            extra={
                "fields": {
                    "method": request.method,
                    "path": request.rel_url.path,
                    "status": response.status,
                    "bytes": response.body_length,
                    "ms": round(time * 1000, 1),
                }
            },
        )


def log(event: str, /, level: int = logging.INFO, **fields: Any) -> None:
    logging.getLogger(LOGGER).log(level, event, extra={"fields": fields})
