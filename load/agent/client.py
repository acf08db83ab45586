"""The agent's client: what a chaos controller (the Locust plugin, a hook) uses to talk to
`python -m load agent` over HTTP. Standard library only; imports neither the server nor
the stack it supervises."""

import http.client
import json
import re
from typing import Any
from urllib.parse import urlsplit

from load.config.settings import ConfigError

NEXT_OFFSET_HEADER = "X-Next-Offset"
REFUSED_TOKEN = "the agent refused the token: check --agent-token"


def hidden(token: str) -> str:
    """What an error message shows instead of a token."""
    return f"<hidden, {len(token)} characters>"


class AgentError(RuntimeError):
    """The agent refused or failed a request, or could not be reached (status None)."""

    def __init__(self, url: str, status: int | None, message: str, body: dict | None = None):
        where = f"agent {url}" + (f" answered {status}" if status is not None else "")
        super().__init__(f"{where}: {message}")
        self.url, self.status, self.message, self.body = url, status, message, body or {}


class AgentClient:
    """Talks to an agent; every failure is an AgentError (the token never appears in one)."""

    def __init__(self, url: str, token: str, timeout: float = 300.0):
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or port == -1
            or parts.path not in ("", "/")
        ):
            raise ConfigError(
                "agent_url", url, "expected http://HOST:PORT (what the agent printed when it started)"
            )
        if not isinstance(token, str) or not re.fullmatch(r"[\x21-\x7e]+", token):
            raise ConfigError(
                "agent_token",
                hidden(token if isinstance(token, str) else ""),
                "give the token the agent was started with",
            )
        if isinstance(timeout, bool) or not timeout > 0:
            raise ConfigError("agent_timeout", timeout, "must be a positive number of seconds")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.timeout = timeout
        self._parts = parts
        self._token = token

    def __repr__(self) -> str:
        return f"AgentClient({self.url!r})"

    def status(self) -> dict:
        return self._json("GET", "/status")

    def restart(self, instance: int | str, mode: str = "graceful", together: bool = False) -> list[dict]:
        return self._json("POST", "/restart", {"instance": instance, "mode": mode, "together": together})

    def stop_instance(self, instance: int, mode: str = "graceful") -> dict:
        return self._json("POST", "/stop", {"instance": instance, "mode": mode})

    def start_instance(self, instance: int) -> dict:
        return self._json("POST", "/start", {"instance": instance})

    def set_asgi_threads(self, threads: int | None, restart: str | None = None) -> dict:
        return self._json("POST", "/asgi-threads", {"threads": threads, "restart": restart})

    def events(self, since: int = 0) -> dict:
        """{"events": [...], "next": N}: pass N as `since` next time to get only new events."""
        return self._json("GET", f"/events?since={since}")

    def logs(self, instance: int, generation: int, offset: int = 0) -> tuple[bytes, int]:
        """(bytes of the log from offset, at most 1 MiB; the offset to ask from next time)."""
        status, headers, body = self._request(
            "GET", f"/logs?instance={instance}&generation={generation}&offset={offset}"
        )
        self._check(status, body)
        try:
            return body, int(headers.get(NEXT_OFFSET_HEADER, ""))
        except ValueError:
            raise AgentError(self.url, status, f"the reply has no {NEXT_OFFSET_HEADER} header") from None

    def _json(self, method: str, path: str, payload: dict | None = None) -> Any:
        status, _headers, body = self._request(method, path, payload)
        self._check(status, body)
        try:
            return json.loads(body)
        except ValueError:
            raise AgentError(
                self.url, status, f"the reply to {method} {path} is not JSON: {body[:80]!r}"
            ) from None

    def _request(
        self, method: str, path: str, payload: dict | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        connection_class = (
            http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
        )
        assert self._parts.hostname is not None  # __init__ refuses a URL without one
        connection = connection_class(self._parts.hostname, self._parts.port, timeout=self.timeout)
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        except TimeoutError:
            raise AgentError(
                self.url,
                None,
                f"no answer to {method} {path} within {self.timeout:g} s (restarts take up to kill_after + ready_timeout per instance; raise the timeout)",
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise AgentError(
                self.url,
                None,
                f"cannot reach the agent ({exc or type(exc).__name__}); is it running, and is this its URL?",
            ) from None
        finally:
            connection.close()

    def _check(self, status: int, body: bytes) -> None:
        if status == 401:
            raise AgentError(self.url, 401, REFUSED_TOKEN)
        if 200 <= status < 300:
            return
        try:
            detail = json.loads(body)
            message = str(detail["error"])
        except (ValueError, KeyError, TypeError):
            detail, message = {}, (body.decode("utf-8", "replace").strip().splitlines() or ["(no body)"])[0]
        raise AgentError(self.url, status, message, detail if isinstance(detail, dict) else {})
