"""The etcd v3 calls leader election needs, over etcd's JSON gateway (`etcd3gw`).

Synchronous, with a timeout on every request, which fits the daemon's threads. Endpoints
are members of one cluster: a request that cannot reach one is tried on the next, and
EtcdUnavailable says what every endpoint answered. Keys and values are text; the gateway
speaks base64 and 64-bit integers as strings, which stays in here.

TLS (a CA, a client certificate) is each endpoint's requests session's; etcd users log in
through the gateway's auth/authenticate, and the token goes in every request's
Authorization header. A token is a member's own (etcd's simple tokens), so each endpoint
gets its own, on its first request, and again when etcd says it is no longer valid (its
TTL ended, etcd restarted). Tokens are registered as secrets the moment they arrive.
"""

from __future__ import annotations

import base64
import json
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from autoscaler.config.secrets import registry as secret_registry
from autoscaler.observe.sessions import PinnedSession


class MissingClient(RuntimeError):
    """etcd3gw is an optional dependency (the `ha` extra): the message says how to add it."""


def _etcd3gw() -> tuple[ModuleType, type]:
    """etcd3gw's exceptions module and client class, imported on first use: without an
    ha block the daemon needs neither the package nor its dependencies."""
    try:
        with warnings.catch_warnings():
            # futurist (etcd3gw's watch pool) imports eventlet when present, which warns
            # that it is deprecated: nothing of ours, and not for the operator's log.
            warnings.simplefilter("ignore")
            from etcd3gw import exceptions
            from etcd3gw.client import Etcd3Client
    except ImportError as e:
        raise MissingClient(
            f"ha needs the etcd3gw package ({e}): pip install 'autoscaler[ha]' "
            "(or etcd3gw, pinned in requirements-dev.txt)"
        ) from None
    return exceptions, Etcd3Client


class EtcdError(Exception):
    """etcd refused a request (a lease it does not know, say): the message says why."""


class EtcdUnavailable(EtcdError):
    """No endpoint answered (refused, timed out, no quorum): the message says why."""


@dataclass(frozen=True)
class KeyValue:
    value: str
    lease: int  # 0: the key is attached to no lease
    mod_revision: int


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _text(b64: str) -> str:
    return base64.b64decode(b64).decode(errors="replace")


def _kv(raw: dict[str, Any]) -> KeyValue:
    return KeyValue(
        value=_text(raw.get("value", "")),
        lease=int(raw.get("lease", 0)),
        mod_revision=int(raw.get("mod_revision", 0)),
    )


# etcd's answers to a request without a valid token: log in (again), then retry once.
_TOKEN_REFUSED = ("invalid auth token", "user name is empty")


@dataclass(frozen=True)
class Access:
    """How to reach etcd beyond the URL: TLS files and an etcd user."""

    ca_file: str | None = None  # None: the system's CAs
    cert_file: str | None = None  # with key_file: a client certificate
    key_file: str | None = None
    username: str | None = None  # with password: etcd authentication
    password: str | None = field(default=None, repr=False)


