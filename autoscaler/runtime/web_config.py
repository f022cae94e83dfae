"""`--web.config.file`: TLS and basic auth for the HTTP endpoints, in exporters' format.

The file is the one Prometheus exporters read (prometheus/exporter-toolkit's
docs/web-configuration.md): `tls_server_config`, `http_server_config.headers` and
`basic_auth_users` (bcrypt hashes). Relative paths are relative to the file's directory,
as in exporter-toolkit. Unknown keys and values we cannot honour are errors naming the
key (exit 2, like the main configuration): a setting silently ignored would be a hole.

The web file and the certificate, key and CA files it names are checked for a change (a
stat) on every new connection and request, so a renewed certificate or an added user
applies to the next connection without a restart or SIGHUP. A file that became invalid is
logged once and the last good settings stay in force (exporter-toolkit instead answers
500 until it is fixed; both keep the endpoints protected).

Every path is protected, `/healthz` included, as exporter-toolkit protects everything;
`auth_excluded_paths` (exporter-toolkit's key, exact paths) lets e.g. a container health
check reach `/healthz` without a password. TLS applies to every path regardless.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import logging
import os
import re
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bcrypt
from prometheus_client import CollectorRegistry, Gauge

from autoscaler.config import ConfigError, parse_yaml

log = logging.getLogger("autoscaler.web")

_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's crypto/tls names (tls.CipherSuites()) -> OpenSSL's. TLS 1.3 suites are accepted
# and, as in Go, not configurable: they map to nothing.
_CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": "",
    "TLS_AES_256_GCM_SHA384": "",
    "TLS_CHACHA20_POLY1305_SHA256": "",
}
# Python's ssl can only verify a client certificate it asks for: RequestClientCert and
# RequireAnyClientCert (accept any certificate unverified) have no equivalent, and
# exporter-toolkit itself calls them insecure.
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNSUPPORTED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
# exporter-toolkit's list: only these may be set, and two of them take fixed values.
_HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
_TLS_KEYS = (
    "cert",
    "key",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
)
_TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", "auth_excluded_paths")
_LIST_KEYS = ("client_allowed_sans", "cipher_suites", "prefer_server_cipher_suites")
_NOT_SUPPORTED = {
    "rate_limit": "not supported (put a reverse proxy in front to rate-limit)",
    "tls_server_config.curve_preferences": "not supported: Python's ssl module cannot "
    "order key-exchange groups; remove it to use OpenSSL's defaults",
}
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
CACHE_SECONDS = 60.0  # a verified password is not re-hashed for this long (bcrypt: ~70 ms)
CACHE_SIZE = 100
REALM = "autoscaler"


@dataclass(frozen=True)
class WebSettings:
    """One valid web configuration, compiled."""

    tls: ssl.SSLContext | None = None
    allowed_sans: frozenset[str] = frozenset()
    users: Mapping[str, bytes] = field(default_factory=dict)
    headers: tuple[tuple[str, str], ...] = ()
    excluded: frozenset[str] = frozenset()  # paths served without basic auth
    # Checked when the user is unknown, so a wrong name costs what a wrong password does
    # (no user enumeration by timing): a random password's hash at the users' top cost.
    dummy: bytes = b""
    files: tuple[str, ...] = ()  # read to build it: a change to any reloads

    def describe(self) -> str:
        parts = ["TLS" if self.tls else "plain HTTP"]
        if self.tls is not None and self.tls.verify_mode == ssl.CERT_REQUIRED:
            parts.append("client certificates required")
        n = len(self.users)
        parts.append(f"basic auth ({n} user{'s' if n != 1 else ''})" if n else "no basic auth")
        return ", ".join(parts)


class _Errors:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"{key}: {message}")


def _mapping(doc: Any, key: str, allowed: tuple[str, ...], errors: _Errors) -> dict[str, Any]:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        errors.add(key, f"must be a mapping (got {type(doc).__name__})")
        return {}
    for name in doc:
        full = f"{key}.{name}" if key else str(name)
        if full in _NOT_SUPPORTED:
            errors.add(full, _NOT_SUPPORTED[full])
        elif name not in allowed:
            errors.add(full, f"unknown key; allowed: {', '.join(sorted(allowed))}")
    return {k: v for k, v in doc.items() if k in allowed}


def _string(doc: dict[str, Any], key: str, prefix: str, errors: _Errors) -> str | None:
    value = doc.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        errors.add(f"{prefix}.{key}", f"must be a string (got {type(value).__name__})")
        return None
    return value


def _strings(doc: dict[str, Any], key: str, prefix: str, errors: _Errors) -> list[str]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.add(f"{prefix}.{key}" if prefix else key, "must be a list of strings")
        return []
    return value


def _path(base: Path, value: str) -> str:
    return str(value if os.path.isabs(value) else base / value)


def _readable(path: str, key: str, errors: _Errors) -> bool:
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        errors.add(key, f"{path}: not a readable file")
        return False
    return True


def _load_pair(
    ctx: ssl.SSLContext, cert: tuple[str | None, str | None], key: tuple[str | None, str | None]
) -> None:
    """(file, inline PEM) each; load_cert_chain reads files only, so inline PEM goes to a
    private temporary file that is removed at once."""
    with tempfile.TemporaryDirectory(prefix="autoscaler-tls-") as tmp:
        paths = []
        for name, (file, inline) in (("cert.pem", cert), ("key.pem", key)):
            if file:
                paths.append(file)
                continue
            target = Path(tmp) / name
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(inline or "")
            paths.append(str(target))
        ctx.load_cert_chain(paths[0], paths[1])


def _tls(doc: Any, base: Path, errors: _Errors, files: list[str]) -> tuple[Any, frozenset[str]]:
    p = "tls_server_config"
    before = len(errors.items)  # errors of other sections do not stop the TLS checks
    tls = _mapping(doc, p, _TLS_KEYS, errors)
    s = {k: _string(tls, k, p, errors) for k in _TLS_KEYS if k not in _LIST_KEYS}
    sans = _strings(tls, "client_allowed_sans", p, errors)
    ciphers = _strings(tls, "cipher_suites", p, errors)
    for both in ("cert", "key", "client_ca"):
        if s[both] and s[f"{both}_file"]:
            errors.add(f"{p}.{both}", f"give {both} or {both}_file, not both")
    has_cert, has_key = bool(s["cert"] or s["cert_file"]), bool(s["key"] or s["key_file"])
    if not tls or (not has_cert and not has_key):
        # exporter-toolkit serves plain HTTP without a certificate; TLS-only keys then
        # would be silently ignored, so they are refused.
        extra = sorted(k for k in tls if tls[k] not in (None, "", []))
        if extra:
            errors.add(f"{p}.{extra[0]}", "needs cert_file and key_file (TLS is off without)")
        return None, frozenset()
    if not has_cert:
        errors.add(f"{p}.cert_file", "missing: key_file is set but no certificate")
    if not has_key:
        errors.add(f"{p}.key_file", "missing: cert_file is set but no key")
    paths = {}
    for k in ("cert_file", "key_file", "client_ca_file"):
        name = s[k]
        if name:
            paths[k] = _path(base, name)
            if _readable(paths[k], f"{p}.{k}", errors):
                files.append(paths[k])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = []
    for k, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        name = s[k] or default
        if name not in _VERSIONS:
            errors.add(f"{p}.{k}", f"unknown TLS version {name!r}; allowed: {', '.join(_VERSIONS)}")
            name = default
        versions.append(_VERSIONS[name])
    if versions[0] > versions[1]:
        errors.add(f"{p}.min_version", "is above max_version")
    else:
        ctx.minimum_version, ctx.maximum_version = versions
    auth = s["client_auth_type"] or "NoClientCert"
    if auth in _UNSUPPORTED_CLIENT_AUTH:
        errors.add(
            f"{p}.client_auth_type",
            f"{auth} is not supported (it accepts unverified certificates): use "
            "RequireAndVerifyClientCert or VerifyClientCertIfGiven with client_ca_file",
        )
    elif auth not in _CLIENT_AUTH:
        errors.add(f"{p}.client_auth_type", f"unknown {auth!r}; allowed: {', '.join(_CLIENT_AUTH)}")
    has_ca = bool(s["client_ca"] or s["client_ca_file"])
    if auth in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert") and not has_ca:
        errors.add(f"{p}.client_ca_file", f"missing: client_auth_type {auth} needs it")
    if has_ca and auth == "NoClientCert":
        errors.add(f"{p}.client_ca_file", "set, but client_auth_type is NoClientCert")
    if sans and auth != "RequireAndVerifyClientCert":
        errors.add(f"{p}.client_allowed_sans", "needs client_auth_type RequireAndVerifyClientCert")
    unknown = [c for c in ciphers if c not in _CIPHERS]
    if unknown:
        errors.add(f"{p}.cipher_suites", f"unknown {unknown[0]!r} (Go crypto/tls names)")
    prefer = tls.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        errors.add(f"{p}.prefer_server_cipher_suites", "must be true or false")
    if len(errors.items) > before:
        return None, frozenset()
    try:
        _load_pair(ctx, (paths.get("cert_file"), s["cert"]), (paths.get("key_file"), s["key"]))
    except (ssl.SSLError, OSError) as e:
        # The library's reason only ("KEY_VALUES_MISMATCH"): never the PEM itself.
        errors.add(f"{p}.cert_file", f"cannot load the certificate and key: {_reason(e)}")
    if has_ca:
        try:
            ctx.load_verify_locations(cafile=paths.get("client_ca_file"), cadata=s["client_ca"])
        except (ssl.SSLError, OSError, ValueError) as e:
            errors.add(f"{p}.client_ca_file", f"cannot load the CA certificates: {_reason(e)}")
    ctx.verify_mode = _CLIENT_AUTH.get(auth, ssl.CERT_NONE)
    suites = [_CIPHERS[c] for c in ciphers if _CIPHERS.get(c)]
    if suites:
        try:
            ctx.set_ciphers(":".join(suites))
        except ssl.SSLError as e:
            errors.add(f"{p}.cipher_suites", f"not available here: {_reason(e)}")
    if prefer is not False:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_alpn_protocols(["http/1.1"])  # HTTP/2 is not served: say so in the handshake
    return ctx, frozenset(sans)


def _reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError) and e.reason:
        return str(e.reason)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return type(e).__name__


def _http(doc: Any, errors: _Errors) -> tuple[tuple[str, str], ...]:
    p = "http_server_config"
    http = _mapping(doc, p, ("http2", "headers"), errors)
    if "http2" in http and not isinstance(http["http2"], bool):
        errors.add(f"{p}.http2", "must be true or false")
    headers = _mapping(http.get("headers"), f"{p}.headers", tuple(_HEADERS), errors)
    out = []
    for name, value in headers.items():
        if value is None or value == "":
            continue  # "unset if blank"
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            errors.add(f"{p}.headers.{name}", "must be a one-line string")
        elif _HEADERS[name] and value not in _HEADERS[name]:
            errors.add(f"{p}.headers.{name}", f"must be one of {', '.join(_HEADERS[name])}")
        else:
            out.append((name, value))
    return tuple(out)


def _users(doc: Any, errors: _Errors) -> dict[str, bytes]:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        errors.add("basic_auth_users", "must be a mapping of user name to bcrypt hash")
        return {}
    users = {}
    for name, hashed in doc.items():
        if not isinstance(name, str) or not name or ":" in name:
            errors.add("basic_auth_users", f"user name {name!r}: a non-empty string without ':'")
        elif not isinstance(hashed, str) or not _BCRYPT.fullmatch(hashed):
            # Never the value: it may be a plain password pasted by mistake.
            errors.add(
                f"basic_auth_users.{name}",
                'must be a bcrypt hash ($2a$/$2b$/$2y$, e.g. from `htpasswd -nBC 10 ""`)',
            )
        else:
            users[name] = hashed.encode()
    return users


def parse(doc: Any, base: Path, source: str = "<web config>") -> WebSettings:
    """Check and compile a parsed web configuration; ConfigError lists every problem."""
    errors = _Errors()
    if doc is None:
        return WebSettings()  # an empty file: plain HTTP, no auth (as exporter-toolkit)
    top = _mapping(doc, "", _TOP_KEYS, errors)
    files: list[str] = []
    users = _users(top.get("basic_auth_users"), errors)
    excluded = _strings(top, "auth_excluded_paths", "", errors)
    for path in excluded:
        if not path.startswith("/") or "?" in path:
            errors.add("auth_excluded_paths", f"{path!r}: a path such as /healthz (no query)")
    headers = _http(top.get("http_server_config"), errors)
    ctx, sans = _tls(top.get("tls_server_config"), base, errors, files)
    if errors.items:
        raise ConfigError(errors.items, source)
    dummy = b""
    if users:
        cost = max(int(h[4:6]) for h in users.values())
        dummy = bcrypt.hashpw(os.urandom(18).hex().encode(), bcrypt.gensalt(cost))
    return WebSettings(ctx, sans, users, headers, frozenset(excluded), dummy, tuple(files))


def load(path: str) -> WebSettings:
    """Read `path` and compile it, or raise ConfigError (messages name the key)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror or e}"], path) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"], path) from None
    doc, duplicates = parse_yaml(text, path)
    if duplicates:
        raise ConfigError(duplicates, path)
    settings = parse(doc, Path(path).absolute().parent, path)
    return dataclasses.replace(settings, files=(str(Path(path).absolute()), *settings.files))


