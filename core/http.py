"""Serving MCP over HTTP safely: a bearer token off loopback, Host and Origin checks always.

Off loopback (any ``--host`` but 127.0.0.1, localhost or ::1) the server refuses to start without
``server.http_token``, which comes from the environment (``MCP_BLE_SERVER__HTTP_TOKEN``) or a file
(``server.http_token_file``), never from the command line, and is never logged. With a token every
request must carry ``Authorization: Bearer <token>``; the SDK's bearer middleware answers 401
otherwise, and the token is compared in constant time. DNS-rebinding protection (the Host and
Origin headers, MCP spec "Transports", security warning) stays on for every bind address, with
``server.allowed_hosts`` and ``server.allowed_origins`` for the names the server is reached by.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings

from .errors import ConfigError
from .settings import ServerSettings

log = logging.getLogger("mcp_ble.http")

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MIN_TOKEN_LENGTH = 16


class StaticTokenVerifier(TokenVerifier):
    """One shared secret, checked with :func:`hmac.compare_digest` (no early exit on the first
    differing byte, so response times do not reveal how much of a guess was right)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self._token):
            return AccessToken(token="static", client_id="mcp-ble", scopes=[])
        return None


@dataclass(frozen=True)
class HttpSecurity:
    transport: TransportSecuritySettings
    token_verifier: TokenVerifier | None
    auth: AuthSettings | None


def read_token(server: ServerSettings) -> str | None:
    """The bearer token from ``server.http_token`` or the first line of ``http_token_file``.
    Errors name the setting or the file, never the token."""
    token: str | None = None
    if server.http_token is not None:
        token = server.http_token.get_secret_value().strip()
    elif server.http_token_file is not None:
        path = server.http_token_file
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(
                f"server.http_token_file = {str(path)!r}: cannot read it ({exc.strerror})"
            ) from None
        token = lines[0].strip() if lines else ""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"the HTTP bearer token is {len(token)} characters; use at least "
            f"{MIN_TOKEN_LENGTH} random ones (e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')"
        )
    return token


def _with_ports(names: list[str]) -> list[str]:
    """Each name as given and, when it has no port, also with any port (the SDK matches a bare
    name only when the header carries no port)."""
    out: list[str] = []
    for name in names:
        out.append(name)
        rest = name.split("//", 1)[-1].rsplit("]", 1)[-1]  # after the scheme and an IPv6 literal
        if ":" not in rest:
            out.append(f"{name}:*")
    return out


def http_security(server: ServerSettings, host: str, port: int) -> HttpSecurity:
    """What ``serve --transport http`` runs with; raises ConfigError (exit 2) when bound off
    loopback without a token."""
    token = read_token(server)
    if host not in LOOPBACK and token is None:
        raise ConfigError(
            f"serve --transport http --host {host}: off loopback every request needs a bearer "
            "token, and none is set; put one in MCP_BLE_SERVER__HTTP_TOKEN or in a file named by "
            "server.http_token_file (never on the command line), or bind to 127.0.0.1"
        )
    if host not in LOOPBACK:
        log.warning(
            "serving MCP over plain HTTP on %s:%d: put a TLS-terminating proxy in front", host, port
        )
    if host in ("0.0.0.0", "::") and not server.allowed_hosts:
        log.warning(
            "bound to every interface, but only requests for loopback names pass the Host check: "
            "list the names clients use in server.allowed_hosts"
        )
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    if host not in LOOPBACK and host not in ("0.0.0.0", "::", ""):
        hosts.append(f"[{host}]:*" if ":" in host else f"{host}:*")
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    transport = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts + _with_ports(server.allowed_hosts),
        allowed_origins=origins + _with_ports(server.allowed_origins),
    )
    if token is None:
        return HttpSecurity(transport, None, None)
    # No authorization server: the static token is the credential. The SDK's AuthSettings
    # requires an issuer URL; without an authorization-server provider or resource_server_url
    # it is not published or used.
    auth = AuthSettings(issuer_url=f"http://127.0.0.1:{port}", resource_server_url=None)
    return HttpSecurity(transport, StaticTokenVerifier(token), auth)
