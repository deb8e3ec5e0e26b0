"""Token verification under attack, against a real server and a JWKS issuer on loopback.

Each rejected token gets a 401 or 403 with a short body that names the check
that failed and carries no key, token or stack trace.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import structlog
from api_helpers import assigned, created, event, post_batch
from conftest import SHARED_SSL_CONTEXT, LiveServer, start_server, stop_server
from identity_provider import IdentityProvider, new_private_key, public_pem

from server.config import Settings
from server.security import MAX_TOKEN_BYTES, mint_dev_token
from shared_schema import Role

# Every protected endpoint, with a request that would succeed for an admin.
PROTECTED = [
    ("POST", "/v1/events"),
    ("GET", "/v1/work-orders"),
    ("GET", "/v1/work-orders/wo-1"),
    ("GET", "/v1/work-orders/wo-1/timeline"),
    ("GET", "/v1/sync/changes"),
    ("GET", "/v1/audit"),
]


@pytest.fixture
def store_kind() -> str:
    """Token checks run before any query, so one store covers them."""
    return "sqlite"


def new_provider() -> IdentityProvider:
    provider = IdentityProvider()
    provider.add_key("RS256", kid="rsa-1")
    provider.add_key("ES256", kid="ec-1")
    return provider


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    provider = new_provider()
    yield provider
    provider.close()


@pytest.fixture(scope="module")
def shared_idp() -> Iterator[IdentityProvider]:
    """One provider for the tests that neither rotate keys nor count fetches."""
    provider = new_provider()
    yield provider
    provider.close()


def provider_settings(tmp_path: Path, idp: IdentityProvider, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "var_dir": tmp_path / "var",
        "jwks_url": idp.jwks_url,
        "jwt_issuer": idp.issuer,
        "role_claim": "realm_access.roles",
        "jwks_min_refresh_seconds": 0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def serve() -> Iterator[Callable[[Settings], LiveServer]]:
    """Start servers with the given settings; all are stopped at the end of the test."""
    running = []

    def start(settings: Settings) -> LiveServer:
        server, thread, base_url = start_server(settings)
        running.append((server, thread))
        return LiveServer(base_url=base_url, settings=settings)

    yield start
    for server, thread in running:
        stop_server(server, thread)


@pytest.fixture(scope="module")
def provider_server(tmp_path_factory, shared_idp) -> Iterator[LiveServer]:
    """A server that trusts only the identity provider: development tokens are off."""
    settings = provider_settings(tmp_path_factory.mktemp("provider"), shared_idp)
    server, thread, base_url = start_server(settings)
    live = LiveServer(base_url=base_url, settings=settings)
    with client(live, shared_idp.token("admin-1", ["admin"])) as http:
        post_batch(http, [created("wo-1"), assigned("wo-1", "e-2")])
    yield live
    stop_server(server, thread)


def client(live: LiveServer, token: str | None = None, **headers: str) -> httpx.Client:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=live.base_url, headers=headers, timeout=30, verify=SHARED_SSL_CONTEXT)


def call(live: LiveServer, method: str, path: str, token: str | None) -> httpx.Response:
    body = {"events": [event("wo-1", "note_added", 2, {"text": "checked"})]} if method == "POST" else None
    with client(live, token) as http:
        return http.request(method, path, json=body)


def assert_denied(response: httpx.Response, status: int, reason: str, *secrets: str) -> None:
    """Check the status and reason, and that the body is short and leaks nothing."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == ("unauthenticated" if status == 401 else "forbidden")
    assert body["reason"] == reason
    assert len(body["message"]) < 300
    text = response.text
    for marker in ("Traceback", "BEGIN PUBLIC KEY", "BEGIN PRIVATE KEY", 'File "', *secrets):
        assert marker not in text
    if status == 401:
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """Sign with HMAC-SHA256 by hand, because pyjwt rejects a PEM key as an HMAC secret."""
    encoded = {name: int(value.timestamp()) if isinstance(value, dt.datetime) else value for name, value in claims.items()}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(encoded).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def tampered(token: str, **changes: Any) -> str:
    """Change claims in a signed token and keep its old signature."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll until `condition` holds, because the server refreshes keys in the background."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# (case id, token builder, status, reason). Builders get the provider and return the Authorization token.
ATTACKS: list[tuple[str, Callable[[IdentityProvider], str], int, str]] = [
    ("alg none", lambda idp: jwt.encode(idp.claims("admin-1", ["admin"]), None, algorithm="none"), 401, "algorithm_not_allowed"),
    (
        "hs256 signed with the provider's public key",
        lambda idp: hand_signed(
            {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"},
            idp.claims("admin-1", ["admin"]),
            public_pem(idp.private_key("rsa-1")),
        ),
        401,
        "algorithm_not_allowed",
    ),
    (
        "expired",
        lambda idp: idp.token("d-1", exp=now() - dt.timedelta(hours=1), iat=now() - dt.timedelta(hours=2)),
        401,
        "token_expired",
    ),
    ("not yet valid", lambda idp: idp.token("d-1", nbf=now() + dt.timedelta(hours=1)), 401, "token_not_yet_valid"),
    ("issued in the future", lambda idp: idp.token("d-1", iat=now() + dt.timedelta(hours=1)), 401, "token_not_yet_valid"),
    ("wrong issuer", lambda idp: idp.token("d-1", iss="https://other-idp.invalid/realms/field"), 401, "wrong_issuer"),
    ("wrong audience", lambda idp: idp.token("d-1", aud="another-service"), 401, "wrong_audience"),
    (
        "unknown kid",
        lambda idp: jwt.encode(idp.claims("admin-1", ["admin"]), new_private_key("RS256"), algorithm="RS256", headers={"kid": "forged"}),
        401,
        "unknown_key",
    ),
    (
        "published kid, other key",
        lambda idp: jwt.encode(idp.claims("admin-1", ["admin"]), new_private_key("RS256"), algorithm="RS256", headers={"kid": "rsa-1"}),
        401,
        "bad_signature",
    ),
    (
        "kid of an RSA key, signed ES256",
        lambda idp: jwt.encode(idp.claims("admin-1", ["admin"]), idp.private_key("ec-1"), algorithm="ES256", headers={"kid": "rsa-1"}),
        401,
        "algorithm_not_allowed",
    ),
    (
        "tampered payload",
        lambda idp: tampered(idp.token("e-1", ["engineer"]), realm_access={"roles": ["admin"]}),
        401,
        "bad_signature",
    ),
    ("missing exp", lambda idp: idp.token("d-1", exp=None), 401, "missing_claim"),
    ("missing iat", lambda idp: idp.token("d-1", iat=None), 401, "missing_claim"),
    ("missing sub", lambda idp: idp.token(None), 401, "missing_claim"),
    ("missing iss", lambda idp: idp.token("d-1", iss=None), 401, "missing_claim"),
    ("missing aud", lambda idp: idp.token("d-1", aud=None), 401, "missing_claim"),
    ("blank sub", lambda idp: idp.token("  "), 401, "invalid_subject"),
    ("numeric sub", lambda idp: idp.token(42), 401, "invalid_subject"),
    ("exp as text", lambda idp: idp.token("d-1", exp="tomorrow"), 401, "invalid_token"),
    ("iat as true", lambda idp: idp.token("d-1", iat=True), 401, "invalid_token"),
    ("control character in sub", lambda idp: idp.token("d-1\nadmin"), 401, "invalid_subject"),
    ("missing role", lambda idp: idp.token("d-1", realm_access=None), 403, "no_role"),
    ("empty role list", lambda idp: idp.token("d-1", []), 403, "no_role"),
    ("unknown role", lambda idp: idp.token("d-1", ["superuser", "offline_access"]), 403, "unknown_role"),
    ("role of the wrong type", lambda idp: idp.token("d-1", realm_access={"roles": {"admin": True}}), 403, "no_role"),
    ("oversized token", lambda idp: idp.token("d-1", padding="x" * (MAX_TOKEN_BYTES + 100)), 401, "token_too_large"),
    ("not a JWT", lambda idp: "not-a-jwt", 401, "malformed_token"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
@pytest.mark.parametrize(("case", "build", "status", "reason"), ATTACKS, ids=[case[0] for case in ATTACKS])
def test_attack_denied(provider_server, shared_idp, case, build, status, reason, method, path):
    token = build(shared_idp)

    response = call(provider_server, method, path, token)

    assert_denied(response, status, reason, token)


@pytest.mark.parametrize(
    ("header", "reason"),
    [(None, "missing_token"), ("Basic ZDox", "malformed_token"), ("Bearer", "malformed_token")],
    ids=["no header", "basic scheme", "bearer alone"],
)
def test_missing_or_malformed_header_401(provider_server, header, reason):
    headers = {"Authorization": header} if header is not None else {}

    with client(provider_server, **headers) as http:
        response = http.get("/v1/work-orders")

    assert_denied(response, 401, reason)


def test_rs256_and_es256_tokens_accepted(provider_server, shared_idp):
    rsa_token = shared_idp.token("d-1", kid="rsa-1")
    ec_token = shared_idp.token("d-2", kid="ec-1")

    rsa = call(provider_server, "GET", "/v1/work-orders", rsa_token)
    ec = call(provider_server, "GET", "/v1/work-orders", ec_token)

    assert rsa.status_code == 200
    assert ec.status_code == 200
    assert [item["work_order_id"] for item in ec.json()["items"]] == ["wo-1"]


def test_development_tokens_rejected_when_provider_configured(provider_server, tmp_path):
    token = mint_dev_token(Settings(var_dir=tmp_path / "var"), subject="admin-1", role=Role.ADMIN)

    response = call(provider_server, "GET", "/v1/work-orders", token)

    assert_denied(response, 401, "algorithm_not_allowed", token)
    assert "RS256, ES256" in response.json()["message"]


def test_algorithm_confusion_meets_dev_key(tmp_path, idp, serve):
    """With development tokens on too, an HS256 token is checked against the development key only."""
    live = serve(provider_settings(tmp_path, idp, dev_auth=True))
    token = hand_signed({"alg": "HS256", "typ": "JWT"}, idp.claims("admin-1", ["admin"]), public_pem(idp.private_key("rsa-1")))
    token_with_dev_issuer = hand_signed(
        {"alg": "HS256", "typ": "JWT"},
        {**idp.claims("admin-1"), "iss": "csdp-dev", "roles": ["admin"]},
        public_pem(idp.private_key("rsa-1")),
    )

    confused = call(live, "GET", "/v1/work-orders", token)
    confused_dev_issuer = call(live, "GET", "/v1/work-orders", token_with_dev_issuer)
    dev = call(live, "GET", "/v1/work-orders", mint_dev_token(live.settings, subject="d-1", role=Role.DISPATCHER))

    assert_denied(confused, 401, "bad_signature", token)
    assert_denied(confused_dev_issuer, 401, "bad_signature", token_with_dev_issuer)
    assert dev.status_code == 200


def test_key_rotation_without_restart(tmp_path, idp, serve):
    live = serve(provider_settings(tmp_path, idp, jwks_cache_seconds=1))
    old_token = idp.token("d-1", kid="rsa-1")
    assert call(live, "GET", "/v1/work-orders", old_token).status_code == 200
    fetches_before_rotation = idp.fetches

    new_kid = idp.add_key("RS256", kid="rsa-2")
    new = call(live, "GET", "/v1/work-orders", idp.token("d-1", kid=new_kid))
    fetches_after_new_kid = idp.fetches
    idp.remove_key("rsa-1")
    time.sleep(1.2)  # past the cache lifetime
    # This request still meets the cached keys and starts the background fetch.
    last_with_old_key = call(live, "GET", "/v1/work-orders", old_token)
    wait_for(lambda: idp.fetches == 3)
    # The provider has served the fetch; the server installs the new key set a moment later.
    answers = []
    wait_for(lambda: answers.append(call(live, "GET", "/v1/work-orders", old_token)) or answers[-1].status_code != 200)
    retired = answers[-1]

    assert fetches_before_rotation == 1
    assert new.status_code == 200
    assert fetches_after_new_kid == 2
    assert last_with_old_key.status_code == 200
    assert_denied(retired, 401, "unknown_key", old_token)


def test_unknown_kids_throttle_fetches(tmp_path, idp, serve):
    live = serve(provider_settings(tmp_path, idp, jwks_min_refresh_seconds=60))
    assert call(live, "GET", "/v1/work-orders", idp.token("d-1")).status_code == 200
    forged = [
        jwt.encode(idp.claims("d-1"), new_private_key("ES256"), algorithm="ES256", headers={"kid": f"forged-{n}"})
        for n in range(10)
    ]

    responses = [call(live, "GET", "/v1/work-orders", token) for token in forged]

    assert [response.status_code for response in responses] == [401] * 10
    assert idp.fetches == 1


def test_provider_down_answers_503_then_recovers(tmp_path, idp, serve):
    live = serve(provider_settings(tmp_path, idp))
    idp.failing = True

    down = call(live, "GET", "/v1/work-orders", idp.token("d-1"))
    idp.failing = False
    up = call(live, "GET", "/v1/work-orders", idp.token("d-1"))

    assert down.status_code == 503
    assert down.headers["retry-after"] == "5"
    assert down.json()["error"] == "service_unavailable"
    assert idp.jwks_url not in down.text
    assert up.status_code == 200


def test_cached_keys_outlive_a_provider_outage(tmp_path, idp, serve):
    live = serve(provider_settings(tmp_path, idp, jwks_cache_seconds=0.2))
    token = idp.token("d-1")
    assert call(live, "GET", "/v1/work-orders", token).status_code == 200
    idp.failing = True
    time.sleep(0.3)

    response = call(live, "GET", "/v1/work-orders", token)
    wait_for(lambda: idp.fetches >= 2)

    assert response.status_code == 200
    assert call(live, "GET", "/v1/work-orders", token).status_code == 200


@pytest.mark.parametrize(("leeway", "status"), [(30, 200), (0, 401)])
def test_leeway_covers_a_recent_expiry(tmp_path, idp, serve, leeway, status):
    live = serve(provider_settings(tmp_path, idp, jwt_leeway_seconds=leeway))
    token = idp.token("d-1", exp=now() - dt.timedelta(seconds=5), iat=now() - dt.timedelta(minutes=5))

    response = call(live, "GET", "/v1/work-orders", token)

    assert response.status_code == status


def test_configured_public_key_file(tmp_path, idp, serve):
    key_file = tmp_path / "idp-ec.pem"
    key_file.write_bytes(public_pem(idp.private_key("ec-1")))
    live = serve(provider_settings(tmp_path, idp, jwks_url="", jwt_public_key_file=key_file))
    ec_without_kid = jwt.encode(idp.claims("d-1"), idp.private_key("ec-1"), algorithm="ES256")
    rsa = idp.token("d-1", kid="rsa-1")

    accepted = call(live, "GET", "/v1/work-orders", ec_without_kid)
    rejected = call(live, "GET", "/v1/work-orders", rsa)

    assert accepted.status_code == 200
    assert_denied(rejected, 401, "algorithm_not_allowed", rsa)
    assert idp.fetches == 0


@pytest.mark.parametrize(
    ("role_claim", "claims", "expected_role"),
    [
        ("roles", {"roles": ["engineer"]}, "engineer"),
        ("roles", {"roles": "dispatcher"}, "dispatcher"),
        ("scope", {"scope": "openid manager profile"}, "manager"),
        ("realm_access.roles", {"realm_access": {"roles": ["offline_access", "engineer", "dispatcher"]}}, "dispatcher"),
        ("resource_access.csdp.roles", {"resource_access": {"csdp": {"roles": ["admin"]}}}, "admin"),
    ],
    ids=["top-level list", "top-level string", "space-separated scope", "broadest of several", "nested three levels"],
)
def test_role_claim_is_configurable(tmp_path, idp, serve, role_claim, claims, expected_role):
    live = serve(provider_settings(tmp_path, idp, role_claim=role_claim))
    token = idp.token("user-1", **{"realm_access": None, **claims})

    with client(live, token) as http:
        response = http.post("/v1/events", json={"events": [created("wo-role")]})

    # Only office roles may create orders, so the decision shows which role the server took.
    reason = response.json()["decisions"][0]["reason_code"]
    assert reason == ("role_not_allowed" if expected_role == "engineer" else "applied")
    with client(live, token) as http:
        actor_role = http.get("/v1/audit").json() if expected_role in ("manager", "admin") else None
    if actor_role is not None:
        assert actor_role["items"][-1]["role"] == expected_role


def test_engineer_claim_is_configurable(tmp_path, idp, serve):
    live = serve(provider_settings(tmp_path, idp, engineer_claim="ext.engineer"))
    with client(live, idp.token("admin-1", ["admin"])) as http:
        post_batch(http, [created("wo-1"), assigned("wo-1", "E-0042"), created("wo-2"), assigned("wo-2", "tech-7")])
    with_claim = idp.token("tech-7", ["engineer"], ext={"engineer": "E-0042"})
    without_claim = idp.token("tech-7", ["engineer"])

    with client(live, with_claim) as http:
        mapped = [item["work_order_id"] for item in http.get("/v1/work-orders").json()["items"]]
    with client(live, without_claim) as http:
        by_subject = [item["work_order_id"] for item in http.get("/v1/work-orders").json()["items"]]

    assert mapped == ["wo-1"]
    assert by_subject == ["wo-2"]


# -- an engineer reaching for someone else's order ------------------------------


def test_foreign_order_read_403(provider_server, shared_idp):
    """wo-1 is assigned to e-2; e-1 gets 403 for it and for an id that does not exist."""
    token = shared_idp.token("e-1", ["engineer"])

    with client(provider_server, token) as http:
        order = http.get("/v1/work-orders/wo-1")
        history = http.get("/v1/work-orders/wo-1/timeline")
        missing = http.get("/v1/work-orders/wo-404")
        listed = http.get("/v1/work-orders", params={"engineer_id": "e-2"})
        own_list = http.get("/v1/work-orders").json()["items"]
        pulled = http.get("/v1/sync/changes").json()

    for response in (order, history, missing, listed):
        assert_denied(response, 403, "not_assigned", token)
    assert own_list == []
    assert pulled["events"] == []
    assert pulled["work_orders"] == []


def test_foreign_order_event_rejected(provider_server, shared_idp):
    """Inside a batch the rejection is a decision, so the engineer's other events still count."""
    token = shared_idp.token("e-1", ["engineer"])
    admin = shared_idp.token("admin-1", ["admin"])
    with client(provider_server, admin) as http:
        before = http.get("/v1/work-orders/wo-1").json()

    with client(provider_server, token, **{"X-Correlation-ID": "corr-foreign"}) as http:
        decisions = post_batch(http, [event("wo-1", "accepted", 2), event("wo-1", "cancelled", 2, {"reason": "not mine"})])
    with client(provider_server, admin) as http:
        after = http.get("/v1/work-orders/wo-1").json()
        audited = http.get("/v1/audit", params={"correlation_id": "corr-foreign"}).json()["items"]

    assert [(d["status"], d["reason_code"]) for d in decisions] == [
        ("REJECTED", "engineer_not_assigned"),
        ("REJECTED", "role_not_allowed"),
    ]
    assert after == before
    assert [(item["subject"], item["role"], item["reason"]) for item in audited] == [
        ("e-1", "engineer", "engineer_not_assigned"),
        ("e-1", "engineer", "role_not_allowed"),
    ]


