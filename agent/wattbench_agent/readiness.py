"""Readiness: is the inference server up? GET the engine preset's probe paths (from the job) in turn."""

import http.client
import socket
import ssl
import urllib.parse
from typing import Dict, List, Optional, Tuple

PROBE_TIMEOUT_S = 2.0


def probe_target(base_url: str, path: str) -> str:
    """The request path for one of the job's `probe_paths`: one starting with `/` is from the server's root
    (`/health`), any other is relative to base_url (`models` with base_url `http://h:8000/v1` is
    `/v1/models`)."""
    if path.startswith("/"):
        return path
    return urllib.parse.urlsplit(base_url).path.rstrip("/") + "/" + path


def _describe(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (nothing listens there yet)"
    if isinstance(error, socket.timeout):
        return "no answer within %g s" % PROBE_TIMEOUT_S
    return str(error) or type(error).__name__


def probe_paths(base_url: str, paths: List[str], timeout: float = PROBE_TIMEOUT_S,
                headers: Optional[Dict[str, str]] = None) -> Tuple[bool, str]:
    """(ready, what went wrong): GET each path in turn, with `headers` (a hosted API's Authorization);
    ready at the first that answers 200. Any other status is not ready (llama-server's /health answers 503
    while the model loads; a hosted API 401 without its key); the first failure is the one reported."""
    parts = urllib.parse.urlsplit(base_url)
    https = parts.scheme == "https"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if https else 80)
    first_error = ""
    for path in paths:
        target = probe_target(base_url, path)
        if https:
            conn = http.client.HTTPSConnection(host, port, timeout=timeout,
                                               context=ssl.create_default_context())  # type: http.client.HTTPConnection
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", target, headers=headers or {})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                return True, ""
            error = "GET %s answered HTTP %d" % (target, response.status)
        except (OSError, http.client.HTTPException) as e:
            error = "GET %s: %s" % (target, _describe(e))
        finally:
            conn.close()
        first_error = first_error or error
    return False, first_error
