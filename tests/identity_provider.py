"""A stand-in identity provider for tests: signs tokens and serves its JWKS over HTTP on loopback.

It holds RSA and EC key pairs by `kid`, can rotate them while the server
runs, and can be set to fail, so tests exercise the server's real JWKS
fetching, caching and refreshing.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "csdp"


def new_private_key(algorithm: str) -> Any:
    if algorithm.startswith(("RS", "PS")):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    raise ValueError(f"no test key for {algorithm}")


def public_pem(private_key: Any) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class IdentityProvider:
    """Keys by kid, a JWKS endpoint on 127.0.0.1, and a token minter."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[Any, str]] = {}
        self._lock = threading.Lock()
        self.fetches = 0
        self.failing = False
        # When set, served instead of the JWKS document, to test broken providers.
        self.replacement_body: bytes | None = None
        # Seconds each JWKS response waits before it is sent, to test a slow provider.
        self.delay_seconds = 0.0
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()
        port = self._http.server_address[1]
        self.jwks_url = f"http://127.0.0.1:{port}/realms/field/protocol/openid-connect/certs"
        self.issuer = f"http://127.0.0.1:{port}/realms/field"

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    # -- keys ----------------------------------------------------------------

    def add_key(self, algorithm: str = "RS256", kid: str | None = None) -> str:
        kid = kid or f"{algorithm.lower()}-{uuid.uuid4().hex[:8]}"
        with self._lock:
            self._keys[kid] = (new_private_key(algorithm), algorithm)
        return kid

    def remove_key(self, kid: str) -> None:
        with self._lock:
            del self._keys[kid]

    def private_key(self, kid: str) -> Any:
        return self._keys[kid][0]

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            items = list(self._keys.items())
        keys = []
        for kid, (private_key, algorithm) in items:
            algorithm_class = jwt.algorithms.get_default_algorithms()[algorithm]
            jwk = json.loads(algorithm_class.to_jwk(private_key.public_key()))
            jwk.update({"kid": kid, "alg": algorithm, "use": "sig"})
            keys.append(jwk)
        return {"keys": keys}

    # -- tokens --------------------------------------------------------------

    def claims(self, subject: str, realm_roles: Any = ("dispatcher",), **overrides: Any) -> dict[str, Any]:
        """Claims as a Keycloak-style provider issues them, roles under `realm_access.roles`."""
        now = dt.datetime.now(dt.timezone.utc)
        claims: dict[str, Any] = {
            "sub": subject,
            "iss": self.issuer,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + dt.timedelta(minutes=10),
            "realm_access": {"roles": list(realm_roles) if not isinstance(realm_roles, str) else realm_roles},
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, subject: str, realm_roles: Any = ("dispatcher",), *, kid: str | None = None, **overrides: Any) -> str:
        """Sign claims with the key `kid` (the first key when None)."""
        with self._lock:
            kid = kid or next(iter(self._keys))
            private_key, algorithm = self._keys[kid]
        return jwt.encode(self.claims(subject, realm_roles, **overrides), private_key, algorithm=algorithm, headers={"kid": kid})

    # -- HTTP ----------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                provider.fetches += 1
                time.sleep(provider.delay_seconds)
                if provider.failing:
                    self.send_response(503)
                    self.end_headers()
                    return
                if self.path != "/realms/field/protocol/openid-connect/certs":
                    self.send_response(404)
                    self.end_headers()
                    return
                body = provider.replacement_body
                if body is None:
                    body = json.dumps(provider.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
                pass

        return Handler
