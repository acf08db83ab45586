"""An HTTP control API over a Stack, for a chaos controller on another machine.

The agent runs on the server host next to its Daphne processes, supervises them with the
same code as the local stack (load.supervise.stack.Stack), and answers JSON over plain HTTP:

    GET  /status                                  instances, Redis URL, number of events
    POST /restart       {"instance": 0 | "all", "mode": "graceful" | "hard", "together": false}
                        (mode: graceful if left out; together: all at once rather than in turn)
    POST /stop          {"instance": 0, "mode": "graceful" | "hard"}      (an outage)
    POST /start         {"instance": 0}
    POST /asgi-threads  {"threads": 4 | null, "restart": "graceful" | "hard" | null}
    GET  /events?since=N                          the stack's events from N on
    GET  /logs?instance=N&generation=G&offset=B   raw bytes of a Daphne log from B on

Every request carries `Authorization: Bearer <token>`; without it the agent answers 401
and does nothing. Changes (restart, stop, start, threads) run one at a time under one
lock. Reads (status, events, logs) never wait for that lock, so a controller can follow
a slow graceful restart while it happens. Errors are `{"error": "<one line>"}` with 400
(a bad value, named), 401, 404, 405, 409 (the instance is not in a state for that) or
500 (a process failed; the log tail comes along). A traceback never reaches the client.

Standard library HTTP only; this module must not import locust or gevent.
"""

import hmac
import ipaddress
import json
import re
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from load.agent.client import NEXT_OFFSET_HEADER, hidden
from load.config.settings import RESTART_MODES, ConfigError, StackConfig
from load.runfolder.eventlog import EventLog, format_event
from load.runfolder.names import EVENT, EVENTS_JSONL, EXITED, SPAWNED
from load.supervise.redisserver import StackError
from load.supervise.stack import Stack

MIN_TOKEN_LENGTH = 16
LOG_CHUNK_BYTES = 1024 * 1024  # the most one GET /logs returns
MAX_BODY_BYTES = 64 * 1024
GENERATION_HEADER = "X-Generation"
TOKEN_HINT = "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"

Log = Callable[[str], None]


# -- configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class AgentConfig:
    """Where the agent listens and the token every request must carry (never printed)."""

    token: str = field(repr=False)
    bind: str = "127.0.0.1"
    port: int = 0  # 0: the OS picks a free port; Agent.url reports it

    def validate(self) -> "AgentConfig":
        token = self.token
        if not isinstance(token, str) or not token:
            raise ConfigError(
                "token", "", f"the agent needs a secret token of {MIN_TOKEN_LENGTH}+ characters, {TOKEN_HINT}"
            )
        if not re.fullmatch(r"[\x21-\x7e]+", token):
            raise ConfigError(
                "token", hidden(token), "use printable ASCII without spaces (it travels in an HTTP header)"
            )
        if len(token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                "token", hidden(token), f"too weak: use at least {MIN_TOKEN_LENGTH} characters, {TOKEN_HINT}"
            )
        if not isinstance(self.bind, str) or not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", self.bind):
            raise ConfigError(
                "bind", self.bind, "give an address of this host, e.g. 127.0.0.1 (default) or 0.0.0.0"
            )
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError("port", self.port, "a TCP port from 1 to 65535, or 0 to let the OS pick one")
        return self


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# -- the server ---------------------------------------------------------------------------


class _Refusal(Exception):
    """A request the agent answers with an error status and one line (plus optional fields)."""

    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.message, self.extra = status, message.splitlines()[0] if message else "?", extra


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""


def _json_reply(status: int, payload: Any, **headers: str) -> _Reply:
    return _Reply(status, json.dumps(payload, default=str).encode(), headers=headers)


