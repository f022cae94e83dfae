"""Flavor, image and network look-ups: resolved once, concurrently, then cached.

Each look-up is a few API calls (version discovery, a GET by id that may 404, a list by
name); run one after another before the first create they cost a slow cloud seconds. They
run side by side on a small pool of their own, start as soon as the provider first lists
its group, and are kept. A cached id goes stale when a cloud replaces an image (same
name, new id) or a flavor or network is recreated: a create refused for an id it was
given drops the cache once (`refresh`), and the cache is renewed in the background when
it is older than `max_age`, the old ids serving meanwhile. A failed look-up is not cached:
the next call tries again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

KEYS = ("flavor", "image", "network")


@dataclass(frozen=True)
class Resolved:
    """One generation of resolved ids (a new generation after every refresh)."""

    generation: int
    flavor: str
    image: str
    network_id: str
    network_name: str | None

    def ids(self) -> tuple[str, str, str]:
        return self.flavor, self.image, self.network_id


class Lookups:
    """Single-flight, cached look-ups of the three resources a create needs."""

    def __init__(
        self,
        resolvers: Mapping[str, Callable[[], Any]],
        *,
        timeout: float,
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # resolvers: flavor -> id, image -> id, network -> {"network_id", "network_name"}
        self._resolvers = dict(resolvers)
        self._timeout = timeout
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(len(KEYS), thread_name_prefix="openstack-lookup")
        self._futures: dict[str, Future[Any]] = {}
        self._generation = 0
        self._started_at = 0.0
        self._renewing: dict[str, Future[Any]] | None = None

    # -- starting --------------------------------------------------------------------
    def start(self) -> None:
        """Start every look-up not cached nor under way; returns at once."""
        with self._lock:
            self._start_missing()
            renewing = None
            if self._clock() - self._started_at > self._max_age and self._renewing is None:
                renewing = {key: self._pool.submit(self._resolvers[key]) for key in KEYS}
                self._renewing = renewing
        if renewing is not None:  # outside the lock: a done future calls back at once
            self._swap_when_done(renewing)

    def _start_missing(self) -> None:
        if not self._futures:
            self._started_at = self._clock()
        for key in KEYS:
            f = self._futures.get(key)
            if f is None or (f.done() and f.exception() is not None):
                self._futures[key] = self._pool.submit(self._resolvers[key])

    def _swap_when_done(self, renewing: dict[str, Future[Any]]) -> None:
        def swap(_: Future[Any]) -> None:
            if not all(f.done() for f in renewing.values()):
                return
            with self._lock:
                if self._renewing is not renewing:
                    return
                self._renewing = None
                if all(f.exception() is None for f in renewing.values()):
                    self._futures = dict(renewing)
                    self._generation += 1
                self._started_at = self._clock()  # a failed renewal waits max_age too

        for f in renewing.values():
            f.add_done_callback(swap)

    # -- reading ---------------------------------------------------------------------
    def get(self, key: str) -> Any:
        """One look-up's value, waiting for it; raises its error (not cached)."""
        with self._lock:
            self._start_missing()
            f = self._futures[key]
        return self._wait(f)

    def resolved(self) -> Resolved:
        """Every id a create needs, waiting for the three look-ups side by side."""
        with self._lock:
            self._start_missing()
            futures = dict(self._futures)
            generation = self._generation
        values = {key: self._wait(futures[key]) for key in KEYS}
        net = values["network"]
        return Resolved(
            generation=generation,
            flavor=values["flavor"],
            image=values["image"],
            network_id=net["network_id"],
            network_name=net["network_name"],
        )

    def cached_network(self) -> Mapping[str, Any] | None:
        """The network look-up if it already succeeded (never waits, never calls)."""
        with self._lock:
            f = self._futures.get("network")
        if f is not None and f.done() and f.exception() is None:
            result: Mapping[str, Any] = f.result()
            return result
        return None

    def _wait(self, f: Future[Any]) -> Any:
        try:
            return f.result(timeout=self._timeout)
        except FutureTimeout:
            raise TimeoutError(f"look-up still running after {self._timeout:g} s") from None

    # -- refreshing ------------------------------------------------------------------
    def refresh(self, stale: Resolved) -> Resolved:
        """Drop the cache if it is still `stale`'s generation, and resolve again.

        Many creates refused for the same stale id call this at once: only the first
        drops the cache, the others wait for the same new look-ups.
        """
        with self._lock:
            if self._generation == stale.generation:
                self._generation += 1
                self._futures.clear()
                self._renewing = None
        return self.resolved()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