def test_role_claimed_in_body_403(provider_server, shared_idp):
    token = shared_idp.token("e-2", ["engineer"])
    proposal = event("wo-1", "accepted", 2) | {"actor_role": "admin"}

    with client(provider_server, token) as http:
        response = http.post("/v1/events", json={"events": [proposal]})
        state = http.get("/v1/work-orders/wo-1").json()

    assert_denied(response, 403, "identity_in_body", token)
    assert response.json()["field"] == "$.events[0].actor_role"
    assert state["status"] == "assigned"


# -- a broken identity provider is the server's problem, never a 500 -------------

BROKEN_DOCUMENTS = {
    "list": b"[]",
    "null": b"null",
    "not JSON": b"<html>maintenance</html>",
    "keys not a list": b'{"keys": {"kid": "x"}}',
    "alg none key": b'{"keys": [{"kty": "RSA", "kid": "rsa-1", "alg": "none", "n": "AQAB", "e": "AQAB"}]}',
    "symmetric key": b'{"keys": [{"kty": "oct", "kid": "rsa-1", "alg": "HS256", "k": "c2VjcmV0"}]}',
    "garbage key": b'{"keys": [{"kty": "RSA", "kid": "rsa-1", "n": 5}]}',
    "kid not a string": b'{"keys": [{"kty": "RSA", "kid": 5, "n": "AQAB", "e": "AQAB"}]}',
}