def _error_reply(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> _Reply:
    reply = _json_reply(status, {"error": message, **extra})
    reply.headers.update(headers or {})
    reply.error = message
    return reply


def _show(value: Any) -> str:
    """A request value as the client wrote it, for error messages: 5, "soft", null."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


CLOSE_LOCK_WAIT = 10.0  # seconds stop() waits for a change in progress


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    agent: "Agent"

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for this host's name (getfqdn), which can hang.
        socketserver.TCPServer.server_bind(self)
        # An AF_INET/AF_INET6 server's address is (host str, port, ...); typeshed allows any socket family.
        self.server_name, self.server_port = cast(str, self.server_address[0]), self.server_address[1]


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "channels-chaos-agent"
    sys_version = ""
    timeout = 30  # a client that stops sending mid-request frees its thread

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        agent = self.server.agent
        try:
            reply = agent.handle(method, self.path, self.headers.get("Authorization"), self._read_body)
        except BaseException:  # handle() answers every error itself; this is a last resort
            agent.log_traceback(method, self.path)
            reply = _error_reply(500, "internal error in the agent; see its output")
        self._send(reply)
        agent.log_request(self.client_address[0], method, self.path, reply)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise _Refusal(411, "send the body with a Content-Length (chunked bodies are not read)")
        length = self.headers.get("Content-Length") or "0"
        if not is_whole_number(length):
            raise _Refusal(400, f"Content-Length={_show(length)}: not a number of bytes")
        if int(length) > MAX_BODY_BYTES:
            raise _Refusal(413, f"body of {length} bytes: the agent reads at most {MAX_BODY_BYTES}")
        return self.rfile.read(int(length))

    def _send(self, reply: _Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            pass  # the client went away; the operation itself already ran

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests rejected by http.server itself get a JSON body too."""
        self.close_connection = True
        self._send(_error_reply(code, message or self.responses.get(code, ("error",))[0]))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
        pass  # Agent.log_request reports what matters, without the polling noise


class Agent:
    """Serves the control API for one Stack on a background thread."""

    def __init__(self, stack: Stack, config: AgentConfig, log: Log | None = None):
        self.stack = stack
        self.config = config.validate()
        self.log = log
        self.lock = threading.Lock()  # held by every change to the stack
        self._token = config.token.encode()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._routes: dict[str, tuple[str, Callable[..., _Reply]]] = {
            "/status": ("GET", self._status),
            "/events": ("GET", self._events),
            "/logs": ("GET", self._logs),
            "/restart": ("POST", self._restart),
            "/stop": ("POST", self._stop),
            "/start": ("POST", self._start),
            "/asgi-threads": ("POST", self._asgi_threads),
        }

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> "Agent":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def bind(self) -> "Agent":
        """Take the listening socket now (requests wait in the backlog until start)."""
        if self._server is not None:
            return self
        host, port = self.config.bind, self.config.port
        server_class = _Server6 if ":" in host else _Server
        try:
            self._server = server_class((host, port), _Handler)
        except socket.gaierror:
            raise ConfigError("bind", host, "not an address of this host; try 127.0.0.1 or 0.0.0.0") from None
        except OSError as exc:
            if port and exc.errno in (98, 48):  # EADDRINUSE on Linux, macOS
                raise ConfigError(
                    "port", port, f"{host}:{port} is in use; choose another port, or 0 to let the OS pick"
                ) from None
            raise ConfigError("bind", host, f"cannot listen there: {exc.strerror or exc}") from None
        self._server.agent = self
        return self

    def start(self) -> "Agent":
        """Bind (unless bound) and serve on a background thread."""
        self.bind()
        assert self._server is not None  # bind() either sets it or raises
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="agent-http",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, then wait for a change in progress; later requests get 503."""
        if self._server is not None and not self._closed:
            if self._thread is not None:
                self._server.shutdown()
                self._thread.join()
            self._server.server_close()
        # Bounded: an interrupt landing in the main thread just after _watch took the lock
        # (before its try) would leave it held, and the stop must not wait for it forever.
        acquired = self.lock.acquire(timeout=CLOSE_LOCK_WAIT)
        try:
            self._closed = True
        finally:
            if acquired:
                self.lock.release()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the agent listens on, once bound."""
        assert self._server is not None, "the agent is not bound yet: call start()"
        return cast(str, self._server.server_address[0]), self._server.server_address[
            1
        ]  # see _Server.server_bind

    @property
    def loopback(self) -> bool:
        return is_loopback(self.address[0])

    @property
    def url(self) -> str:
        host, port = self.address
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()  # listening everywhere: name the host, not the wildcard
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    # -- requests ------------------------------------------------------------------------

    def handle(
        self, method: str, target: str, authorization: str | None, read_body: Callable[[], bytes]
    ) -> _Reply:
        """One request, from the token check to the reply; every error becomes a reply."""
        if not self._authorized(authorization):
            return _error_reply(
                401,
                "missing or wrong token: send Authorization: Bearer <token>",
                {"WWW-Authenticate": "Bearer"},
            )
        url = urlsplit(target)
        route = self._routes.get(url.path)
        if route is None:
            endpoints = ", ".join(f"{m} {p}" for p, (m, _) in self._routes.items())
            return _error_reply(404, f"no such endpoint {url.path}; the agent serves {endpoints}")
        allowed, action = route
        if method != allowed:
            return _error_reply(405, f"{url.path} takes {allowed}, not {method}", {"Allow": allowed})
        try:
            if allowed == "GET":
                return action(_query(url.query))
            return action(_json_object(read_body()))
        except _Refusal as refusal:
            return _error_reply(refusal.status, refusal.message, **refusal.extra)
        except ConfigError as exc:
            return _error_reply(400, str(exc).splitlines()[0])
        except StackError as exc:
            first, *rest = str(exc).splitlines() or ["a process of the stack failed"]
            return _error_reply(500, first, log_tail=rest)
        except Exception:
            self.log_traceback(method, target)
            return _error_reply(500, "internal error in the agent; see its output")

    def _authorized(self, authorization: str | None) -> bool:
        scheme, _, credentials = (authorization or "").partition(" ")
        given = credentials.strip().encode("utf-8", "replace")
        return scheme.lower() == "bearer" and hmac.compare_digest(given, self._token)

    def _status(self, query: dict[str, str]) -> _Reply:
        _only(query, set())
        return _json_reply(
            200,
            {
                "instances": self.stack.status(),
                "redis_url": _without_password(self.stack.redis_url),
                "events": len(self.stack.events),
            },
        )

    def _events(self, query: dict[str, str]) -> _Reply:
        _only(query, {"since"})
        since, count = _whole(query, "since", 0), len(self.stack.events)
        if since > count:
            raise _Refusal(400, f"since={since}: the agent has {count} events (was it restarted?)")
        events = self.stack.events[since:]  # one slice: `next` matches exactly what was sent
        return _json_reply(200, {"events": events, "next": since + len(events)})

    def _logs(self, query: dict[str, str]) -> _Reply:
        _only(query, {"instance", "generation", "offset"})
        index = self._instance(_whole(query, "instance", None))
        instance = self.stack.instances[index]
        generations = self._log_paths(instance.name)
        generation = _whole(query, "generation", instance.generation)
        if generation not in generations:
            known = f"{min(generations)} to {max(generations)}" if generations else "none yet"
            raise _Refusal(400, f"generation={generation}: {instance.name} has generations {known}")
        offset = _whole(query, "offset", 0)
        with open(generations[generation], "rb") as log:
            size = log.seek(0, 2)
            if offset > size:
                raise _Refusal(
                    400,
                    f"offset={offset}: the log of {instance.name} generation {generation} has {size} bytes",
                )
            log.seek(offset)
            data = log.read(LOG_CHUNK_BYTES)
        return _Reply(
            200,
            data,
            "application/octet-stream",
            {
                NEXT_OFFSET_HEADER: str(offset + len(data)),
                GENERATION_HEADER: str(generation),
            },
        )

    def _log_paths(self, name: str) -> dict[int, Path]:
        """Every generation's log file of one instance, from the stack's `spawned` events."""
        return {
            e["generation"]: Path(e["log"])
            for e in list(self.stack.events)
            if e[EVENT] == SPAWNED and e.get("instance") == name
        }

    def _restart(self, body: dict) -> _Reply:
        _fields(body, required={"instance"}, optional={"mode", "together"})
        mode = _mode(body.get("mode", "graceful"), "mode")
        together = body.get("together", False)
        if not isinstance(together, bool):
            raise _Refusal(
                400, f"together={_show(together)}: true (all at once) or false (one after another)"
            )
        with self._changing():
            indexes = self._instances(body["instance"], allow_all=True)
            if together:
                return _json_reply(200, self._restart_together(indexes, mode))
            return _json_reply(200, self._restart_each(indexes, mode))

    def _restart_together(self, indexes: list[int], mode: str) -> list[dict]:
        try:
            outcomes = self.stack.restart_together(indexes, mode)
        except StackError as exc:
            first, *rest = str(exc).splitlines() or ["a restart failed"]
            raise _Refusal(500, first, log_tail=rest) from None
        return [{"index": index, **asdict(outcome)} for index, outcome in zip(indexes, outcomes, strict=True)]

    def _stop(self, body: dict) -> _Reply:
        _fields(body, required={"instance"}, optional={"mode"})
        mode = _mode(body.get("mode", "graceful"), "mode")
        with self._changing():
            index = self._instance(body["instance"])
            instance = self.stack.instances[index]
            if not instance.started().alive():
                raise _Refusal(
                    409, f"instance={index}: {instance.name} is already down; POST /start brings it back"
                )
            record = self.stack.stop_instance(index, mode)
            return _json_reply(
                200, {"index": index, "instance": instance.name, "mode": mode, "exit": asdict(record)}
            )

    def _start(self, body: dict) -> _Reply:
        _fields(body, required={"instance"}, optional=set())
        with self._changing():
            index = self._instance(body["instance"])
            instance = self.stack.instances[index]
            if instance.started().alive():
                raise _Refusal(
                    409,
                    f"instance={index}: {instance.name} is running (pid {instance.started().pid}); POST /stop first",
                )
            self.stack.start_instance(index)
            return _json_reply(
                200,
                {
                    "index": index,
                    "instance": instance.name,
                    "generation": instance.generation,
                    "pid": instance.started().pid,
                },
            )

    def _asgi_threads(self, body: dict) -> _Reply:
        _fields(body, required={"threads"}, optional={"restart"})
        threads, restart = body["threads"], body.get("restart")
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads <= 0
        ):
            raise _Refusal(
                400, f"threads={_show(threads)}: a positive whole number, or null to unset ASGI_THREADS"
            )
        if restart is not None:
            restart = _mode(restart, "restart")
        with self._changing():
            self.stack.set_asgi_threads(threads)
            restarts = self._restart_each(range(len(self.stack.instances)), restart) if restart else []
            return _json_reply(200, {"threads": threads, "restarts": restarts})

    def _restart_each(self, indexes, mode: str) -> list[dict]:
        outcomes: list[dict] = []
        for index in indexes:
            try:
                outcome = self.stack.restart(index, mode)
            except StackError as exc:
                first, *rest = str(exc).splitlines() or ["a restart failed"]
                raise _Refusal(500, first, log_tail=rest, restarts=outcomes) from None
            outcomes.append({"index": index, **asdict(outcome)})
        return outcomes

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """The lock every change holds; after stop() a waiting change is refused instead of run."""
        with self.lock:
            if self._closed:
                raise _Refusal(503, "the agent is stopping")
            yield

    def _instance(self, value: Any) -> int:
        return self._instances(value, allow_all=False)[0]

    def _instances(self, value: Any, allow_all: bool) -> list[int]:
        count = len(self.stack.instances)
        if allow_all and value == "all":
            return list(range(count))
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < count:
            choices = {0: "none yet", 1: "0"}.get(count, f"0 to {count - 1}") + (
                ' or "all"' if allow_all else ""
            )
            raise _Refusal(
                400, f"instance={_show(value)}: no such instance; this agent runs {count} ({choices})"
            )
        return [value]

    # -- what the operator sees ----------------------------------------------------------

    def log_request(self, client: str, method: str, target: str, reply: _Reply) -> None:
        """Changes and refusals, one line each; successful reads (polling) stay quiet."""
        if self.log is not None and (method != "GET" or reply.status >= 400):
            self.log(
                f"agent: {client} {method} {target} -> {reply.status}"
                + (f" {reply.error}" if reply.error else "")
            )

    def log_traceback(self, method: str, target: str) -> None:
        text = f"agent: {method} {target} failed:\n{traceback.format_exc()}"
        (self.log or (lambda line: print(line, file=sys.stderr, flush=True)))(text)


