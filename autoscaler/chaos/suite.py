"""The fault suite: one fault at a time against the real system, one table row per fault.

Each row: the group is steady (2 idle replicas: exactly `min_available`), the fault is
injected, held, ended; the suite polls /healthz and /status all along, waits for the
daemon to recover, then for the group to settle back, and judges from ground truth:

- wrongly removed: a delete the daemon asked for (the faulty provider's event log) of a
  replica the suite had not broken, that was busy, or whose removal left less true free
  capacity than `min_available` (the suite knows what every replica really reports);
- duplicates: replicas created beyond what the fault called for, and replica ids with
  more than one process;
- orphans: replica processes the provider has no record of, and records the daemon
  does not show, once settled;
- /healthz 503: seen during the row, and whether that is what the fault should cause
  (a dependency failing: yes; garbage values, which are data problems: no);
- time to recover: from the end of the fault until the daemon is healthy again with the
  right replicas (seconds, and cycles: heartbeats). It must take at most 2 cycles.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from autoscaler.chaos.provider import real_time
from autoscaler.chaos.world import (
    DOWN_COOLDOWN,
    DOWN_STABILIZATION,
    GROUP,
    INTERVAL,
    MIN_AVAILABLE,
    SLOTS,
    STEADY,
    World,
)

FAULT_SECONDS = 5.0  # longer than /healthz's 3 intervals: a failing dependency shows
MAX_RECOVERY_CYCLES = 2
POLL = 0.2


@dataclass
class Row:
    fault: str
    category: str
    did: str = ""
    wrongly_removed: int = 0
    duplicates: int = 0
    orphans: int = 0
    saw_503: bool = False
    expect_503: bool = False
    recover_seconds: float | None = None
    recover_cycles: float | None = None
    notes: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return (
            self.wrongly_removed == 0
            and self.duplicates == 0
            and self.orphans == 0
            and self.saw_503 == self.expect_503
            and self.recover_cycles is not None
            and self.recover_cycles <= MAX_RECOVERY_CYCLES
        )


class Measure:
    """Polls the daemon during one row; remembers what it saw."""

    def __init__(self, w: World, row: Row) -> None:
        self.w = w
        self.row = row
        self.events_from = len(w.events())
        self.codes: list[str] = []
        self.t_end = 0.0
        self.beats_end = 0.0
        self.why: str | None = None  # what kept the daemon from looking recovered

    def poll(self) -> None:
        try:
            if self.w.healthz() == 503:
                self.row.saw_503 = True
            d = self.w.group()["decision"]
        except (requests.RequestException, KeyError, ValueError):
            return  # the daemon is down or restarting (restart rows)
        if d and (not self.codes or self.codes[-1] != d["code"]):
            self.codes.append(d["code"])

    def hold(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll()
            time.sleep(POLL)

    def until(self, what: str, pred: Callable[[], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            try:
                if pred():
                    return True
            except (requests.RequestException, KeyError, ValueError):
                pass
            time.sleep(POLL)
        self.row.notes.append(f"timed out waiting for {what}")
        return False

    def end(self) -> None:
        """The fault is over (the daemon is up again, for the restart rows)."""
        self.t_end = time.monotonic()
        self.beats_end = _beats(self.w)

    def recovered(self, pred: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            beats = _beats(self.w)  # before the check: the cycle that satisfied it counts
            try:
                ok = pred()
            except (requests.RequestException, KeyError, ValueError):
                ok = False
            if ok:
                self.row.recover_seconds = time.monotonic() - self.t_end
                self.row.recover_cycles = max(0.0, beats - self.beats_end)
                if self.row.recover_cycles > MAX_RECOVERY_CYCLES:
                    self.row.notes.append(f"last seen: {self.why}")
                return
            try:
                self.why = unhealthy(self.w, 0, 99)
            except (requests.RequestException, KeyError, ValueError) as e:
                self.why = type(e).__name__
            time.sleep(POLL)
        self.row.notes.append("did not recover")


def _beats(w: World) -> float:
    try:
        return w.heartbeat()
    except requests.RequestException:
        return 0.0


def _number(v: object) -> bool:
    return isinstance(v, int | float) and 0 <= v <= SLOTS


def unhealthy(w: World, lo: int = STEADY, hi: int = STEADY) -> str | None:
    """Why the daemon is not yet healthy with lo..hi replicas, or None: /healthz 200,
    Prometheus fine, no failure shown, none failed, every replica past warm-up reporting
    a usable capacity."""
    if w.healthz() != 200:
        return "/healthz 503"
    st = w.status()
    g = st["groups"][GROUP]
    obs = g["observation"]
    if not st["prometheus_ok"] or st["errors"] or g["errors"] or not obs["prometheus_ok"]:
        return f"errors {st['errors'] or g['errors'] or 'prometheus'}"
    reps = [r for r in g["replicas"] if r["state"] != "deleting"]
    if any(r["state"] == "failed" for r in reps) or not lo <= len(reps) <= hi:
        return f"replicas {[r['state'] for r in reps]}"
    silent = [r["id"] for r in reps if not (r["in_warmup"] or _number(r["capacity"]))]
    return f"not reporting: {silent}" if silent else None


def healthy(w: World, lo: int = STEADY, hi: int = STEADY) -> bool:
    return unhealthy(w, lo, hi) is None


def settled(w: World) -> bool:
    if not healthy(w):
        return False
    reps = w.group()["replicas"]
    return all(r["state"] == "active" and _number(r["capacity"]) for r in reps)


def reset(w: World) -> None:
    assert w.proxy is not None
    w.proxy.set("pass")
    w.set_provider()
    w.set_clock_offset(0.0)
    w.report({})


# --------------------------------------------------------------------------- judging


def judge(w: World, m: Measure, max_creates: int) -> None:
    row = m.row
    events = w.events()[m.events_from :]
    created = [rid for e in events if e["op"] == "create" for rid in e["ids"]]
    removed: list[str] = []
    judged: set[str] = set()
    for e in events:
        if e["op"] != "delete_call":
            continue
        truth = w.truth_at(e["t"])
        for rid in e["ids"]:
            if rid in judged:
                continue  # a delete retried after a restart is judged once
            judged.add(rid)
            removed.append(rid)
            if rid in truth.victims:
                continue
            rest = [p for p in e["present"] if p not in e["ids"] and p not in truth.victims]
            if truth.free(rid) < SLOTS or sum(truth.free(p) for p in rest) < MIN_AVAILABLE:
                row.wrongly_removed += 1
                row.notes.append(f"removed {rid} while needed")
    procs = w.processes()
    row.duplicates = max(0, len(created) - max_creates)
    row.duplicates += sum(len(pids) - 1 for pids in procs.values())
    if len(created) > max_creates:
        row.notes.append(f"{len(created)} created, at most {max_creates} called for")
    records = set(w.records())
    try:
        shown = {r["id"] for r in w.group()["replicas"]}
    except (requests.RequestException, KeyError, ValueError):
        shown = set()
    orphans = (set(procs) - records) | (records - shown)
    row.orphans = len(orphans)
    if orphans:
        row.notes.append(f"orphans: {sorted(orphans)}")
    failed_calls = sum(1 for e in events if e["op"].endswith("_failed"))
    acted = f"+{len(created)} -{len(removed)}"
    if failed_calls:
        acted += f", {failed_calls} failed calls"
    codes = [c for c in m.codes if c != "in_band"]
    row.did = f"{' > '.join(dict.fromkeys(codes)) or 'held steady'}; {acted}"


@dataclass
class Scenario:
    fault: str
    category: str
    run: Callable[[World, Measure], None]
    expect_503: bool = False
    max_creates: int = 0
    quick: bool = False  # in the test suite's representative subset


def run_scenario(w: World, sc: Scenario) -> Row:
    row = Row(sc.fault, sc.category, expect_503=sc.expect_503)
    m = Measure(w, row)
    try:
        sc.run(w, m)
    finally:
        reset(w)
        if w.proc is None or w.proc.poll() is not None:
            w.start_daemon()
    m.until("the group to settle", lambda: settled(w), timeout=90)
    judge(w, m, sc.max_creates)
    return row


# --------------------------------------------------------------------------- helpers


def _ids(w: World) -> list[str]:
    reps = w.group()["replicas"]
    return sorted(r["id"] for r in reps if r["state"] != "deleting")


def _victim(w: World) -> str:
    """The oldest replica: past warm-up, so what it reports counts."""
    reps = [r for r in w.group()["replicas"] if r["state"] == "active"]
    return min(reps, key=lambda r: (r["in_warmup"], r["created_at"]))["id"]


def _past_warmup(w: World, m: Measure) -> None:
    """Wait until no replica is in warm-up: a warming replica counts fully free whatever
    it reports, so a row that makes every replica busy would see only some of them."""
    m.until("replicas past warm-up", lambda: not any(r["in_warmup"] for r in w.group()["replicas"]))


def _scraped(w: World, m: Measure, rid: str) -> None:
    """Wait until Prometheus holds a sample of `rid` taken after now that reports all its
    slots: a replica's fault is over for the daemon once its data source has seen that."""
    after = real_time()
    selector = f'replica_capacity{{group="{GROUP}",replica="{rid}"}}'

    def seen() -> bool:
        stamps = w.prometheus.query(f"timestamp({selector})")
        values = w.prometheus.query(selector)
        return (
            bool(stamps and values)
            and float(stamps[0]["value"][1]) > after
            and values[0]["value"][1] == str(SLOTS)
        )

    m.until(f"Prometheus scraping {rid} again", seen, timeout=30)


