"""The leak check (`--leak`): a target's tree RSS sampled over N whole requests, then over N streamed ones.

Load comes in 2-second slices at 8 connections until N requests were served; the streamed requests are the 20-chunk
stream (state per request is what leaks; 100k of the 200-chunk stream would take most of an hour of one core).
"""

from __future__ import annotations

from typing import Any

from bench.load import LoadGenerator
from bench.payloads import REQUEST_BODY
from bench.targets import Running

MB = 2**20
FLAT_MB = 5.0  # growth after warm-up below this is flat


def leak_target(targets: tuple[str, ...]) -> str:
    return "gateway-policies" if "gateway-policies" in targets else "gateway-off"


def leak_checks(key: str, running: Running, loadgen: LoadGenerator, total: int, log: Any = print,
                slice_seconds: float = 2.0) -> dict[str, Any]:
    """{"whole": series, "streamed": series} for one target, each as `series()` returns it."""
    out = {"target": key, "whole": series(running, loadgen, running.url, REQUEST_BODY, total, slice_seconds)}
    log(f"   leak check, whole: {_line(out['whole'])}")
    if running.short_stream is not None:
        spec = running.short_stream
        out["streamed"] = series(running, loadgen, running.service.url + spec.path, spec.body, total, slice_seconds)
        log(f"   leak check, streamed: {_line(out['streamed'])}")
    return out


def series(running: Running, loadgen: LoadGenerator, url: str, body: bytes, total: int,
           slice_seconds: float) -> dict[str, Any]:
    samples = [(0, running.service.rss_bytes() / MB)]
    served = errors = 0
    while served < total:
        result = loadgen.run(url, body, 8, slice_seconds, running.headers)
        if not result.requests:
            raise RuntimeError(f"leak check: no request served in a {slice_seconds:g}s slice ({result.errors} errors)")
        served += result.requests
        errors += result.errors
        samples.append((served, running.service.rss_bytes() / MB))
    # the first slices fill pools and caches; growth is judged from the first sample past 10% of the requests
    base = next(rss for n, rss in samples if n >= total * 0.1)
    return {"requests": served, "errors": errors, "samples": samples, "baseline_rss_mb": base,
            "final_rss_mb": samples[-1][1], "growth_mb": samples[-1][1] - base}


def flat(one: dict[str, Any]) -> bool:
    return one["growth_mb"] < FLAT_MB and not one["errors"]


def _line(one: dict[str, Any]) -> str:
    return (f"{one['requests']} requests, rss {one['baseline_rss_mb']:.1f} -> {one['final_rss_mb']:.1f} MB, "
            f"{one['errors']} errors")
