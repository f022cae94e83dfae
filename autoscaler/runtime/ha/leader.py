"""Leader election on etcd: a key on a lease, kept alive, and fencing before every action.

The leader holds `<key_prefix>/leader` (its identity) on a lease of `lease_ttl_seconds`,
renewed every `renew_seconds`. etcd ends the lease, and so the key, `lease_ttl_seconds`
after the last renewal it received; a follower polling every `poll_seconds` then creates
the key on its own lease and leads.

Fencing: this instance leads only while its own monotonic clock says the lease cannot have
ended yet: until `(start of the last successful renewal) + TTL - safety_margin_seconds`.
The renewal reached etcd after it started, so etcd's deadline is later still; the margin
covers a pause between the check and the provider call. `may_act`, called right before
every provider action, also reads the key, so a key deleted by hand or taken over stops us
at once; while etcd does not answer, the clock alone decides. When etcd is unreachable
the leader says so once, stops once its lease can no longer be guaranteed (saying why,
once), and leads again when etcd answers and its lease (or a new one) is still its own.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from autoscaler.config.schema import HAConfig
from autoscaler.runtime.ha.etcd import Access, Etcd, EtcdError, EtcdUnavailable, KeyValue

log = logging.getLogger("autoscaler.ha")


def default_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def access(ha: HAConfig) -> Access:
    """The TLS files and etcd user of an `ha` block."""
    return Access(ha.ca_file, ha.cert_file, ha.key_file, ha.username, ha.password)


class LeaderElector:
    """Campaigns in a thread; `term`, `may_act` and `status` are safe from any thread."""

    def __init__(
        self,
        ha: HAConfig,
        *,
        etcd: Etcd | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.ha = ha
        self.etcd = etcd or Etcd(ha.endpoints, ha.timeout_seconds, access(ha))
        self.identity = ha.identity or default_identity()
        self.key = f"{ha.key_prefix.rstrip('/')}/leader"
        self.monotonic = monotonic
        self.on_change = on_change
        self._lock = threading.Lock()
        self._lease: int | None = None  # our lease, while we hold (or may hold) the key
        self._valid_until = float("-inf")  # monotonic: the lease is ours until then
        self._leader: str | None = None  # who leads, as last seen in etcd
        self._leading = False  # as last announced (log, gauge, on_change)
        self._said = threading.Lock()  # one announcement at a time (election, fencing)
        self._renewed_at: float | None = None  # monotonic start of the last renewal
        self._etcd_error: str | None = None  # etcd's last failure, until it answers again
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what the controller asks ----------------------------------------------------
    def is_leader(self) -> bool:
        with self._lock:
            return self._lease is not None and self.monotonic() < self._valid_until

    def term(self) -> int | None:
        """This leadership's lease id; None while following. A new term, a new id."""
        with self._lock:
            if self._lease is not None and self.monotonic() < self._valid_until:
                return self._lease
            return None

    @property
    def lease_id(self) -> int | None:
        return self.term()

    def may_act(self) -> bool:
        """Fencing, right before a provider action: the lease is ours and the key still is."""
        lease = self.term()
        if lease is None:
            return False
        try:
            kv = self.etcd.get(self.key)
        except EtcdError:
            return self.is_leader()  # unreachable: our own clock still guarantees the lease
        if kv is None or kv.lease != lease:
            self._lost(lease, f"the leader key is now {_holder(kv)}")
            return False
        return self.is_leader()

    def status(self) -> dict[str, Any]:
        """For /status: who leads, who we are, whether we do, and etcd's health."""
        with self._lock:
            leading = self._lease is not None and self.monotonic() < self._valid_until
            left = self._valid_until - self.monotonic() if leading else None
            return {
                "identity": self.identity,
                "leader": self.identity if leading else self._leader,
                "is_leader": leading,
                "lease_valid_seconds": None if left is None else round(left, 3),
                "etcd_error": self._etcd_error,
                "key": self.key,
            }

    # --- the campaign ------------------------------------------------------------------
    def start(self) -> None:
        log.info(
            "high availability: campaigning as %s for %s on etcd %s (lease TTL %ds)",
            self.identity,
            self.key,
            ", ".join(self.etcd.endpoints),
            self.ha.lease_ttl_seconds,
        )
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop campaigning; a leader revokes its lease, so a follower takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.ha.timeout_seconds * 3 + 1)
        with self._lock:
            lease, self._lease, self._valid_until = self._lease, None, float("-inf")
        if lease is not None:
            try:
                self.etcd.revoke(lease)
                log.info("leadership released (lease revoked)")
            except EtcdError as e:
                log.warning("could not release leadership (%s): it ends with the lease", e)
        self._announce()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - the campaign must outlive its own bugs
                log.exception("leader election step failed unexpectedly; retrying")
            leading = self.is_leader()
            wait = self.ha.renew if leading and self._etcd_error is None else self.ha.poll_seconds
            if leading:
                # Never sleep past the point where the lease would stop being guaranteed.
                with self._lock:
                    wait = min(wait, max(0.05, self._valid_until - self.monotonic()))
            self._stop.wait(wait)

    def step(self) -> None:
        """One renewal (holding a lease) or one look at the leader key (not holding one)."""
        try:
            if self._lease is not None:
                self._renew(self._lease)
            else:
                self._campaign()
        except EtcdError as e:
            self._unreachable(str(e))
        else:
            if self._etcd_error is not None:
                log.info("etcd answers again")
                self._etcd_error = None
        self._announce()

    def _renew(self, lease: int) -> None:
        started = self.monotonic()
        ttl = self.etcd.keepalive(lease)
        if ttl <= 0:
            self._lost(lease, "etcd had already ended its lease")
            self._campaign()
            return
        kv = self.etcd.get(self.key)
        if kv is None:
            self._take(lease, started, ttl)  # the key went (deleted by hand?): ours again
        elif kv.lease != lease:
            self._lost(lease, f"the leader key is now {_holder(kv)}")
            self._leader = kv.value
        else:
            self._extend(lease, started, ttl)

    def _campaign(self) -> None:
        kv = self.etcd.get(self.key)
        if kv is not None:
            self._leader = kv.value  # someone leads: follow
            return
        started = self.monotonic()
        lease, ttl = self.etcd.grant(self.ha.lease_ttl_seconds)
        self._take(lease, started, ttl)

    def _take(self, lease: int, started: float, ttl: int) -> None:
        won, kv = self.etcd.create(self.key, self.identity, lease)
        if won:
            self._extend(lease, started, ttl)
            return
        self._leader = kv.value if kv else None
        if kv is not None and kv.lease == lease:
            self._extend(lease, started, ttl)  # already ours (a retried request)
            return
        with self._lock:
            if self._lease == lease:
                self._lease, self._valid_until = None, float("-inf")
        try:
            self.etcd.revoke(lease)
        except EtcdError:
            pass  # it ends by itself after its TTL

    def _extend(self, lease: int, started: float, ttl: int) -> None:
        with self._lock:
            self._lease = lease
            self._valid_until = started + ttl - self.ha.safety_margin_seconds
            self._renewed_at = started
            self._leader = self.identity

    def _lost(self, lease: int, why: str) -> None:
        with self._lock:
            if self._lease != lease:
                return
            self._lease, self._valid_until = None, float("-inf")
        with self._said:
            if self._leading:
                log.warning("leadership lost: %s; not acting", why)
                self._leading = False
                self._notify(False)

    def _unreachable(self, error: str) -> None:
        if self._etcd_error is None:
            with self._lock:
                left = self._valid_until - self.monotonic() if self._lease is not None else None
            if left is not None and left > 0:
                log.warning(
                    "etcd unreachable (%s): still leading for at most %.1fs on the current "
                    "lease, renewing every %gs",
                    error,
                    left,
                    self.ha.poll_seconds,
                )
            else:
                log.warning("etcd unreachable (%s): not leading; retrying", error)
        self._etcd_error = error

    def _announce(self) -> None:
        """Log, and tell on_change, when leadership began or ended since the last call."""
        with self._said:
            self._announce_locked()

    def _announce_locked(self) -> None:
        leading = self.is_leader()
        if leading == self._leading:
            return
        self._leading = leading
        if leading:
            log.info(
                "leading as %s (lease %x, TTL %ds, key %s)",
                self.identity,
                self._lease or 0,
                self.ha.lease_ttl_seconds,
                self.key,
            )
        elif self._etcd_error is not None:
            since = self.monotonic() - (self._renewed_at or self.monotonic())
            log.warning(
                "not acting any more: no renewal has reached etcd for %.1fs, so the lease "
                "(TTL %ds, minus a %gs safety margin) can no longer be guaranteed; etcd: %s. "
                "Acting again once etcd answers and the lease is ours",
                since,
                self.ha.lease_ttl_seconds,
                self.ha.safety_margin_seconds,
                self._etcd_error,
            )
        else:
            log.warning("leadership ended; not acting")
        self._notify(leading)

    def _notify(self, leading: bool) -> None:
        if self.on_change is not None:
            try:
                self.on_change(leading)
            except Exception:  # noqa: BLE001 - a gauge must not stop the election
                log.exception("leadership change hook failed")


def _holder(kv: KeyValue | None) -> str:
    return "gone" if kv is None else f"held by {kv.value!r}"


__all__ = ["EtcdUnavailable", "LeaderElector", "default_identity"]
