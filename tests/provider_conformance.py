"""The provider conformance suite: what every provider shows through the interface.

One base class per kind of target (autoscaler/providers/base.py):

- `ReplicaProviderContract` (alias `ProviderContract`): list / create n / delete ids
  (local, openstack, docker, libvirt);
- `CountProviderContract`: read the count / set the count (an application that owns its
  replicas, e.g. the `http` provider for ScaleIt's API).

A test module opts in by subclassing one of them (class name `Test...`) and implementing
`make_provider(group)`; everything else is a hook with a default. A hook the provider
cannot support calls `unsupported("why")`, which skips the tests needing it with that
reason, so the report shows what each provider does not claim. To reach a backend the
hooks need (an emulator, a temporary directory), override the `contract_backend`
fixture: its value is `self.backend`, and it outlives the suite's own clean-up.

    class TestLocalConformance(ReplicaProviderContract):
        @pytest.fixture
        def contract_backend(self, tmp_path):
            return tmp_path

        def make_provider(self, group):
            return LocalProvider(group, options(self.backend))

Every provider made through `self.provider(group)` has its replicas deleted and is closed
after the test; a hook that makes something else registers its clean-up with
`self.on_cleanup(fn)`.

The contract (each a test below):
- a new group lists empty; `create(n)` makes n distinct replicas, listed at once
  (BUILDING or ACTIVE) and ACTIVE within `settle_seconds`; `create(0)` does nothing;
- `list` returns only the group's replicas: another group's and unlabelled ones never
  appear (`add_foreign_replicas`);
- after an autoscaler crashed between a create and the next list, a new instance adopts
  the replica (`crash_between_create_and_list`), and a create whose answer was lost is
  not doubled when retried (`lose_next_create_answer`);
- `delete(ids)` removes exactly those replicas; deleting one that is already gone
  (`kill_externally`) succeeds;
- a call to a backend that never answers returns or raises `ProviderError` within the
  configured timeout (`hung_calls`);
- errors carry the provider's message and never a secret (`failing_calls`, `secrets`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn, TypeVar

import pytest

from autoscaler.core.model import Replica, ReplicaState
from autoscaler.providers.base import ActionResult, CountProvider, ProviderError, ReplicaProvider

__all__ = [
    "BlackHole",
    "CountProviderContract",
    "Failure",
    "Hung",
    "ProviderContract",
    "ReplicaProviderContract",
    "outcome_text",
    "unsupported",
    "wait_for",
]


P = TypeVar("P", bound=ReplicaProvider)


def unsupported(reason: str) -> NoReturn:
    """Called by a hook the provider cannot support: skips the tests that need it."""
    pytest.skip(f"not supported by this provider: {reason}")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """The first truthy value of `predicate()`, polled until `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
        time.sleep(interval)


@dataclass(frozen=True)
class Hung:
    """A call against a backend that accepts the request and never answers.

    `call` must return, or raise `ProviderError`, within `bound_seconds`: the configured
    timeout times the attempts the provider documents, plus its fixed waits."""

    what: str
    call: Callable[[], object]
    bound_seconds: float


@dataclass(frozen=True)
class Failure:
    """A call the backend refuses. Its error (raised `ProviderError`, or the messages in
    `ActionResult.failed`) must contain `expect`: the provider's own explanation."""

    what: str
    call: Callable[[], object]
    expect: str


def outcome_text(call: Callable[[], object]) -> str:
    """The error text of a call that must fail: a `ProviderError` or a failed result.

    Any other exception is a contract violation (it would crash the controller's cycle)
    and propagates."""
    try:
        result = call()
    except ProviderError as exc:
        return f"{exc}\n{exc!r}"
    if isinstance(result, ActionResult):
        assert result.failed, f"expected a failure, got {result!r}"
        return "\n".join(f"{rid}: {msg}" for rid, msg in result.failed)
    raise AssertionError(f"expected ProviderError or a failed ActionResult, got {result!r}")


class BlackHole:
    """A loopback listener that accepts connections and never answers (a hung API).

    TCP by default (`url` is http://127.0.0.1:PORT); give `unix_path` for a Unix socket
    (a hung Docker engine). Every connection is closed by `close()`."""

    def __init__(self, unix_path: str | None = None) -> None:
        self.unix_path = unix_path
        family = socket.AF_UNIX if unix_path else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.bind(unix_path if unix_path else ("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="black-hole", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"unix://{self.unix_path}" if self.unix_path else f"http://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        return len(self._held)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self._held.append(conn)  # hold it open, read nothing, answer nothing

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()
        self._sock.close()
        if self.unix_path:
            with contextlib.suppress(OSError):
                os.unlink(self.unix_path)

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _run_bounded(call: Callable[[], object], bound: float) -> tuple[float, BaseException | None]:
    """(elapsed seconds, the exception raised or None); fails if still running at bound."""
    box: dict[str, BaseException | None] = {"error": None}

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - judged by the caller
            box["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=target, name="contract-hung-call", daemon=True)
    thread.start()
    thread.join(bound)
    elapsed = time.monotonic() - started
    assert not thread.is_alive(), f"still running after {bound:.1f}s: the timeout is not honoured"
    return elapsed, box["error"]


class _ContractBase:
    """Clean-up and group names, shared by both kinds of contract."""

    settle_seconds: ClassVar[float] = 30.0  # a replica gets ACTIVE / a delete completes
    timeout_slack_seconds: ClassVar[float] = 3.0  # scheduling noise on a loaded 2-core CI

    backend: Any
    _cleanups: list[Callable[[], None]]

    @pytest.fixture
    def contract_backend(self) -> Any:
        """Override to start (and stop) what the hooks need; its value is `self.backend`."""
        return None

    def on_cleanup(self, fn: Callable[[], None]) -> None:
        """Run `fn` after the test (last registered first), before the backend stops."""
        self._cleanups.append(fn)

    def new_group(self) -> str:
        """A fresh group name: short, lower case, starts with a letter (valid everywhere)."""
        return f"cf{secrets.token_hex(3)}"

    def secrets(self) -> list[str]:
        """Values that must never appear in an error (passwords, tokens)."""
        return []

    def hung_calls(self, group: str) -> list[Hung]:
        """Calls against a backend that never answers (see `BlackHole`)."""
        unsupported("no way to make the backend hang")

    def failing_calls(self, group: str) -> list[Failure]:
        """Calls the backend refuses, each with a fragment of the provider's message."""
        unsupported("no way to make the backend refuse a call")

    @pytest.fixture(autouse=True)
    def _contract(self, contract_backend: Any) -> Iterator[None]:
        self.backend = contract_backend
        self._providers: list[Any] = []
        self._cleanups = []
        yield
        try:
            for p in self._providers:
                self._release(p)
        finally:
            self._run_cleanups()

    def _release(self, p: Any) -> None:
        """After the test: what each provider made is let go (by default: closed)."""
        p.close()

    def _run_cleanups(self) -> None:
        errors = []
        for fn in reversed(self._cleanups):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - run them all, report the first
                errors.append(exc)
        if errors:
            raise errors[0]

    # ----- the contract tests both kinds share

    def test_hung_backend_call_is_bounded_by_the_timeout(self) -> None:
        calls = self.hung_calls(self.new_group())
        assert calls, "hung_calls returned nothing: call unsupported() instead"
        for hung in calls:
            elapsed, error = _run_bounded(
                hung.call, hung.bound_seconds + self.timeout_slack_seconds
            )
            if error is not None and not isinstance(error, ProviderError):
                raise AssertionError(
                    f"{hung.what}: raised {type(error).__name__}, expected ProviderError"
                ) from error

    def test_errors_carry_the_providers_message_and_no_secret(self) -> None:
        failures = self.failing_calls(self.new_group())
        assert failures, "failing_calls returned nothing: call unsupported() instead"
        for failure in failures:
            text = outcome_text(failure.call)
            assert failure.expect in text, f"{failure.what}: {failure.expect!r} not in {text!r}"
            for secret in self.secrets():
                assert secret not in text, f"{failure.what}: a secret is in the message"


class ReplicaProviderContract(_ContractBase):
    """The contract of a replica-level provider (list / create n / delete ids)."""

    _providers: list[ReplicaProvider]

    def _release(self, p: Any) -> None:
        try:  # never leave replicas behind on a shared backend
            ids = [r.id for r in p.list()]
            if ids:
                p.delete(ids)
        except ProviderError:
            pass  # a provider made to fail (hung or refused backend) holds nothing
        finally:
            p.close()

    # ----- hooks

    def make_provider(self, group: str) -> ReplicaProvider:
        """A new provider instance for `group` (each call: a new instance, as after a restart)."""
        raise NotImplementedError

    def add_foreign_replicas(self, group: str) -> None:
        """Make, on the backend, replicas that are not `group`'s: with no group label at
        all, or looking almost like the group's. `list` must never show them."""
        unsupported("no way to make an unlabelled replica")

    def crash_between_create_and_list(self, group: str) -> None:
        """Leave the backend as an autoscaler does that died after asking for one replica
        and before it listed it. The default: an instance creates one and is dropped
        without `list` or `close`; override with a harsher crash where the provider has
        one (a create interrupted halfway)."""
        dying = self.make_provider(group)
        assert len(dying.create(1).succeeded) == 1

    def lose_next_create_answer(self, provider: ReplicaProvider) -> None:
        """Make the backend perform the next create but lose its answer (an error or a
        reset after the replica was made)."""
        unsupported("no way to lose an answer of this backend")

    def kill_externally(self, group: str, replica_id: str) -> None:
        """Remove a replica behind the provider's back (an operator, a crash). The
        default: another instance deletes it."""
        assert self.make_provider(group).delete([replica_id]).failed == []

    # ----- helpers for the tests and the hooks

    def provider(self, group: str | None = None) -> ReplicaProvider:
        """A provider made by `make_provider`, cleaned up after the test."""
        return self.kept(self.make_provider(group or self.new_group()))

    def kept(self, p: P) -> P:
        """`p` (made by a hook, e.g. with other options), cleaned up like `provider()`."""
        self._providers.append(p)
        return p

    def live(self, p: ReplicaProvider) -> list[Replica]:
        return [r for r in p.list() if r.state is not ReplicaState.DELETING]

    def wait_active(self, p: ReplicaProvider, n: int) -> list[Replica]:
        def ready() -> list[Replica] | None:
            reps = self.live(p)
            ok = len(reps) == n and all(r.state is ReplicaState.ACTIVE for r in reps)
            return reps if ok else None

        return wait_for(ready, self.settle_seconds, f"{n} active replicas")

    def wait_ids(self, p: ReplicaProvider, ids: Sequence[str]) -> None:
        """Until exactly `ids` are listed (deleting ones included, so deletes completed)."""
        want = sorted(ids)
        wait_for(lambda: sorted(r.id for r in p.list()) == want, self.settle_seconds, f"{want}")

    # ----- the contract

    def test_a_new_group_lists_empty(self) -> None:
        assert self.provider().list() == []

    def test_create_n_replicas(self) -> None:
        p = self.provider()
        group = self.group_of(p)
        res = p.create(2)
        assert res.failed == [] and res.quota_exceeded is None
        assert len(res.succeeded) == 2 and len(set(res.succeeded)) == 2
        listed = p.list()  # at once: a create that returned is counted by the next cycle
        assert sorted(r.id for r in listed) == sorted(res.succeeded)
        assert all(r.state in (ReplicaState.BUILDING, ReplicaState.ACTIVE) for r in listed)
        reps = self.wait_active(p, 2)
        assert all(r.group == group for r in reps)
        assert all(r.address for r in reps), "an ACTIVE replica has an address to scrape"
        assert p.create(0).succeeded == [] and len(p.list()) == 2

    def test_lists_only_its_own_group(self) -> None:
        a, b = self.provider(), self.provider()
        ids_a = a.create(1).succeeded
        ids_b = b.create(2).succeeded
        assert len(ids_a) == 1 and len(ids_b) == 2
        assert sorted(r.id for r in a.list()) == sorted(ids_a)
        assert sorted(r.id for r in b.list()) == sorted(ids_b)

    def test_unlabelled_and_foreign_replicas_never_appear(self) -> None:
        group = self.new_group()
        self.add_foreign_replicas(group)
        p = self.provider(group)
        assert p.list() == []
        (rid,) = p.create(1).succeeded
        assert [r.id for r in p.list()] == [rid]

    def test_adopts_a_replica_after_a_crash_between_create_and_list(self) -> None:
        group = self.new_group()
        self.crash_between_create_and_list(group)
        p = self.provider(group)  # the restarted autoscaler
        (adopted,) = self.wait_active(p, 1)
        assert adopted.group == group
        (new,) = p.create(1).succeeded  # the next cycle wants two: one more, not two
        assert new != adopted.id
        self.wait_active(p, 2)
        assert p.delete([adopted.id, new]).failed == []  # adopted, so deletable: no orphan
        self.wait_ids(p, [])

    def test_a_retried_create_whose_answer_was_lost_is_not_doubled(self) -> None:
        p = self.provider()
        self.lose_next_create_answer(p)
        res = p.create(1)
        assert len(res.succeeded) + len(res.failed) == 1
        (rep,) = self.wait_active(p, 1)
        if res.succeeded:
            assert res.succeeded == [rep.id]
        time.sleep(min(2.0, self.settle_seconds / 10))  # a late second one would show now
        assert len(p.list()) == 1

    def test_delete_removes_exactly_the_given_replicas(self) -> None:
        p = self.provider()
        ids = p.create(3).succeeded
        assert len(ids) == 3
        self.wait_active(p, 3)
        victims = [ids[0], ids[2]]
        res = p.delete(victims)
        assert sorted(res.succeeded) == sorted(victims) and res.failed == []
        assert [r.id for r in self.live(p)] == [ids[1]]
        self.wait_ids(p, [ids[1]])
        assert p.delete([]).succeeded == []

    def test_delete_of_an_already_gone_replica_is_success(self) -> None:
        p = self.provider()
        (rid,) = p.create(1).succeeded
        self.wait_active(p, 1)
        self.kill_externally(self.group_of(p), rid)
        self.wait_ids(p, [])
        res = p.delete([rid])
        assert res.succeeded == [rid] and res.failed == []
        again = p.delete([rid])  # and again: idempotent
        assert again.succeeded == [rid] and again.failed == []

    def group_of(self, p: ReplicaProvider) -> str:
        """The group a provider was made for (override when it is not `p.group`)."""
        group = getattr(p, "group", None)
        if not isinstance(group, str):
            raise NotImplementedError(f"{type(p).__name__}: override group_of()")
        return group


ProviderContract = ReplicaProviderContract


class CountProviderContract(_ContractBase):
    """The contract of a count-level provider (read the count / set the count).

    The application owns its replicas, so the replica-level parts of the contract
    (only ours listed, delete these ids, adoption) are declared skipped here, with the
    reason; what remains: the count set is the count read, by this instance and a new
    one (a restarted autoscaler), timeouts and error messages."""

    start_count: ClassVar[int] = 1  # what the application runs before the test

    _providers: list[CountProvider]

    def make_provider(self, group: str) -> CountProvider:
        raise NotImplementedError

    def provider(self, group: str | None = None) -> CountProvider:
        p = self.make_provider(group or self.new_group())
        self._providers.append(p)
        return p

    def test_reads_the_count(self) -> None:
        n = self.provider().read_count()
        assert isinstance(n, int) and not isinstance(n, bool) and n == self.start_count

    def test_set_count_is_read_back_by_a_new_instance(self) -> None:
        group = self.new_group()
        p = self.provider(group)
        target = self.start_count + 2
        res = p.set_count(target)
        assert res.failed == [], res
        wait_for(lambda: p.read_count() == target, self.settle_seconds, f"count {target}")
        assert self.provider(group).read_count() == target  # nothing kept in memory
        again = p.set_count(target)  # setting the same count again is harmless
        assert again.failed == [] and p.read_count() == target
        assert p.set_count(self.start_count).failed == []
        wait_for(lambda: p.read_count() == self.start_count, self.settle_seconds, "count back")

    def test_list_only_ours(self) -> None:
        pytest.skip("count-level: the application owns its replicas, there is no list")

    def test_delete_specific_replicas(self) -> None:
        pytest.skip("count-level: no 'delete these ids', the application picks")

    def test_adopt_after_a_crash_between_create_and_list(self) -> None:
        pytest.skip("count-level: the count lives in the application, nothing to adopt")
