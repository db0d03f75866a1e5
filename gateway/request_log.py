"""The request log: one line per client request (JSON or text), written off the event loop.

A request hands the logger a small dict; a QueueHandler that does *not* format puts the record on a queue, and a
QueueListener thread formats and writes it, so the event loop never waits on a pipe or a disk. The line holds ids,
names, numbers and flags, never message content or a secret, unless `[logging] log_content = true`.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
import time
from typing import IO, Any

import orjson

from gateway.config import LoggingSettings

REQUEST_LOGGER = "gateway.request"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _DeferredQueueHandler(logging.handlers.QueueHandler):
    """Queues the record as it is: formatting happens in the listener thread, not on the event loop."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


class JsonLineFormatter(logging.Formatter):
    """A request record becomes its own fields; any other record becomes {time, level, logger, message}."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": _iso(record.created), "level": record.levelname.lower()}
        entry = getattr(record, "entry", None)
        if isinstance(entry, dict):
            line.update(entry)
        else:
            line["logger"] = record.name
            line["message"] = record.getMessage()
            if record.exc_info:
                line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextLineFormatter(logging.Formatter):
    """`time LEVEL logger key=value ...` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        head = f"{_iso(record.created)} {record.levelname:<7} {record.name}"
        entry = getattr(record, "entry", None)
        if isinstance(entry, dict):
            return head + " " + " ".join(f"{k}={_text(v)}" for k, v in entry.items() if v is not None and v != [])
        text = f"{head} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def formatter_for(settings: LoggingSettings) -> logging.Formatter:
    return JsonLineFormatter() if settings.format == "json" else TextLineFormatter()


class QueuedLogger:
    """A logger whose records are written by a background thread; `close()` drains the queue."""

    def __init__(self, name: str, settings: LoggingSettings, stream: IO[str] | None = None, propagate: bool = False):
        self.logger = logging.getLogger(name)
        self.logger.setLevel(_LEVELS.get(settings.level, logging.INFO))
        self.logger.propagate = propagate
        for old in [h for h in self.logger.handlers if isinstance(h, _DeferredQueueHandler)]:
            self.logger.removeHandler(old)  # a later app in the same process takes over the logger
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self.handler = _DeferredQueueHandler(records)
        writer = logging.StreamHandler(stream or sys.stderr)
        writer.setFormatter(formatter_for(settings))
        self.listener = logging.handlers.QueueListener(records, writer, respect_handler_level=False)
        self.listener.start()
        self.logger.addHandler(self.handler)

    def close(self) -> None:
        if self.listener._thread is not None:  # stop() is not idempotent
            self.listener.stop()
        self.logger.removeHandler(self.handler)


class RequestLog:
    """Writes one line per request; a failure to log never fails the request (logging swallows handler errors)."""

    def __init__(self, settings: LoggingSettings, stream: IO[str] | None = None) -> None:
        self.enabled = settings.access_log
        self.log_content = settings.log_content
        self._queued = QueuedLogger(REQUEST_LOGGER, settings, stream) if self.enabled else None
        self._info = self._queued.logger.isEnabledFor(logging.INFO) if self._queued else False

    def write(self, entry: dict[str, Any]) -> None:
        if self._info and self._queued is not None:
            self._queued.logger.info("request", extra={"entry": entry})

    def close(self) -> None:
        if self._queued is not None:
            self._queued.close()


def configure_process_logging(settings: LoggingSettings, stream: IO[str] | None = None) -> QueuedLogger:
    """For `gateway serve`: the gateway's own log lines ("gateway.*") in the configured level and format."""
    return QueuedLogger("gateway", settings, stream)


def _iso(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, (dict,)):
        return orjson.dumps(value).decode()
    text = str(value)
    return text if text and " " not in text else orjson.dumps(text).decode()
