"""Replica ages that a wall-clock step cannot move.

A provider stamps `created_at` with a wall clock, and warm-up compares it with the
observation's wall time: set the clock back 1 h and every replica is "created in the
future", in warm-up for an hour, counted at full free capacity, so nothing scales up.
So the controller reads a replica's wall-clock age once, the first time it lists it
(clamped to >= 0: a stamp in the future means the clock went back, and the replica is
taken as new, never as warming up forever), and from then on ages it on the monotonic
clock. Before the observation is built, `created_at` is rewritten onto this process's
consistent timeline (`wall now - age`), so the core stays pure and unchanged.

A provider makes new strings (id, address, name) and a new metadata dict for every
replica of every listing. Where they equal the previous listing's, the rebased replica
takes the previous ones, so the new listing's copies are freed at once and two
consecutive listings (the last cycle's, still shown by /status, and this one's) share
them: at 100,000 replicas, about 19 MB less at the cycle's peak.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable

from autoscaler.core.clock import Reading
from autoscaler.core.model import Replica


class ReplicaAges:
    """Per replica id: (monotonic time first seen, age then). One per group.

    The pair is kept as one complex number (real: the monotonic time, imaginary: the
    age), both floats exactly: one object per replica instead of a tuple and a float.
    """

    def __init__(self) -> None:
        self._seen: dict[str, complex] = {}
        self._last: list[Replica] = []  # the previous rebased listing (shared, not copied)
        self._lock = threading.Lock()  # the cycle and an acting thread both list

    def age(self, replica: Replica, at: Reading) -> float:
        with self._lock:
            first = self._seen.get(replica.id)
            if first is None:
                first = complex(at.monotonic, max(0.0, at.wall - replica.created_at))
                self._seen[replica.id] = first
        return first.imag + max(0.0, at.monotonic - first.real)

    def rebase(self, replicas: Iterable[Replica], at: Reading) -> list[Replica]:
        """A full listing with each `created_at` on the timeline of `at.wall`; replicas no
        longer listed are forgotten (an id reused later is a new replica)."""
        out: list[Replica] = []
        listed: set[str] = set()
        wall, mono = at.wall, at.monotonic
        with self._lock:  # once for the listing, not once per replica (100,000 of them)
            seen, last = self._seen, self._last
            by_id: dict[str, Replica] | None = None  # built only if the order changed
            n_last = len(last)
            for i, r in enumerate(replicas):
                rid = r.id
                first = seen.get(rid)
                if first is None:
                    first = seen[rid] = complex(mono, max(0.0, wall - r.created_at))
                created = wall - (first.imag + max(0.0, mono - first.real))  # wall - age()
                # The constructor is twice as fast as dataclasses.replace.
                if type(r) is Replica:
                    # The previous listing's replica of this id, usually at the same place.
                    prev = last[i] if i < n_last else None
                    if prev is None or prev.id != rid:
                        if by_id is None:
                            by_id = {p.id: p for p in last}
                        prev = by_id.get(rid)
                    if prev is None:
                        r = Replica(rid, r.group, r.state, created, r.address, r.name, r.metadata)
                    else:  # each field: the previous object when of the same type and equal
                        g, a, n, m = r.group, r.address, r.name, r.metadata
                        pg, pa, pn, pm = prev.group, prev.address, prev.name, prev.metadata
                        pi = prev.id  # equal: found by it
                        r = Replica(
                            pi if type(pi) is type(rid) else rid,
                            pg if pg == g and type(pg) is type(g) else g,
                            r.state,
                            created,
                            pa if pa == a and type(pa) is type(a) else a,
                            pn if pn == n and type(pn) is type(n) else n,
                            pm if pm == m and type(pm) is type(m) else m,
                        )
                else:
                    r = dataclasses.replace(r, created_at=created)
                out.append(r)
                listed.add(rid)
            if len(seen) != len(listed):  # every listed id is in `seen`: equal, nothing gone
                for rid in [rid for rid in seen if rid not in listed]:
                    del seen[rid]
            self._last = out
        return out
