"""What a user feels: requests beyond capacity wait in one FIFO queue and are served later.

A fluid model on the replay's ticks. In tick k (of `dt` seconds) requests arrive evenly at
`demand[k]` per second and the active replicas serve up to `capacity[k]` per second
(active x per_replica), oldest request first; what cannot be served waits for a later
tick. Every request's wait is exact under that model (arrivals and service are linear
within a tick), so the share of requests waiting longer than an SLO and the p99 wait are
exact too. Requests still queued when the trace ends are counted with the wait they had
by then (a lower bound).

Per-second traces carry Poisson noise: a second above capacity followed by a second
below it costs a user a short wait, not a failed request. Counting "under-provisioned
ticks" scores that noise; the delayed share does not.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_SLO_SECONDS = 1.0
_EPS = 1e-12


@dataclass(frozen=True)
class QueueStats:
    requests: float  # arrived over the trace
    delayed: float  # waited longer than the SLO
    p99_wait: float  # seconds
    mean_wait: float  # seconds
    max_backlog: float  # requests waiting at a tick's end, at most
    unserved: float  # still waiting when the trace ends

    @property
    def delayed_share(self) -> float:
        return self.delayed / self.requests if self.requests > 0 else 0.0


def _late(w0: float, w1: float, slo: float) -> float:
    """Share of a piece whose wait runs linearly from w0 to w1 that waits longer than slo."""
    if w0 > slo and w1 > slo:
        return 1.0
    if w0 <= slo and w1 <= slo:
        return 0.0
    cross = (slo - w0) / (w1 - w0)
    return 1.0 - cross if w1 > w0 else cross


def _quantile(pieces: list[tuple[float, float, float]], total: float, q: float) -> float:
    """The q-quantile of the wait; requests not in `pieces` waited 0."""
    tail = (1.0 - q) * total
    if tail <= 0 or sum(m for _, _, m in pieces) <= tail:
        return 0.0
    lo, hi = 0.0, max(max(w0, w1) for w0, w1, _ in pieces)
    for _ in range(48):  # bisection to well below a millisecond on any realistic trace
        mid = (lo + hi) / 2
        above = sum(m * _late(w0, w1, mid) for w0, w1, m in pieces)
        lo, hi = (mid, hi) if above > tail else (lo, mid)
    return hi


def fifo_queue(
    demand: Sequence[float], capacity: Sequence[float], dt: float, slo: float
) -> QueueStats:
    """Serve `demand` (requests/s per tick) with `capacity` (requests/s per tick), FIFO."""
    if not dt > 0:
        raise ValueError(f"tick must be > 0 seconds, got {dt}")
    if not slo >= 0:
        raise ValueError(f"SLO must be >= 0 seconds, got {slo}")
    queue: deque[list[float]] = deque()  # [arrived from, arrived until, requests], oldest first
    backlog = 0.0
    pieces: list[tuple[float, float, float]] = []  # (wait first, wait last, requests), waits > 0
    total = delayed = wait_sum = max_backlog = 0.0

    def served(w0: float, w1: float, m: float) -> None:
        nonlocal delayed, wait_sum
        if m <= _EPS or (w0 <= 0 and w1 <= 0):
            return
        pieces.append((w0, w1, m))
        delayed += m * _late(w0, w1, slo)
        wait_sum += m * (w0 + w1) / 2

    for k, (d, c) in enumerate(zip(demand, capacity, strict=True)):
        start = k * dt
        mu = max(0.0, c)
        budget = mu * dt
        clock = start
        # 1. the backlog, oldest first
        while queue and budget > _EPS:
            t0, t1, m = queue[0]
            take = min(m, budget)
            part = take / m
            until = t0 + part * (t1 - t0)
            done = clock + take / mu
            served(clock - t0, done - until, take)
            clock, budget, backlog = done, budget - take, backlog - take
            if take >= m - _EPS:
                queue.popleft()
            else:
                queue[0] = [until, t1, m - take]
        # 2. this tick's arrivals: position x arrives at start + x/alpha and, while the
        # server is busy, leaves at clock + x/mu
        alpha = max(0.0, d)
        arrived = alpha * dt
        total += arrived
        if arrived > _EPS:
            if queue or mu <= 0:
                take = 0.0
            else:
                waited = clock - start  # the new arrivals waited this long for the backlog
                take = min(arrived, budget)
                catch_up = 1 / alpha - 1 / mu  # > 0: the server gains on the arrivals
                if catch_up > 0 and waited < take * catch_up:
                    served(waited, 0.0, waited / catch_up)  # then served on arrival
                else:
                    served(waited, waited - take * catch_up, take)
            if arrived - take > _EPS:
                queue.append([start + take / alpha, start + dt, arrived - take])
                backlog += arrived - take
        max_backlog = max(max_backlog, backlog)

    end = len(demand) * dt
    for t0, t1, m in queue:  # never served: the wait they had by the end, at least
        served(end - t0, end - t1, m)
    return QueueStats(
        requests=total,
        delayed=delayed,
        p99_wait=_quantile(pieces, total, 0.99),
        mean_wait=wait_sum / total if total > 0 else 0.0,
        max_backlog=max(0.0, max_backlog),
        unserved=max(0.0, backlog),
    )
