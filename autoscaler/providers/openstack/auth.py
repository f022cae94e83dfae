"""Connecting to an OpenStack cloud the OpenStack way, and keeping secrets out of messages.

Three sources, in this order:
1. `auth:` in the provider options (a dict of keystoneauth options: `auth_url`,
   `username`, `password`, `project_name`, ... or `application_credential_id` and
   `application_credential_secret`);
2. `cloud:` (a named cloud in `clouds.yaml`), or `OS_CLOUD`;
3. the `OS_*` environment variables (`OS_AUTH_URL`, `OS_USERNAME`, `OS_PASSWORD`, ...),
   read by openstacksdk itself exactly as the `openstack` CLI reads them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

SECRET_KEYS = ("password", "secret", "token", "passcode", "key")
SECRET_ENV = ("OS_PASSWORD", "OS_APPLICATION_CREDENTIAL_SECRET", "OS_TOKEN", "OS_AUTH_TOKEN")
_HEADER_TOKEN = re.compile(r"(X-(?:Auth|Subject)-Token['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+", re.I)
_JSON_SECRET = re.compile(r"(['\"](?:password|secret|token)['\"]\s*:\s*['\"])[^'\"]*", re.I)


class Redactor:
    """Removes known secret values (and anything shaped like a token header) from text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is removed whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        text = _HEADER_TOKEN.sub(r"\1***", text)
        return _JSON_SECRET.sub(r"\1***", text)


def secret_values(auth: Mapping[str, Any] | None, env: Mapping[str, str]) -> list[str]:
    """Every value that must never be shown: secret-looking auth keys and OS_* secrets."""
    out = [str(v) for k, v in (auth or {}).items() if any(s in k.lower() for s in SECRET_KEYS)]
    out += [env[k] for k in SECRET_ENV if env.get(k)]
    return out


def auth_type_for(auth: Mapping[str, Any]) -> str:
    if "application_credential_secret" in auth or "application_credential_id" in auth:
        return "v3applicationcredential"
    if "token" in auth:
        return "v3token"
    return "password"


def quiet_http_logs() -> None:
    """keystoneauth logs whole request and response bodies at DEBUG (auth responses,
    API errors echoing input): keep those loggers at WARNING so that `--log-level debug`
    of the autoscaler never writes a secret."""
    for name in ("keystoneauth", "openstack", "stevedore"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


def connect(options: Mapping[str, Any], timeout: float) -> Any:
    """An openstacksdk Connection. No request is made until the first call."""
    import openstack  # an optional dependency, needed only by OpenStack users

    quiet_http_logs()

    common: dict[str, Any] = {
        "api_timeout": timeout,  # every HTTP request of the SDK is bounded by this
        # Retries are ours (with create tokens), never the transport's: a blind resend
        # of a POST /servers could make two servers.
        "connect_retries": 0,
        "status_code_retries": 0,
    }
    if options.get("region_name"):
        common["region_name"] = options["region_name"]
    if options.get("interface"):
        common["interface"] = options["interface"]
    for service, url in (options.get("endpoint_overrides") or {}).items():
        common[f"{service}_endpoint_override"] = url
    if options.get("verify") is not None:
        common["verify"] = options["verify"]
    auth = options.get("auth")
    if auth:
        auth_type = options.get("auth_type") or auth_type_for(auth)
        return openstack.connection.Connection(
            auth=dict(auth), auth_type=auth_type, identity_api_version="3", **common
        )
    if options.get("auth_type"):
        common["auth_type"] = options["auth_type"]
    # cloud=None: openstacksdk uses OS_CLOUD, else the OS_* variables ("envvars").
    return openstack.connect(cloud=options.get("cloud"), load_yaml_config=True, **common)


def widen_http_pool(conn: Any, size: int) -> None:
    """Keep `size` connections per host open instead of requests' 10, so that parallel
    calls reuse their connections (and urllib3 does not log "Connection pool is full").

    Goes through keystoneauth's public Session API (`adapters`, `mount`) and keeps the
    adapter's TLS settings; anything else (a test double, another adapter) is left alone.
    """
    from keystoneauth1.session import TCPKeepAliveAdapter

    ks_session = getattr(conn, "session", None)
    adapters = getattr(ks_session, "adapters", None)
    if ks_session is None or not isinstance(adapters, Mapping):
        return
    for scheme, adapter in list(adapters.items()):
        if type(adapter) is TCPKeepAliveAdapter:
            ks_session.mount(
                scheme,
                TCPKeepAliveAdapter(
                    tls_ciphers=adapter.tls_ciphers,
                    tls_min_version=adapter.tls_min_version,
                    pool_connections=10,
                    pool_maxsize=max(size, 10),
                ),
            )


def environment() -> Mapping[str, str]:
    return os.environ