def _stamp(files: tuple[str, ...]) -> tuple[Any, ...]:
    out: list[Any] = []
    for f in files:
        try:
            st = os.stat(f)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


class WebConfig:
    """The web configuration in force: reloaded when its files change, checks requests."""

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.settings = load(path)  # ConfigError at start: the caller exits 2
        self._stamp = _stamp(self.settings.files)
        self._bad_stamp: tuple[Any, ...] | None = None
        self._lock = threading.Lock()
        self._clock = clock
        self._cache: dict[bytes, float] = {}
        # How the last load went, for `export`: a broken file keeps the old settings
        # quietly after one log line, and a scrape should still show it.
        self.last_reload_ok = True
        self.last_reload_success = time.time()

    def export(self, registry: CollectorRegistry, prefix: str) -> None:
        """`<prefix>_web_config_last_reload_successful` (1/0) and its success time.

        Read at scrape time; a scrape is itself a request, so it sees the file as it is.
        """
        Gauge(
            f"{prefix}_web_config_last_reload_successful",
            "Whether the last load of --web.config.file succeeded (1) or not (0).",
            registry=registry,
        ).set_function(lambda: 1.0 if self.last_reload_ok else 0.0)
        Gauge(
            f"{prefix}_web_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful load of --web.config.file.",
            registry=registry,
        ).set_function(lambda: self.last_reload_success)

    def current(self) -> WebSettings:
        stamp = _stamp(self.settings.files)
        if stamp == self._stamp:
            self.last_reload_ok = True  # the files in force are back (an edit undone)
            return self.settings
        if stamp == self._bad_stamp:
            return self.settings
        with self._lock:
            stamp = _stamp(self.settings.files)
            if stamp in (self._stamp, self._bad_stamp):
                return self.settings
            try:
                new = load(self.path)
            except ConfigError as e:
                self._bad_stamp = stamp  # logged once per change, not once per request
                self.last_reload_ok = False
                log.error(
                    "web configuration %s is invalid, keeping the last good one: %s",
                    self.path,
                    "; ".join(e.errors),
                )
                return self.settings
            self.settings, self._stamp, self._bad_stamp = new, _stamp(new.files), None
            self.last_reload_ok, self.last_reload_success = True, time.time()
            log.info("web configuration %s reloaded: %s", self.path, new.describe())
            return new

    # -- connections ----------------------------------------------------------------

    def secure(self, sock: Any) -> Any:
        """The connection to serve (TLS after a handshake), or None when it failed.

        Runs in the connection's own thread: a slow handshake holds one bounded slot
        and the socket timeout, never the accept loop.
        """
        settings = self.current()
        if settings.tls is None:
            return sock
        try:
            conn = settings.tls.wrap_socket(sock, server_side=True)
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            log.debug("TLS handshake failed: %s", _reason(e))
            sock.close()
            return None
        if settings.allowed_sans and not _san_allowed(conn.getpeercert(), settings.allowed_sans):
            log.info("client certificate refused: no subjectAltName in client_allowed_sans")
            conn.close()
            return None
        return conn

    # -- basic auth -----------------------------------------------------------------

    def authorized(self, header: str | None, settings: WebSettings | None = None) -> bool:
        settings = settings or self.current()
        if not settings.users:
            return True
        user, password = _credentials(header)
        if user is None or password is None:
            return False
        hashed = settings.users.get(user)
        # The key covers the hash: a changed password in the file invalidates the entry.
        key = hashlib.sha256(b"\0".join([user.encode(), hashed or b"", password])).digest()
        now = self._clock()
        with self._lock:
            expires = self._cache.get(key)
        if hashed is not None and expires is not None and now < expires:
            return True
        try:
            ok = bcrypt.checkpw(password, hashed or settings.dummy) and hashed is not None
        except ValueError:  # bcrypt refuses passwords over 72 bytes: none can match
            ok = False
        if ok:
            with self._lock:
                if len(self._cache) >= CACHE_SIZE:
                    self._cache = {k: t for k, t in self._cache.items() if t > now}
                    while len(self._cache) >= CACHE_SIZE:
                        self._cache.pop(next(iter(self._cache)))
                self._cache[key] = now + CACHE_SECONDS
        return ok

    def guard(self, handler: type[BaseHTTPRequestHandler]) -> type[BaseHTTPRequestHandler]:
        """`handler` with basic auth before any do_* and the configured headers on every
        answer (the handler's own code is unchanged)."""
        return guarded(handler)


