"""`http`: an application that owns its replicas and takes a count over HTTP (ScaleIt).

The current count is read from a status endpoint (`GET /app/status` -> `{"replicas": 10}`)
and the desired count is sent with one request (`PUT /app/replicas` with
`{"replicas": 11}`). A 4xx answer is the application refusing the value: logged, counted,
and the same value is not sent again while the application's count stays the same
(retrying would only be refused again). 5xx answers, timeouts and unreachable
endpoints are counted and tried again next cycle. The controller sees the application
through `CountAsReplicas` (providers/count_adapter.py), so the planner is the same for
every provider.

Each failed request is reported to `on_request_failure(method, endpoint)` with ScaleIt's
label values (`get`, `/app/status`; `put`, `/app/replicas`): the daemon counts them in
`requests_failures_total`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from autoscaler.config import jsonpath
from autoscaler.providers.base import (
    ActionResult,
    CountProvider,
    ProviderError,
    RequestFailureHook,
    RequestLabels,
)
from autoscaler.providers.count_adapter import CountAsReplicas

if TYPE_CHECKING:
    from autoscaler.config import Config
    from autoscaler.core.spec import GroupConfig

log = logging.getLogger(__name__)

METHODS = ("PUT", "POST", "PATCH")
KNOWN_OPTIONS = frozenset(
    {
        "status_url",
        "count_path",
        "set_url",
        "set_method",
        "set_count_path",
        "headers",
        "success_codes",
        "timeout_seconds",
    }
)
DEFAULTS: dict[str, Any] = {
    "count_path": "replicas",
    "set_method": "PUT",
    "set_count_path": "replicas",
    "timeout_seconds": 5.0,
}
_MAX_ERROR_BODY = 200  # characters of an error answer kept in the message


@dataclass(frozen=True)
class HttpOptions:
    status_url: str
    set_url: str
    count_path: tuple[jsonpath.Step, ...] = ("replicas",)
    set_method: str = "PUT"
    set_count_path: tuple[str, ...] = ("replicas",)
    headers: Mapping[str, str] = field(default_factory=dict)
    success_codes: frozenset[int] | None = None  # of the set request; None: any 2xx
    timeout_seconds: float = 5.0


def endpoint(url: str) -> str:
    """The label value of a URL: its path, as ScaleIt labels it (`/app/status`)."""
    return urlsplit(url).path or "/"


class HttpCountProvider(CountProvider):
    kind = "http"

    def __init__(self, options: HttpOptions, session: requests.Session | None = None) -> None:
        self.options = options
        self.session = session or requests.Session()
        self.on_request_failure: RequestFailureHook | None = None
        self._rejected: tuple[int, int] | None = None  # (count read, value refused) by 4xx
        self._last_read: int | None = None

    # --- what the daemon counts ------------------------------------------------------
    def report_request_failures(self, hook: RequestFailureHook) -> RequestLabels:
        """(method, endpoint) of both requests, lower-case method, as ScaleIt labels them."""
        self.on_request_failure = hook
        o = self.options
        return [("get", endpoint(o.status_url)), (o.set_method.lower(), endpoint(o.set_url))]

    def _failed(self, method: str, url: str) -> None:
        if self.on_request_failure is not None:
            self.on_request_failure(method.lower(), endpoint(url))

    # --- the two calls -----------------------------------------------------------------
    def read_count(self) -> int:
        o = self.options
        headers = {"Accept": "application/json", **o.headers}
        try:
            answer = self.session.get(o.status_url, headers=headers, timeout=o.timeout_seconds)
        except requests.RequestException as e:
            self._failed("get", o.status_url)
            raise ProviderError(f"GET {endpoint(o.status_url)}: {_why(e)}") from None
        if not 200 <= answer.status_code < 300:
            self._failed("get", o.status_url)
            raise ProviderError(f"GET {endpoint(o.status_url)}: {_status(answer)}")
        try:
            value = jsonpath.extract(answer.json(), o.count_path)
        except ValueError as e:  # not JSON
            self._failed("get", o.status_url)
            raise ProviderError(f"GET {endpoint(o.status_url)}: not JSON ({e})") from None
        except jsonpath.MissingError as e:
            self._failed("get", o.status_url)
            raise ProviderError(f"GET {endpoint(o.status_url)}: {e}") from None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            self._failed("get", o.status_url)
            where = jsonpath.format_path(o.count_path)
            raise ProviderError(
                f"GET {endpoint(o.status_url)}: {where} is {value!r}, not a count >= 0"
            )
        self._last_read = value
        return value

    def set_count(self, count: int) -> ActionResult:
        o = self.options
        where = f"{o.set_method} {endpoint(o.set_url)}"
        if self._rejected == (self._last_read, count):
            # Refused with a 4xx for this same state: sending it again changes nothing.
            return ActionResult(failed=[("", f"{where} {count}: rejected earlier, not retried")])
        body: Any = count
        for key in reversed(o.set_count_path):
            body = {key: body}
        headers = {"Content-Type": "application/json", **o.headers}
        try:
            answer = self.session.request(
                o.set_method, o.set_url, json=body, headers=headers, timeout=o.timeout_seconds
            )
        except requests.RequestException as e:
            self._failed(o.set_method, o.set_url)
            return ActionResult(failed=[("", f"{where} {count}: {_why(e)}; retried next cycle")])
        if self._success(answer.status_code):
            self._rejected = None
            self._last_read = count
            return ActionResult(succeeded=[str(count)])
        self._failed(o.set_method, o.set_url)
        if 400 <= answer.status_code < 500:
            self._rejected = (self._last_read, count) if self._last_read is not None else None
            log.warning("%s %d rejected: %s", where, count, _status(answer))
            return ActionResult(failed=[("", f"{where} {count} rejected: {_status(answer)}")])
        return ActionResult(
            failed=[("", f"{where} {count}: {_status(answer)}; retried next cycle")]
        )

    def _success(self, code: int) -> bool:
        codes = self.options.success_codes
        return code in codes if codes is not None else 200 <= code < 300

    def close(self) -> None:
        self.session.close()


def _why(e: requests.RequestException) -> str:
    """The kind of failure, never the URL's query string or credentials."""
    if isinstance(e, requests.Timeout):
        return "timed out"
    if isinstance(e, requests.ConnectionError):
        return "cannot connect"
    return type(e).__name__