def _pid(w: World, rid: str) -> int:
    return w.processes()[rid][0]


def _wait_event(w: World, m: Measure, op: str, timeout: float = 30.0) -> bool:
    start = len(w.events())
    return m.until(op, lambda: any(e["op"] == op for e in w.events()[start:]), timeout)


# --------------------------------------------------------------------------- Prometheus


def prometheus(mode: str, label: str, expect_503: bool, quick: bool = False) -> Scenario:
    def run(w: World, m: Measure) -> None:
        assert w.proxy is not None
        w.proxy.set(mode)
        m.hold(FAULT_SECONDS)
        w.proxy.set("pass")
        m.end()
        m.recovered(lambda: healthy(w))

    return Scenario(f"Prometheus {label}", "prometheus", run, expect_503, quick=quick)


def prometheus_process_killed(w: World, m: Measure) -> None:
    """The real Prometheus SIGKILLed, then started again on its port and data directory.
    Over once Prometheus itself has fresh samples of every replica again (it rediscovers
    the targets first): the daemon cannot recover before its data source."""
    p = w.prometheus
    assert p.proc is not None
    p.proc.kill()
    p.proc.wait()
    m.hold(FAULT_SECONDS)
    p.log.close()
    p.start()
    fresh = f'time() - timestamp(replica_capacity{{group="{GROUP}"}}) < 2'
    m.until("Prometheus scraping again", lambda: len(p.query(fresh)) >= STEADY, timeout=60)
    m.end()
    m.recovered(lambda: healthy(w))