_GUARDED: dict[type, type] = {}


def guarded(handler: type[BaseHTTPRequestHandler]) -> type[BaseHTTPRequestHandler]:
    """A subclass of `handler` checking `self.server.web` (a WebConfig); one per class."""
    cached = _GUARDED.get(handler)
    if cached is not None:
        return cached

    class Guarded(handler):  # type: ignore[valid-type, misc]
        _web_settings: WebSettings | None = None

        def parse_request(self) -> bool:
            if not super().parse_request():
                return False
            web: WebConfig = self.server.web
            self._web_settings = settings = web.current()
            if urlsplit(self.path).path in settings.excluded:
                return True
            if web.authorized(self.headers.get("Authorization"), settings):
                return True
            body = b"Unauthorized\n"
            self.close_connection = True  # an unread body must not become a request
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return False

        def end_headers(self) -> None:
            settings = self._web_settings or self.server.web.current()
            for name, value in settings.headers:
                self.send_header(name, value)
            super().end_headers()

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{handler.__name__}"
    _GUARDED[handler] = Guarded
    return Guarded


def _credentials(header: str | None) -> tuple[str | None, bytes | None]:
    if not header:
        return None, None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None, None
    user, sep, password = raw.partition(b":")
    if not sep:
        return None, None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None, None


def _san_allowed(cert: dict[str, Any] | None, allowed: frozenset[str]) -> bool:
    for _kind, value in (cert or {}).get("subjectAltName", ()):
        if value in allowed:
            return True
    return False


# -- command line ---------------------------------------------------------------------


def add_arguments(parser: Any) -> None:
    """`--web.config.file` (the flag Prometheus exporters take)."""
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        default=None,
        help="TLS and basic auth for the HTTP endpoints, in Prometheus exporters' web "
        "configuration format (tls_server_config, basic_auth_users, http_server_config); "
        "changes to it and its certificate files apply to the next connection",
    )


def from_args(args: Any) -> WebConfig | None:
    """The WebConfig named on the command line (None without the flag); ConfigError
    (print it with `invalid_message`, exit 2) when the file is invalid."""
    path = getattr(args, "web_config_file", None)
    return WebConfig(path) if path else None


def invalid_message(path: str, error: ConfigError) -> str:
    count = len(error.errors)
    lines = [f"{path}: invalid web configuration, {count} error{'s' if count != 1 else ''}:"]
    return "\n".join(lines + [f"  {e}" for e in error.errors])
