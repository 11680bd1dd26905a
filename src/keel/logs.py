"""Log records as JSON lines when stderr is not a terminal (containers, log shippers), as text
when a person is watching.

One JSON object per line: ``time`` (ISO-8601 UTC), ``level``, ``logger``, ``message``, and
``exc`` (the formatted traceback) when an exception is attached. Extra ``error_id`` etc. passed
through ``extra=`` are kept. No third-party dependency: log collectors (Loki, Elastic, Cloud
Logging) parse this shape as is.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from keel.fmt import to_json

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonLineFormatter(logging.Formatter):
    """A :class:`logging.Formatter` that renders each record as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = to_json(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=repr, allow_nan=False)


def wants_json(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (default stderr) is not an interactive terminal."""
    s = stream if stream is not None else sys.stderr
    try:
        return not s.isatty()
    except (AttributeError, ValueError):
        return True


def configure_logging(level: str, *, json_lines: bool | None = None) -> None:
    """Log to stderr: keel's loggers at ``level``, third-party libraries at WARNING.

    Args:
        level: ``[general] log_level`` (CRITICAL, ERROR, WARNING, INFO or DEBUG).
        json_lines: JSON lines (True), text (False), or by whether stderr is a terminal (None).
    """
    handler = logging.StreamHandler(sys.stderr)
    as_json = wants_json() if json_lines is None else json_lines
    handler.setFormatter(JsonLineFormatter() if as_json else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.WARNING, force=True, handlers=[handler])
    logging.getLogger("keel").setLevel(level)