@pytest.mark.parametrize("body", list(BROKEN_DOCUMENTS.values()), ids=list(BROKEN_DOCUMENTS))
def test_broken_jwks_without_cached_keys_503(tmp_path, idp, serve, body):
    live = serve(provider_settings(tmp_path, idp))
    idp.replacement_body = body

    response = call(live, "GET", "/v1/work-orders", idp.token("d-1", kid="rsa-1"))

    assert response.status_code == 503
    assert response.json()["error"] == "service_unavailable"


@pytest.mark.parametrize("body", list(BROKEN_DOCUMENTS.values()), ids=list(BROKEN_DOCUMENTS))
def test_broken_jwks_keeps_cached_keys(tmp_path, idp, serve, body):
    live = serve(provider_settings(tmp_path, idp, jwks_cache_seconds=0.1))
    token = idp.token("d-1", kid="rsa-1")
    assert call(live, "GET", "/v1/work-orders", token).status_code == 200
    idp.replacement_body = body
    time.sleep(0.2)

    response = call(live, "GET", "/v1/work-orders", token)
    wait_for(lambda: idp.fetches == 2)
    after_refresh = call(live, "GET", "/v1/work-orders", token)

    assert response.status_code == 200
    assert after_refresh.status_code == 200


def test_provider_outage_does_not_queue_fetches(tmp_path, idp, serve):
    live = serve(provider_settings(tmp_path, idp, jwks_min_refresh_seconds=60))
    idp.failing = True

    statuses = [call(live, "GET", "/v1/work-orders", idp.token("d-1")).status_code for _ in range(10)]

    assert statuses == [503] * 10
    assert idp.fetches == 1


