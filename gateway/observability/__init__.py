"""What operators see: `observer` (called at a request's start, first chunk and end), `metrics` (Prometheus
series), `request_log` (one line per request, off the loop) and `usage_stats` (the figures /ui and `gateway stats`
show)."""
