"""What a user sends with its websocket handshake to someone else's server.

`--header 'Name: value'` (repeatable), `--origin`, `--cookie` and `--subprotocol`: a
staging server behind Django's origin check (AllowedHostsOriginValidator) answers every
handshake without the right Origin with HTTP 403; one behind a login wants a cookie or an
Authorization header.

Credentials never reach a run folder, a log or an error message: `--cookie` is a secret
option, and the value of a header whose name says it carries one (CREDENTIAL_HEADER) is
shown as `<hidden>`.
"""

import re
from dataclasses import dataclass
from typing import Any

from load.config.settings import ConfigError

HIDDEN = "<hidden>"
# Header names whose values are credentials: Cookie, Authorization, Proxy-Authorization,
# and the usual token/key headers (X-Api-Key, X-Auth-Token, X-CSRFToken, ...).
CREDENTIAL_HEADER = re.compile(r"cookie|authorization|token|secret|key|password|session|auth", re.IGNORECASE)
# RFC 9110's token: what a header name may be made of.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers websocket-client writes itself; given twice, the server would see two of them.
_OWN_HEADERS = {"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version"}
_BY_OPTION = {"origin": "--origin", "cookie": "--cookie", "sec-websocket-protocol": "--subprotocol"}


@dataclass(frozen=True, repr=False)
class Handshake:
    headers: tuple[tuple[str, str], ...] = ()
    origin: str = ""
    cookie: str = ""
    subprotocols: tuple[str, ...] = ()

    def __repr__(self) -> str:  # a traceback or a debug log shows no credential
        return f"Handshake({self.masked()})"

    def connect_kwargs(self) -> dict[str, Any]:
        """websocket.create_connection's keyword arguments for this handshake."""
        kwargs: dict[str, Any] = {}
        if self.headers:
            kwargs["header"] = [f"{name}: {value}" for name, value in self.headers]
        if self.origin:
            kwargs["origin"] = self.origin
        if self.cookie:
            kwargs["cookie"] = self.cookie
        if self.subprotocols:
            kwargs["subprotocols"] = list(self.subprotocols)
        return kwargs

    def masked(self) -> dict[str, Any]:
        """For manifest.json: credentials hidden."""
        return {
            "headers": [mask_header(f"{name}: {value}") for name, value in self.headers],
            "origin": self.origin,
            "cookie": HIDDEN if self.cookie else "",
            "subprotocols": list(self.subprotocols),
        }


def mask_header(line: str) -> str:
    """'Authorization: Bearer x' -> 'Authorization: <hidden>'; other headers as they are."""
    name, colon, _value = line.partition(":")
    return f"{name}: {HIDDEN}" if colon and CREDENTIAL_HEADER.search(name) else line


def parse_header(line: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not _HEADER_NAME.fullmatch(name):
        # Which part is the value cannot be told: none of it is shown, it may be a token.
        raise ConfigError("header", HIDDEN, "give 'Name: value', e.g. --header 'X-Tenant: acme'")
    if "\r" in value or "\n" in value:
        raise ConfigError("header", mask_header(line), "one header per --header, without line breaks")
    lower = name.lower()
    if lower in _OWN_HEADERS:
        raise ConfigError("header", mask_header(line), f"{name} is the websocket client's own header")
    if lower in _BY_OPTION:
        raise ConfigError("header", mask_header(line), f"give {name} with {_BY_OPTION[lower]}")
    return name, value


def handshake_from(headers: list[str] | None, origin: str, cookie: str, subprotocol: str) -> Handshake:
    """The options' values as a Handshake, or a ConfigError naming the bad one (credentials hidden)."""
    if origin and not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/]+", origin.strip()):
        raise ConfigError(
            "origin", origin, "give scheme and host as a browser sends it, e.g. https://staging.example.com"
        )
    if "\r" in cookie or "\n" in cookie:
        raise ConfigError("cookie", HIDDEN, "one line, e.g. 'sessionid=...; csrftoken=...'")
    protocols = tuple(p.strip() for p in subprotocol.split(",") if p.strip())
    for protocol in protocols:
        if not _HEADER_NAME.fullmatch(protocol):
            raise ConfigError("subprotocol", subprotocol, "names separated by commas, e.g. chat.v1")
    return Handshake(
        headers=tuple(parse_header(line) for line in headers or ()),
        origin=origin.strip(),
        cookie=cookie.strip(),
        subprotocols=protocols,
    )