class Etcd:
    def __init__(
        self, endpoints: Sequence[str], timeout_seconds: float, access: Access | None = None
    ) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoint")
        self.endpoints = list(endpoints)
        self.access = access or Access()
        self._errors, self._client_class = _etcd3gw()
        self._clients = [self._client(url, timeout_seconds) for url in self.endpoints]
        self._tokens: dict[int, str] = {}  # endpoint index -> its auth token
        self._current = 0  # the endpoint that answered last: tried first
        self._lock = threading.Lock()

    def _client(self, url: str, timeout: float) -> Any:
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if parts.scheme == "https" else 2379)
        session = PinnedSession()
        if self.access.ca_file:
            session.verify = self.access.ca_file
        if self.access.cert_file and self.access.key_file:
            session.cert = (self.access.cert_file, self.access.key_file)
        # api_path fixed (etcd >= 3.4): no /version round trip hidden in the first call.
        return self._client_class(
            host=host,
            port=port,
            protocol=parts.scheme,
            timeout=timeout,
            api_path="/v3/",
            session=session,
        )

    def _authenticate(self, n: int) -> None:
        client = self._clients[n]
        # etcd refuses even a login that carries a token it no longer knows
        client.session.headers.pop("Authorization", None)
        answer = client.post(
            client.get_url("auth/authenticate"),
            data=json.dumps({"name": self.access.username, "password": self.access.password}),
        )
        token = str((answer or {}).get("token") or "")
        if not token:
            raise self._errors.Etcd3Exception("etcd answered no auth token")
        secret_registry.add(token)  # before any error can echo it
        client.session.headers["Authorization"] = token
        with self._lock:
            self._tokens[n] = token

    def _send(self, n: int, path: str, payload: dict[str, Any]) -> Any:
        """One request to endpoint n, logged in first when etcd has users."""
        client = self._clients[n]
        url, body = client.get_url(path), json.dumps(payload)
        if self.access.username is None:
            return client.post(url, data=body)
        if n not in self._tokens:
            self._authenticate(n)
        try:
            return client.post(url, data=body)
        except self._errors.Etcd3Exception as e:
            if not any(s in _reason(e) for s in _TOKEN_REFUSED):
                raise
        self._authenticate(n)  # the token expired, or etcd restarted: once more
        return client.post(url, data=body)

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            start = self._current
        problems = []
        for i in range(len(self._clients)):
            n = (start + i) % len(self._clients)
            try:
                result = self._send(n, path, payload)
            except (
                self._errors.ConnectionFailedError,
                self._errors.ConnectionTimeoutError,
                self._errors.InternalServerError,
            ) as e:
                problems.append(f"{self.endpoints[n]}: {_reason(e)}")
                continue
            except self._errors.Etcd3Exception as e:
                raise EtcdError(f"{self.endpoints[n]}: {_reason(e)}") from None
            with self._lock:
                self._current = n
            return result if isinstance(result, dict) else {}
        raise EtcdUnavailable("; ".join(problems))

    # --- keys ------------------------------------------------------------------------
    def get(self, key: str) -> KeyValue | None:
        result = self._post("kv/range", {"key": _b64(key)})
        kvs = result.get("kvs") or []
        return _kv(kvs[0]) if kvs else None

    def create(self, key: str, value: str, lease: int) -> tuple[bool, KeyValue | None]:
        """Put `key` on `lease` if it does not exist; (False, what is there) otherwise."""
        k = _b64(key)
        result = self._post(
            "kv/txn",
            {
                "compare": [
                    {"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": 0}
                ],
                "success": [{"request_put": {"key": k, "value": _b64(value), "lease": lease}}],
                "failure": [{"request_range": {"key": k}}],
            },
        )
        if result.get("succeeded"):
            return True, None
        return False, self._first_range(result)

    def put_if_lease(self, key: str, value: str, guard_key: str, lease: int) -> bool:
        """Put `key` only while `guard_key` is held on `lease`: a fenced write."""
        result = self._post(
            "kv/txn",
            {
                "compare": [
                    {"key": _b64(guard_key), "target": "LEASE", "result": "EQUAL", "lease": lease}
                ],
                "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}],
                "failure": [],
            },
        )
        return bool(result.get("succeeded"))

    @staticmethod
    def _first_range(result: dict[str, Any]) -> KeyValue | None:
        for response in result.get("responses") or []:
            kvs = (response.get("response_range") or {}).get("kvs") or []
            if kvs:
                return _kv(kvs[0])
        return None

    # --- leases ----------------------------------------------------------------------
    def grant(self, ttl: int) -> tuple[int, int]:
        """A new lease: (id, the TTL etcd granted)."""
        result = self._post("lease/grant", {"TTL": ttl, "ID": 0})
        return int(result["ID"]), int(result["TTL"])

    def keepalive(self, lease: int) -> int:
        """Renew `lease`: its TTL again, or <= 0 when etcd has already expired it."""
        result = self._post("lease/keepalive", {"ID": lease})
        return int((result.get("result") or {}).get("TTL", -1))

    def revoke(self, lease: int) -> None:
        """End `lease` now: its keys go at once (a clean handover)."""
        self._post("kv/lease/revoke", {"ID": lease})


def _reason(e: Exception) -> str:
    """What went wrong, in one line: the gateway's error text or the connection error."""
    detail = getattr(e, "detail_text", None) or " ".join(str(a) for a in e.args) or type(e).__name__
    try:
        doc = json.loads(detail)
        if isinstance(doc, dict) and doc.get("error"):
            detail = str(doc["error"])
    except ValueError:
        pass
    return detail.strip().splitlines()[0][:300] if detail.strip() else type(e).__name__