def _status(answer: requests.Response) -> str:
    text = " ".join(answer.text.split())[:_MAX_ERROR_BODY]
    return f"HTTP {answer.status_code}" + (f": {text}" if text else "")


# --- configuration --------------------------------------------------------------------
def _url_error(value: Any, path: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"{path}: got {value!r}, expected an http:// or https:// URL"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"{path}: got {value!r}, expected an http:// or https:// URL"
    if parts.username or parts.password:
        return f"{path}: credentials in the URL are not allowed; use headers"
    return None


def check_options(options: Mapping[str, Any], path: str) -> list[str]:
    """Every problem in the `http` provider options, each naming key, bad value, allowed."""
    if not isinstance(options, Mapping):
        return [f"{path}: got {options!r}, expected a mapping of options"]
    errors = [
        f"{path}.{key}: unknown option for the http provider; "
        f"allowed: {', '.join(sorted(KNOWN_OPTIONS))}"
        for key in sorted(set(options) - KNOWN_OPTIONS)
    ]
    for key in ("status_url", "set_url"):
        if key not in options:
            errors.append(f"{path}.{key}: required (an http:// or https:// URL)")
        elif (e := _url_error(options[key], f"{path}.{key}")) is not None:
            errors.append(e)
    for key in ("count_path", "set_count_path"):
        if key in options:
            v = options[key]
            try:
                steps = jsonpath.parse(v) if isinstance(v, str) else None
            except jsonpath.PathError as e:
                errors.append(f"{path}.{key}: {e}")
                continue
            if steps is None:
                errors.append(f"{path}.{key}: got {v!r}, expected a JSON path such as 'replicas'")
            elif key == "set_count_path" and not all(isinstance(s, str) for s in steps):
                errors.append(f"{path}.{key}: got {v!r}, expected keys only (no [index])")
    if "set_method" in options and options["set_method"] not in METHODS:
        errors.append(
            f"{path}.set_method: got {options['set_method']!r}, "
            f"expected one of {', '.join(METHODS)}"
        )
    if "headers" in options:
        h = options["headers"]
        if not isinstance(h, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in h.items()
        ):
            errors.append(f"{path}.headers: expected a mapping of header names to strings")
    if "success_codes" in options:
        c = options["success_codes"]
        if (
            not isinstance(c, list)
            or not c
            or not all(isinstance(x, int) and not isinstance(x, bool) and 100 <= x < 600 for x in c)
        ):
            errors.append(f"{path}.success_codes: got {c!r}, expected a list of HTTP status codes")
    if "timeout_seconds" in options:
        t = options["timeout_seconds"]
        if not isinstance(t, int | float) or isinstance(t, bool) or not 0 < t <= 300:
            errors.append(f"{path}.timeout_seconds: got {t!r}, expected a number in (0, 300]")
    return errors


def options_from(options: Mapping[str, Any]) -> HttpOptions:
    """HttpOptions from checked options."""
    o = {**DEFAULTS, **options}
    codes: Sequence[int] | None = o.get("success_codes")
    return HttpOptions(
        status_url=str(o["status_url"]),
        set_url=str(o["set_url"]),
        count_path=jsonpath.parse(str(o["count_path"])),
        set_method=str(o["set_method"]),
        set_count_path=tuple(str(s) for s in jsonpath.parse(str(o["set_count_path"]))),
        headers=dict(o.get("headers") or {}),
        success_codes=frozenset(codes) if codes else None,
        timeout_seconds=float(o["timeout_seconds"]),
    )


def build(group: GroupConfig, config: Config) -> CountAsReplicas:
    """The provider for `group`, presented to the controller as replicas."""
    options = dict(group.provider.options or {})
    errors = check_options(options, f"groups.{group.name}.provider.options")
    if errors:
        raise ValueError("; ".join(errors))
    return CountAsReplicas(HttpCountProvider(options_from(options)), group.name)