def test_jwks_url_password_not_logged(tmp_path, idp, serve):
    url = idp.jwks_url.replace("http://", "http://fsm:s3cr3t-pass@")
    with structlog.testing.capture_logs() as records:
        live = serve(provider_settings(tmp_path, idp, jwks_url=url))
        idp.failing = True
        response = call(live, "GET", "/v1/work-orders", idp.token("d-1"))

    assert response.status_code == 503
    assert "s3cr3t-pass" not in response.text
    assert records
    assert not [record for record in records if "s3cr3t-pass" in repr(record)]


def test_slow_provider_delays_no_request(tmp_path, idp, serve):
    live = serve(provider_settings(tmp_path, idp, jwks_cache_seconds=0.2))
    token = idp.token("d-1")
    assert call(live, "GET", "/v1/work-orders", token).status_code == 200
    idp.delay_seconds = 3
    time.sleep(0.3)

    started = time.monotonic()
    statuses = [call(live, "GET", "/v1/work-orders", token).status_code for _ in range(5)]
    elapsed = time.monotonic() - started

    assert statuses == [200] * 5
    # Five requests that waited for the 3-second fetch would take at least 3 s.
    assert elapsed < 2.5


def test_key_for_encryption_only_not_used(tmp_path, idp, serve):
    document = idp.jwks()
    for key in document["keys"]:
        key.pop("use")
        key["key_ops"] = ["encrypt"]
    idp.replacement_body = json.dumps(document).encode()
    live = serve(provider_settings(tmp_path, idp))

    response = call(live, "GET", "/v1/work-orders", idp.token("d-1"))

    assert response.status_code == 503