def _json_object(body: bytes) -> dict:
    try:
        value = json.loads(body.decode("utf-8")) if body.strip() else {}
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Refusal(
            400, f'the body is not JSON ({str(exc).splitlines()[0]}); send an object like {{"instance": 0}}'
        ) from None
    if not isinstance(value, dict):
        raise _Refusal(400, f'body={_show(value)}: send a JSON object like {{"instance": 0}}')
    return value


def _fields(body: dict, required: set[str], optional: set[str]) -> None:
    takes = ", ".join(sorted(required | optional))
    for name in sorted(set(body) - required - optional):
        raise _Refusal(400, f"{name}={_show(body[name])}: unknown field; this endpoint takes {takes}")
    for name in sorted(required - set(body)):
        raise _Refusal(400, f"{name} is missing; this endpoint takes {takes}")


def _mode(value: Any, name: str) -> str:
    if value not in RESTART_MODES:
        raise _Refusal(400, f"{name}={_show(value)}: choose {' or '.join(_show(m) for m in RESTART_MODES)}")
    return value


def _query(text: str) -> dict[str, str]:
    try:
        return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text)))
    except ValueError:
        raise _Refusal(400, f"query={_show(text)}: expected name=value pairs joined by &") from None


def _only(query: dict[str, str], names: set[str]) -> None:
    for name in sorted(set(query) - names):
        takes = ", ".join(sorted(names)) or "no parameters"
        raise _Refusal(400, f"{name}={_show(query[name])}: unknown parameter; this endpoint takes {takes}")


