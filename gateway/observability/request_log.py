"""The request log: one line per client request (JSON or text), written off the event loop.

A request line is formatted on the event loop (orjson, ~2 us) and queued; other records go through a QueueHandler
that does *not* format. A writer thread formats those and writes what queued up every 50 ms in one write, so the
event loop never waits on a pipe or a disk, and a busy server does not pay a thread wake-up (a GIL hand-off) per
line. The line holds ids,
names, numbers and flags, never message content or a secret, unless `[logging] log_content = true`.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
import threading
import time
from typing import IO, Any

import orjson

from llm_gateway.config.settings import LoggingSettings

REQUEST_LOGGER = "gateway.request"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _DeferredQueueHandler(logging.handlers.QueueHandler):
    """Queues the record as it is: formatting happens in the writer thread, not on the event loop."""

    def __init__(self, records: queue.SimpleQueue[Any], writer: BatchWriter) -> None:
        super().__init__(records)
        self.writer = writer

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        if not self.writer.started:
            self.writer.start()
        super().enqueue(record)


class JsonLineFormatter(logging.Formatter):
    """A request entry becomes its own fields; any other record becomes {time, level, logger, message}."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": _iso(record.created), "level": record.levelname.lower()}
        line["logger"] = record.name
        line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()

    def format_entry(self, created: float, entry: dict[str, Any]) -> str:
        return orjson.dumps({"time": _iso(created), "level": "info", **entry}, default=str).decode()


class TextLineFormatter(logging.Formatter):
    """`time LEVEL logger key=value ...` for people reading a terminal."""

    def format_entry(self, created: float, entry: dict[str, Any]) -> str:
        pairs = " ".join(f"{k}={_text(v)}" for k, v in entry.items() if v is not None and v != [])
        return f"{_iso(created)} INFO    {REQUEST_LOGGER} {pairs}"

    def format(self, record: logging.LogRecord) -> str:
        head = f"{_iso(record.created)} {record.levelname:<7} {record.name}"
        text = f"{head} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def formatter_for(settings: LoggingSettings) -> JsonLineFormatter | TextLineFormatter:
    return JsonLineFormatter() if settings.format == "json" else TextLineFormatter()


class BatchWriter:
    """Drains a queue every `interval` seconds: formats what queued up and writes it to the stream at once.

    The queue holds log records, or request lines already formatted (cheaper to make than a LogRecord).
    """

    def __init__(
        self,
        records: queue.SimpleQueue[Any],
        stream: IO[str],
        formatter: JsonLineFormatter | TextLineFormatter,
        interval: float = 0.05,
    ) -> None:
        self.records = records
        self.stream = stream
        self.formatter = formatter
        self.interval = interval
        self.dropped = 0  # lines that could not be written (a closed or broken stream)
        self.started = False  # the thread starts with the first line: an app that never logs costs no thread
        self._stop = threading.Event()
        self._starting = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="gateway-log-writer", daemon=True)

    def start(self) -> None:
        with self._starting:  # records may come from several threads (logging is thread-safe; so is this)
            if not self.started and not self._stop.is_set():
                self.started = True
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.drain()
        self.drain()

    def drain(self) -> None:
        lines: list[str] = []
        while True:
            try:
                record = self.records.get_nowait()
            except queue.Empty:
                break
            try:
                if isinstance(record, str):  # a request line, formatted by RequestLog.write
                    lines.append(record)
                else:
                    lines.append(self.formatter.format(record))
            except Exception:  # noqa: BLE001 - one unformattable record must not stop the log
                self.dropped += 1
        if not lines:
            return
        try:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: the gateway keeps serving
            self.dropped += len(lines)

    def close(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            if self.started:
                self._thread.join(timeout=5)
            self.drain()  # whatever came in after the thread's last pass


class QueuedLogger:
    """A logger whose records are written by a background thread; `close()` drains the queue."""

    def __init__(self, name: str, settings: LoggingSettings, stream: IO[str] | None = None, propagate: bool = False):
        self.logger = logging.getLogger(name)
        self.logger.setLevel(_LEVELS.get(settings.level, logging.INFO))
        self.logger.propagate = propagate
        for old in [h for h in self.logger.handlers if isinstance(h, _DeferredQueueHandler)]:
            self.logger.removeHandler(old)  # a later app in the same process takes over the logger
        self.records: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.writer = BatchWriter(self.records, stream or sys.stderr, formatter_for(settings))
        self.handler = _DeferredQueueHandler(self.records, self.writer)
        self.logger.addHandler(self.handler)

    def close(self) -> None:
        """Write what is queued and stop the writer."""
        self.logger.removeHandler(self.handler)
        self.writer.close()


class RequestLog:
    """Writes one line per request; a failure to log never fails the request (logging swallows handler errors)."""

    def __init__(self, settings: LoggingSettings, stream: IO[str] | None = None) -> None:
        self.enabled = settings.access_log
        self.log_content = settings.log_content
        self._queued = QueuedLogger(REQUEST_LOGGER, settings, stream) if self.enabled else None
        self._info = self._queued.logger.isEnabledFor(logging.INFO) if self._queued else False

    def write(self, entry: dict[str, Any]) -> None:
        queued = self._queued
        if self._info and queued is not None:
            if not queued.writer.started:
                queued.writer.start()
            # formatted here (~2 us) and straight onto the writer's queue: no LogRecord, no handler locks, and the
            # writer thread only joins and writes, so it holds the GIL for a moment each 50 ms
            try:
                line = queued.writer.formatter.format_entry(time.time(), entry)
            except Exception:  # noqa: BLE001 - an unformattable entry is dropped and counted, the request goes on
                queued.writer.dropped += 1
                return
            queued.records.put_nowait(line)

    def close(self) -> None:
        if self._queued is not None:
            self._queued.close()


def configure_process_logging(settings: LoggingSettings, stream: IO[str] | None = None) -> QueuedLogger:
    """For `gateway serve`: the gateway's own log lines ("gateway.*") in the configured level and format."""
    queued = QueuedLogger("gateway", settings, stream)
    atexit.register(queued.close)  # the writer is a daemon thread: write what is queued before the process ends
    return queued


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text: strftime cost ~2.5 us a line


def _iso(created: float) -> str:
    whole = int(created)
    if whole != _second[0]:
        _second[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second[0] = whole
    return f"{_second[1]}.{int(created % 1 * 1000):03d}Z"


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, (dict,)):
        return orjson.dumps(value).decode()
    text = str(value)
    return text if text and " " not in text else orjson.dumps(text).decode()