# --------------------------------------------------------------------------- provider


def provider_burst(mode: str, label: str, quick: bool = False) -> Scenario:
    """Every provider call fails while a replica dies and needs replacing."""

    def run(w: World, m: Measure) -> None:
        victim = _victim(w)
        w.set_provider(mode=mode, timeout_seconds=3.0)
        _kill(w, victim)
        m.hold(FAULT_SECONDS)
        w.set_provider()
        m.end()
        m.recovered(lambda: healthy(w) and victim not in _ids(w))

    return Scenario(f"provider {label}", "provider", run, True, max_creates=1, quick=quick)


def provider_quota(w: World, m: Measure) -> None:
    victim = _victim(w)
    w.set_provider(mode="quota")
    _kill(w, victim)
    m.hold(FAULT_SECONDS)
    w.set_provider()
    m.end()
    m.recovered(lambda: healthy(w) and victim not in _ids(w))


def provider_lost(w: World, m: Measure) -> None:
    """The create starts a replica, then its answer is lost: the next cycle lists it."""
    victim = _victim(w)
    w.set_provider(mode="lost")
    _kill(w, victim)
    _wait_event(w, m, "create")
    m.hold(3 * INTERVAL)  # cycles that could create again
    w.set_provider()
    m.end()
    m.recovered(lambda: healthy(w) and victim not in _ids(w))


def provider_gone(w: World, m: Measure) -> None:
    """A scale-in whose replica is already gone when the delete arrives."""
    _past_warmup(w, m)
    w.set_provider(mode="gone")
    busy = _victim(w)
    w.report({busy: 0}, frozenset())  # one busy replica: a third is created
    m.until("a third replica", lambda: len(_ids(w)) == STEADY + 1)
    w.report({})  # idle again: surplus, one replica goes (already gone at the provider)
    _wait_event(w, m, "deleted_out_of_band", timeout=40)
    w.set_provider()
    m.end()
    m.recovered(lambda: healthy(w))


# --------------------------------------------------------------------------- replicas


def _kill(w: World, rid: str) -> None:
    w.report(dict(w.control["replicas"]), frozenset({rid}))
    os.kill(_pid(w, rid), signal.SIGKILL)