def _whole(query: dict[str, str], name: str, default: int | None) -> int:
    if name not in query:
        if default is None:
            raise _Refusal(400, f"{name} is missing; add ?{name}=N")
        return default
    text = query[name]
    if not is_whole_number(text):
        raise _Refusal(400, f"{name}={_show(text)}: a whole number from 0, in ASCII digits")
    return int(text)


def is_whole_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes '¹' (int() then fails) and fullwidth digits."""
    return re.fullmatch(r"[0-9]+", text) is not None


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


# -- `python -m load agent` ------------------------------------------------------------------


def run_agent(stack_config: StackConfig, agent_config: AgentConfig, announce: Log = print) -> int:
    """Start the stack and the agent, serve until interrupted, then stop both.

    SIGINT, SIGTERM and SIGHUP arrive as KeyboardInterrupt (the CLI installs that); they
    propagate after every process is stopped and reaped, as with `stack up`. The stack's
    events go to events.jsonl beside its log folder and, one line each, to announce.
    """
    agent_config.validate()
    stack_config.validate()
    events = EventLog(Path(stack_config.log_dir).parent / EVENTS_JSONL)

    def on_event(event: dict) -> None:
        events.write(event)
        announce(format_event(event))

    stack = Stack(stack_config, on_event)
    agent = Agent(stack, agent_config, log=announce)
    try:
        agent.bind()  # a port in use fails here, before any process starts
        if not agent.loopback:
            announce(
                f"warning: the agent listens on {agent.address[0]}, reachable from other hosts over plain HTTP: "
                "anyone who sees the token on the wire can restart these servers"
            )
        stack.start()
        agent.start()
        servers = " ".join(f"{i.name} {i.ws_url('/ws/ping/')}" for i in stack.instances)
        announce(
            f"agent {agent.url} serving {servers} redis {stack.redis_url or '(none: memory layer)'}; Ctrl-C stops everything"
        )
        _watch(agent, announce)
    finally:
        try:
            agent.stop()
        finally:
            try:
                stack.stop()
            finally:
                events.close()
    return 0  # not reached: _watch returns only by an exception


def _watch(agent: Agent, announce: Log) -> None:
    """Until interrupted, say once when an instance exits without being told to."""
    reported: set[int] = set()
    while True:
        time.sleep(0.5)
        acquired = False
        try:
            acquired = agent.lock.acquire(blocking=False)
            if not acquired:
                continue  # a change is in progress: its processes come and go on purpose
            stopped = {e.get("pid") for e in agent.stack.events if e[EVENT] == EXITED}
            for instance in agent.stack.instances:
                child = instance.child
                if child is not None and not child.alive() and child.pid not in stopped | reported:
                    reported.add(child.pid)
                    announce(
                        f"{instance.name} exited by itself (code {child.returncode}); see {child.log_path}"
                    )
        finally:
            if acquired:
                agent.lock.release()
