"""The HTTP server: `app` (the ASGI app, model endpoints on raw ASGI, the rest on Starlette), `asgi_io` (bounded
body reads, whole answers), `shutdown` (drain on SIGTERM), `operator_routes` (/metrics, /ui) and the page in `ui/`."""