def replica_killed(w: World, m: Measure) -> None:
    victim = _victim(w)
    _kill(w, victim)
    m.end()  # the fault is the kill itself: the daemon must replace it
    m.recovered(lambda: healthy(w) and victim not in _ids(w))


def replica_hung(w: World, m: Measure) -> None:
    """SIGSTOP: the provider still lists it; its metrics go missing, so it no longer counts
    as capacity (one replica is added), and it is never removed while it is missing."""
    victim = _victim(w)
    w.report({}, frozenset({victim}))
    os.kill(_pid(w, victim), signal.SIGSTOP)
    m.hold(FAULT_SECONDS + 3)  # past stale_after_seconds
    os.kill(_pid(w, victim), signal.SIGCONT)
    w.report({})
    _scraped(w, m, victim)
    m.end()
    m.recovered(lambda: healthy(w, STEADY, STEADY + 1) and victim in _ids(w))
    if victim not in _ids(w):
        m.row.notes.append("the hung replica was removed")


def replica_garbage(value: str, label: str) -> Callable[[World, Measure], None]:
    def run(w: World, m: Measure) -> None:
        victim = _victim(w)
        w.report({victim: value}, frozenset({victim}))
        m.hold(FAULT_SECONDS)
        w.report({})
        _scraped(w, m, victim)
        m.end()
        m.recovered(lambda: healthy(w, STEADY, STEADY + 1))

    run.__name__ = label
    return run


def replica_flapping(w: World, m: Measure) -> None:
    """One replica's free capacity flaps between 0 and all its slots every second."""
    victim = _victim(w)
    deadline = time.monotonic() + 2 * FAULT_SECONDS
    busy = False
    while time.monotonic() < deadline:
        busy = not busy
        w.report({victim: 0} if busy else {})
        m.hold(1.0)
    w.report({})
    _scraped(w, m, victim)
    m.end()
    m.recovered(lambda: healthy(w, STEADY, STEADY + 2))


# --------------------------------------------------------------------------- the daemon


def sigkill_mid_scale_out(w: World, m: Measure) -> None:
    """Both replicas busy: +2. SIGKILL once the replicas run but before the daemon heard."""
    _past_warmup(w, m)
    ids = _ids(w)
    w.set_provider(create_delay=30.0)
    w.report(dict.fromkeys(ids, 0))
    _wait_event(w, m, "create_waiting")
    w.signal_daemon(signal.SIGKILL)
    w.set_provider()
    w.start_daemon()
    m.end()
    m.recovered(lambda: healthy(w, STEADY + 2, STEADY + 2))
    m.hold(3 * INTERVAL)  # a restarted daemon that forgot would create again now
    # Restart again the moment the load goes: the scale-down window (4 wanted within the
    # last stabilization_seconds) must survive the restart and delay the first scale-in.
    w.signal_daemon(signal.SIGKILL)
    w.report({})
    killed = real_time()
    w.start_daemon()

    def deletes() -> list[float]:
        return [e["t"] for e in w.events() if e["op"] == "delete_call" and e["t"] > killed]

    if not m.until("a scale-in after the restart", lambda: bool(deletes()), timeout=40):
        return
    first = min(deletes())
    # The window ends stabilization_seconds after the last cycle before the kill.
    if first - killed < DOWN_STABILIZATION - INTERVAL - 0.3:
        m.row.wrongly_removed += 1
        m.row.notes.append(f"scale-in {first - killed:.1f}s after the restart: window lost")
    m.row.notes.append(f"first scale-in {first - killed:.1f}s after the restart")


def sigkill_mid_scale_in(w: World, m: Measure) -> None:
    """From 4 idle replicas: scale-in #1, SIGKILL after it, restart (the cooldown must still
    hold); scale-in #2 killed while in flight, restart: nothing removed twice or wrongly."""
    _past_warmup(w, m)
    ids = _ids(w)
    w.report(dict.fromkeys(ids, 0))
    m.until("four replicas", lambda: len(_ids(w)) == STEADY + 2)
    w.report({})
    _wait_event(w, m, "delete", timeout=40)
    m.hold(INTERVAL * 1.5)  # the cycle saved the memory with the accepted scale-in
    w.signal_daemon(signal.SIGKILL)
    w.set_provider(delete_delay=30.0)
    w.start_daemon()
    _wait_event(w, m, "delete_waiting", timeout=40)
    w.signal_daemon(signal.SIGKILL)
    w.set_provider()
    w.start_daemon()
    m.end()
    m.recovered(lambda: healthy(w))
    deletes = [e["t"] for e in w.events()[m.events_from :] if e["op"] == "delete_call"]
    gaps = [b - a for a, b in zip(deletes, deletes[1:], strict=False)]
    if any(g < DOWN_COOLDOWN - 0.5 for g in gaps):
        m.row.wrongly_removed += 1
        m.row.notes.append(f"scale-in cooldown not honoured after restart: gaps {gaps}")


