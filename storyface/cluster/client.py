"""The caller's side of the wire: JSON over HTTP to the cluster's gateway, with a token and retries.

Plain HTTP (httpx), so the web app, the CLI and the job worker need no Ray to use a cluster. The
gateway already retries a request whose replica died on another replica; this side retries only
what never reached the gateway (a refused connection, a proxy's 502/503/504), a bounded number of
times, and turns every failure into a :class:`~storyface.cluster.protocol.ClusterError` that says
what to do.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import InputError
from ..limits import LOCAL_HOSTS
from .protocol import API, TOKEN_ENV, ClusterError, raise_reply_error

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # a gateway that does not answer a connection in 10 s is down or unreachable
# A request can wait behind others at a busy replica: a queued training job at a real model takes
# minutes. Half an hour bounds a request that will never come back without cutting a long queue.
READ_TIMEOUT_S = 1800.0
ATTEMPTS = 3  # tries of a request that did not reach the gateway (it retries dead replicas itself)
BACKOFF_S = 1.0  # wait before the second try; doubled before each further one
RETRY_STATUS = frozenset({502, 503, 504})  # a proxy's answers while the gateway (re)starts


def cluster_url(url: str) -> str:
    """``http(s)://host:port`` (no path): the Serve HTTP address ``storyface serve`` printed."""
    parts = urlsplit(url.strip() if isinstance(url, str) else "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"cluster address {url!r} must look like http://HOST:PORT (what `storyface serve` printed)")
    return f"{parts.scheme}://{parts.netloc}"


class ClusterClient:
    """Sends requests to one cluster; safe to share between threads (httpx pools connections)."""

    def __init__(
        self, url: str, token: str | None = None, *, attempts: int = ATTEMPTS, read_timeout_s: float = READ_TIMEOUT_S
    ) -> None:
        import httpx

        self.url = cluster_url(url)
        self.token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self.attempts = max(1, attempts)
        host = urlsplit(self.url).hostname
        if self.token and self.url.startswith("http://") and host not in LOCAL_HOSTS:
            log.warning("the cluster token travels unencrypted to %s; put the gateway behind TLS (https)", host)
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        timeout = httpx.Timeout(CONNECT_TIMEOUT_S, read=read_timeout_s)
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, trust_env=False)

    def info(self) -> dict[str, Any]:
        """The model the cluster runs (what a ClusterModel stands in for) and its request limits."""
        return self.call("GET", "info")

    def call(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One request's reply; a reply carrying an error is raised as that error."""
        import httpx

        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._http.request(method, f"{API}/{path}", json=payload)
            except httpx.TimeoutException as exc:
                raise ClusterError(f"the cluster at {self.url} did not answer in time ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                last = f"cannot reach it: {exc}"
            else:
                reply = _json(response)
                if reply is not None and (response.is_success or "error" in reply):
                    raise_reply_error(reply)
                    return reply
                if response.status_code not in RETRY_STATUS:
                    raise ClusterError(_http_error(self.url, response))
                last = f"HTTP {response.status_code}"
            if attempt < self.attempts:
                log.warning("cluster request %s failed (%s); trying again (%d of %d)", path, last, attempt + 1, self.attempts)
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        raise ClusterError(
            f"the cluster at {self.url} failed {self.attempts} times ({last}); is `storyface serve` running there?"
        )

    def close(self) -> None:
        self._http.close()


def _json(response: Any) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _http_error(url: str, response: Any) -> str:
    if response.status_code in (401, 403):
        return f"the cluster at {url} refused the token: set {TOKEN_ENV} to the token `storyface serve` was given"
    if response.status_code == 404:
        return f"{url} answers, but not as a StoryFace cluster (HTTP 404 for {API}/): check the address and port"
    return f"the cluster at {url} answered HTTP {response.status_code}: {response.text[:200]}"
