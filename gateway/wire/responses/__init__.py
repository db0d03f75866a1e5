"""POST /v1/responses as a translation over the chat pipeline: `format` (request and answer), `events` (the
stream's event sequence), `api` (the Wire that joins them)."""