def sigterm_mid_create(w: World, m: Measure) -> None:
    """SIGTERM while a create is in progress: the call finishes, the daemon exits 0."""
    victim = _victim(w)
    w.set_provider(create_delay=3.0)
    _kill(w, victim)
    _wait_event(w, m, "create_waiting")
    t = time.monotonic()
    code = w.signal_daemon(signal.SIGTERM)
    took = time.monotonic() - t
    answered = any(e["op"] == "create_answered" for e in w.events()[m.events_from :])
    if code != 0 or not answered:
        m.row.notes.append(f"exit code {code}, create answered: {answered}")
        m.row.orphans += 1  # a half-done action
    m.row.notes.append(f"exited {code} after {took:.1f}s")
    recs = w.records()
    if any(r.get("status") != "running" for r in recs.values() if r.get("pid") is None):
        m.row.notes.append("a record left half-written")
        m.row.orphans += 1
    w.set_provider()
    w.start_daemon()
    m.end()
    m.recovered(lambda: healthy(w) and victim not in _ids(w))


# --------------------------------------------------------------------------- clock


def clock_jump(offset: float, label: str) -> Callable[[World, Measure], None]:
    def run(w: World, m: Measure) -> None:
        w.set_clock_offset(offset)
        m.hold(2 * INTERVAL)
        victim = _victim(w)
        _kill(w, victim)  # a failed replica is replaced whatever the clock says
        m.until("the replacement", lambda: victim not in _ids(w) and len(_ids(w)) == STEADY)
        m.hold(FAULT_SECONDS)
        # The clock stays where it jumped: an NTP step is not undone. Recovered once the
        # group is healthy with the right replicas on the shifted clock.
        m.end()
        m.recovered(lambda: healthy(w))
        m.hold(3 * INTERVAL)  # still steady: no cooldown or window misread
        if len(_ids(w)) != STEADY:
            m.row.notes.append(f"{len(_ids(w))} replicas on the shifted clock")

    run.__name__ = label
    return run


# --------------------------------------------------------------------------- endpoints


def endpoints_hammered(w: World, m: Measure) -> None:
    """20 clients on /metrics, /status and /sd: the heartbeat keeps its pace."""
    stop = threading.Event()
    served = [0]

    def client(path: str) -> None:
        s = requests.Session()
        while not stop.is_set():
            try:
                s.get(w.url + path, timeout=5).content  # noqa: B018 - read it all
                served[0] += 1
            except requests.RequestException:
                pass
        s.close()

    paths = ["/metrics", "/status", "/sd?via=direct", "/sd"]
    threads = [threading.Thread(target=client, args=(paths[i % 4],)) for i in range(20)]
    b0, t0 = _beats(w), time.monotonic()
    for t in threads:
        t.start()
    m.hold(2 * FAULT_SECONDS)
    beats, took = _beats(w) - b0, time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join()
    m.end()
    m.recovered(lambda: healthy(w))
    m.row.notes.append(f"{served[0]} requests served, {beats:g} cycles in {took:.1f}s")
    if beats < 0.7 * took / INTERVAL:
        m.row.notes.append("the heartbeat fell behind")
        m.row.recover_cycles = None


# --------------------------------------------------------------------------- the suite


