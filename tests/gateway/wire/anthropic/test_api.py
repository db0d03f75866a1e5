"""Anthropic's error envelope and statuses, and its rate-limit header names."""

from __future__ import annotations

import pytest

from llm_gateway.vocab.errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from llm_gateway.wire.anthropic.api import error_body, error_status, ratelimit_headers


@pytest.mark.parametrize(("error", "status", "etype"), [
    (InvalidRequest("x"), 400, "invalid_request_error"),
    (AuthenticationFailed("x"), 401, "authentication_error"),
    (PermissionDenied("x"), 403, "permission_error"),
    (ModelNotFound("x"), 404, "not_found_error"),
    (PayloadTooLarge("x"), 413, "request_too_large"),
    (RateLimited("x", retry_after=3), 429, "rate_limit_error"),
    (QuotaExceeded("x"), 429, "rate_limit_error"),
    (UpstreamStatusError("x", upstream_status=500), 502, "api_error"),
    (UpstreamTimeout("x"), 504, "timeout_error"),
    (UpstreamUnavailable("x", upstream_status=529, code="overloaded"), 529, "overloaded_error"),
    (GatewayError("x"), 500, "api_error"),
])
def test_errors_in_anthropics_envelope_and_statuses(error: GatewayError, status: int, etype: str) -> None:
    assert error_status(error) == status
    assert error_body(error) == {"type": "error", "error": {"type": etype, "message": "x"}}


def test_rate_limit_headers_are_renamed_and_resets_become_instants() -> None:
    headers = {"x-request-id": "r", "retry-after": "2", "x-ratelimit-limit-requests": "60",
               "x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "1m30s",
               "x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "900",
               "x-ratelimit-reset-tokens": "1.5s"}
    out = ratelimit_headers(headers, now=1_700_000_000.0)
    assert out == {"x-request-id": "r", "retry-after": "2", "anthropic-ratelimit-requests-limit": "60",
                   "anthropic-ratelimit-requests-remaining": "59",
                   "anthropic-ratelimit-requests-reset": "2023-11-14T22:14:50Z",
                   "anthropic-ratelimit-tokens-limit": "1000", "anthropic-ratelimit-tokens-remaining": "900",
                   "anthropic-ratelimit-tokens-reset": "2023-11-14T22:13:21Z"}
    plain = {"x-request-id": "r"}
    assert ratelimit_headers(plain) is plain
