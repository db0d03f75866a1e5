"""nginx configs: the upstream (fixed answers from `return 200`) and the machine's proxy limit (keep-alive upstream).

Each runs as its own nginx with one worker process, so it is measured on the same footing as a one-worker gateway.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bench.payloads import COMPLETION_BODY, SHORT_STREAM_BODY, STREAM_BODY


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def _common(prefix: Path) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""  # as root, workers must still read the temp dirs made here
    return f"""{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
"""


def upstream_config(prefix: Path, port: int) -> str:
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "stream.sse").write_bytes(STREAM_BODY)
    (prefix / "short.sse").write_bytes(SHORT_STREAM_BODY)
    return _common(prefix) + f"""
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /v1/chat/completions {{ default_type application/json; return 200 {_quoted(COMPLETION_BODY)}; }}
        # the stream is too long for a config string: a file, reached by turning the POST's 405 into a GET of it
        location = /stream/v1/chat/completions {{ error_page 405 =200 /stream.sse; return 405; }}
        location = /stream.sse {{ internal; root {prefix}; default_type text/event-stream; }}
        location = /short/v1/chat/completions {{ error_page 405 =200 /short.sse; return 405; }}
        location = /short.sse {{ internal; root {prefix}; default_type text/event-stream; }}
        location = /health {{ default_type application/json; return 200 '{{"status": "ok"}}'; }}
    }}
}}
"""


def proxy_config(prefix: Path, port: int, upstream_port: int) -> str:
    return _common(prefix) + f"""
    upstream bench_upstream {{ server 127.0.0.1:{upstream_port}; keepalive 128; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def write_config(prefix: Path, text: str) -> Path:
    prefix.mkdir(parents=True, exist_ok=True)
    path = prefix / "nginx.conf"
    path.write_text(text)
    return path


def argv(prefix: Path, config: Path) -> list[str]:
    binary = nginx_binary()
    assert binary is not None
    return [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(config)]


def _quoted(body: bytes) -> str:
    """An nginx single-quoted string: backslash, quote and newline escaped; `$` would start a variable."""
    text = body.decode()
    assert "$" not in text, "nginx would expand $ in a return body"
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