def scenarios() -> list[Scenario]:
    out = [
        prometheus("refuse", "killed (connections refused)", True, quick=True),
        Scenario(
            "Prometheus process SIGKILLed, restarted",
            "prometheus",
            prometheus_process_killed,
            True,
            quick=True,  # it once created a replica on the partial view while rescraping
        ),
        prometheus("slow", "slow (answers after the timeout)", True),
        prometheus("http500", "HTTP 500", True),
        prometheus("http503", "HTTP 503", True),
        prometheus("empty", "empty vector", False),
        prometheus("nan", "NaN values", False),
        prometheus("inf", "+Inf values", False),
        prometheus("string", "string values", True),
        prometheus("huge", "1e308 values", False, quick=True),
        prometheus("dup", "duplicated series (disagreeing)", False),
        prometheus("malformed", "malformed JSON", True),
        prometheus("truncated", "truncated JSON", True),
        provider_burst("5xx", "5xx burst (replica to replace)", quick=True),
        provider_burst("timeout", "timeouts (replica to replace)"),
        Scenario("provider quota exhausted", "provider", provider_quota, max_creates=1),
        Scenario(
            "provider create succeeds, answer lost",
            "provider",
            provider_lost,
            max_creates=1,
            quick=True,
        ),
        Scenario("provider delete of a gone replica", "provider", provider_gone, max_creates=1),
        Scenario("replica killed", "replicas", replica_killed, max_creates=1, quick=True),
        Scenario("replica hung (SIGSTOP)", "replicas", replica_hung, max_creates=1, quick=True),
        Scenario("replica reports NaN", "replicas", replica_garbage("NaN", "nan"), max_creates=1),
        Scenario(
            "replica reports 1e308", "replicas", replica_garbage("1e308", "huge"), max_creates=1
        ),
        Scenario("replica flapping 0/4", "replicas", replica_flapping, max_creates=2),
        Scenario(
            "autoscaler SIGKILL mid scale-out",
            "autoscaler",
            sigkill_mid_scale_out,
            max_creates=2,
            quick=True,
        ),
        Scenario(
            "autoscaler SIGKILL mid scale-in",
            "autoscaler",
            sigkill_mid_scale_in,
            max_creates=2,
            quick=False,
        ),
        Scenario(
            "autoscaler SIGTERM mid create",
            "autoscaler",
            sigterm_mid_create,
            max_creates=1,
            quick=True,
        ),
        Scenario(
            "wall clock +1 h", "clock", clock_jump(3600, "forward"), max_creates=1, quick=True
        ),
        Scenario("wall clock -1 h", "clock", clock_jump(-3600, "back"), max_creates=1),
        Scenario("20 clients on /metrics /status /sd", "endpoints", endpoints_hammered, quick=True),
    ]
    return out


def _fmt_seconds(row: Row) -> str:
    if row.recover_seconds is None or row.recover_cycles is None:
        return "never"
    return f"{row.recover_seconds:.1f} s ({row.recover_cycles:g} cycles)"


def table(rows: list[Row]) -> str:
    head = [
        "fault",
        "what the autoscaler did",
        "wrongly removed",
        "duplicates",
        "orphans",
        "/healthz 503 (expected?)",
        "time to recover",
        "ok",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        seen = "yes" if r.saw_503 else "no"
        expected = "as expected" if r.saw_503 == r.expect_503 else "NOT expected"
        cells = [
            r.fault,
            r.did,
            str(r.wrongly_removed),
            str(r.duplicates),
            str(r.orphans),
            f"{seen} ({expected})",
            _fmt_seconds(r),
            ("yes" if r.ok() else "NO") + "".join(f"; {n}" for n in r.notes),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(
    selected: list[Scenario], out: Callable[[str], None] = print, keep: bool = False
) -> list[Row]:
    w = World()
    rows: list[Row] = []
    try:
        w.start()
        m = Measure(w, Row("start", "setup"))
        if not m.until("the steady state", lambda: settled(w), timeout=90):
            raise RuntimeError("the group never reached its steady state:\n" + w.log_tail())
        for sc in selected:
            row = run_scenario(w, sc)
            rows.append(row)
            out(f"{'ok ' if row.ok() else 'BAD'} {row.fault}: {row.did} {'; '.join(row.notes)}")
            if not settled(w):
                out("the group did not settle after this row:\n" + w.log_tail())
                break
    finally:
        w.cleanup(keep)
        if keep:
            out(f"kept {w.dir} (autoscaler.log, events.jsonl)")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m autoscaler.chaos", description=__doc__)
    p.add_argument("--quick", action="store_true", help="the representative subset only")
    p.add_argument("--only", action="append", default=[], help="faults whose name has this")
    p.add_argument("--keep", action="store_true", help="keep the logs and the event log")
    args = p.parse_args(argv)
    selected = [s for s in scenarios() if s.quick or not args.quick]
    if args.only:
        selected = [s for s in selected if any(o in s.fault for o in args.only)]
    start = time.monotonic()
    rows = run(selected, lambda line: print(line, file=sys.stderr, flush=True), args.keep)
    print(table(rows))
    bad = [r for r in rows if not r.ok()]
    print(
        f"\n{len(rows)} faults, {len(bad)} failed, {time.monotonic() - start:.0f} s "
        f"(interval {INTERVAL:g} s)"
    )
    return 1 if bad or len(rows) < len(selected) else 0
