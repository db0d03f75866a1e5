"""The gateway's error hierarchy: each error knows its HTTP status and OpenAI error `type` / `code`.

GatewayError
├── InvalidRequest                 400 invalid_request_error
│   ├── ContextLengthExceeded      400 code=context_length_exceeded
│   └── ContentPolicyViolation     400 code=content_policy_violation
├── AuthenticationFailed           401 code=invalid_api_key
├── PermissionDenied               403 code=model_not_allowed
├── NotFound                       404
│   ├── ModelNotFound              404 code=model_not_found
│   └── RecordingNotFound          404 code=recording_not_found
├── MethodNotAllowed               405
├── PayloadTooLarge                413
├── RateLimited                    429 code=rate_limit_exceeded (+ Retry-After)
│   └── QuotaExceeded              429 code=insufficient_quota
├── ServiceUnavailable             503 (shutting down, optional extra missing, no usable deployment)
│   └── ProviderNotConfigured      503 code=provider_not_configured (e.g. no api key)
└── UpstreamError                  502 (any upstream failure; keeps the upstream status and message)
    ├── UpstreamTimeout            504
    ├── UpstreamUnavailable        503 (connection refused / reset before a response)
    ├── UpstreamRateLimited        429 (+ Retry-After)
    ├── UpstreamStatusError        the upstream's own 4xx status, or 502 for 5xx
    ├── UpstreamMalformed          502 (unparseable body or SSE line, an encoding it cannot read)
    ├── UpstreamIncomplete         502 code=upstream_stream_incomplete (a stream cut before its end marker),
    │                                  upstream_answer_truncated (a body shorter than it said)
    └── UpstreamTooLarge           502 code=upstream_answer_too_large (past the provider's cap),
                                       upstream_event_too_large, upstream_inflated_too_large

Errors become HTTP responses in exactly one place (server/errors.py) through `to_body()`.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status: int = 500
    type: str = "api_error"
    code: str | None = None
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers: dict[str, str] = headers or {}

    def to_body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class ContentPolicyViolation(InvalidRequest):
    code = "content_policy_violation"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "model_not_allowed"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class RecordingNotFound(NotFound):
    code = "recording_not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        if retry_after is not None:
            self.headers.setdefault("retry-after", str(max(1, round(retry_after))))


class QuotaExceeded(RateLimited):
    type = "insufficient_quota"
    code = "insufficient_quota"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "api_error"
    code = "service_unavailable"


class ProviderNotConfigured(ServiceUnavailable):
    code = "provider_not_configured"


class UpstreamError(GatewayError):
    """Any failure of an upstream. `upstream_status` is what the upstream said, when it said anything."""

    status = 502
    type = "api_error"
    code = "bad_gateway"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        upstream_status: int | None = None,
        kind: str = "error",
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.provider = provider
        self.upstream_status = upstream_status
        self.kind = kind  # bounded label for metrics: timeout, connect, 429, 4xx, 5xx, malformed


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamUnavailable(UpstreamError):
    status = 503
    code = "upstream_unavailable"


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        if retry_after is not None:
            self.headers.setdefault("retry-after", str(max(1, round(retry_after))))


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an error status: 4xx is passed on as is (not retryable), 5xx becomes 502."""

    def __init__(self, message: str, *, upstream_status: int, type: str | None = None, **kwargs: Any) -> None:
        client_error = 400 <= upstream_status < 500
        kwargs.setdefault("status", upstream_status if client_error else 502)
        super().__init__(message, upstream_status=upstream_status, **kwargs)
        self.retryable = not client_error
        if type:
            self.type = type
        elif client_error:
            self.type = "invalid_request_error"


class UpstreamMalformed(UpstreamError):
    code = "upstream_malformed_response"


class UpstreamIncomplete(UpstreamError):
    """The upstream's answer ended before its protocol says it is whole: never passed off as a complete one."""

    code = "upstream_stream_incomplete"


class UpstreamTooLarge(UpstreamError):
    """The upstream's answer (or one event of its stream) is past what the gateway reads for that provider."""

    code = "upstream_answer_too_large"
