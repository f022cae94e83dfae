"""A daemon on a hand-moved clock: the real Controller, a stand-in reader, an in-memory
provider whose replicas outlive any one Controller (as a cloud's do), and restarts.

Shared by the planner-memory regressions and the restart property test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from autoscaler.config import Config, PrometheusConfig
from autoscaler.core.model import Decision, Observation, Replica, ReplicaMetrics, ReplicaState
from autoscaler.core.spec import GroupConfig, ProviderConfig, TargetPolicyConfig
from autoscaler.providers.base import ActionResult, ReplicaProvider
from autoscaler.runtime.controller import Controller
from autoscaler.runtime.exporter import SharedState
from autoscaler.runtime.metrics import Metrics
from autoscaler.runtime.state_store import open_store

INTERVAL = 10.0


class FakeClock:
    """Wall and monotonic time, moved by hand (the Clock protocol of autoscaler/core/clock.py).

    Called, it answers the wall time: what the controller's clock was before issue #9.
    """

    def __init__(self, wall: float = 1_700_000_000.0, mono: float = 5_000.0) -> None:
        self.wall_time = wall
        self.mono_time = mono

    def __call__(self) -> float:
        return self.wall_time

    def wall(self) -> float:
        return self.wall_time

    def monotonic(self) -> float:
        return self.mono_time

    def advance(self, seconds: float) -> None:
        self.wall_time += seconds
        self.mono_time += seconds

    def jump_wall(self, seconds: float) -> None:
        """The wall clock is set (NTP step, operator): monotonic time does not move."""
        self.wall_time += seconds

    def new_process(self) -> FakeClock:
        """Same wall time, another monotonic origin: what a restarted daemon sees."""
        return FakeClock(self.wall_time, float(int(self.mono_time) // 3 + 123))


class SignalReader:
    """Answers the group's target signal `load` and, with `free` set, every replica's free
    capacity (a headroom group); no replica metrics otherwise (a target-only group)."""

    queries_last_cycle = 0
    invalid_last_cycle: list[object] = []

    def __init__(self, value: float, free: float | None = None) -> None:
        self.value = value
        self.free = free

    def observe(
        self,
        groups: Sequence[GroupConfig],
        replicas: Mapping[str, Sequence[Replica]],
        now: float,
        stop: object = None,
    ) -> dict[str, Observation]:
        return {
            g.name: Observation(
                g.name,
                now,
                tuple(replicas[g.name]),
                {}
                if self.free is None
                else {r.id: ReplicaMetrics(capacity=self.free) for r in replicas[g.name]},
                {"load": self.value},
            )
            for g in groups
            if g.name in replicas
        }


class MemoryProvider(ReplicaProvider):
    """Replicas in a dict that outlives any one Controller; failures on demand."""

    kind = "memory"

    def __init__(self, clock: FakeClock, count: int = 0) -> None:
        self.clock = clock
        self.replicas: dict[str, Replica] = {}
        self.n = 0
        self.create_mode = "ok"  # ok | raise | quota | failed
        self.delete_mode = "ok"  # ok | raise
        self.create_seconds = 0.0  # how long a create takes, on the fake clock
        for _ in range(count):
            self._add(clock.wall() - 3600)

    def _add(self, created_at: float) -> str:
        self.n += 1
        rid = f"g-{self.n}"
        self.replicas[rid] = Replica(rid, "g", ReplicaState.ACTIVE, created_at)
        return rid

    def list(self) -> list[Replica]:
        return list(self.replicas.values())

    def create(self, count: int) -> ActionResult:
        self.clock.advance(self.create_seconds)
        if self.create_mode == "raise":
            raise RuntimeError("cloud API unreachable")
        res = ActionResult()
        if self.create_mode == "quota":
            res.quota_exceeded = "instances"
        elif self.create_mode == "failed":
            res.failed = [("", "no valid host found")] * count
        else:
            res.succeeded = [self._add(self.clock.wall()) for _ in range(count)]
        return res

    def delete(self, replica_ids: Sequence[str]) -> ActionResult:
        if self.delete_mode == "raise":
            raise RuntimeError("cloud API unreachable")
        res = ActionResult()
        for rid in replica_ids:
            if self.replicas.pop(rid, None) is not None:
                res.succeeded.append(rid)
        return res

    def close(self) -> None:
        pass  # a provider's close never stops replicas


def group(**kw: object) -> GroupConfig:
    base: dict[str, object] = dict(
        name="g",
        provider=ProviderConfig("memory"),
        min=1,
        max=10,
        replica_capacity=4.0,
        policies=(TargetPolicyConfig("load", "load_query", target=1.0),),
        warmup_seconds=0.0,
        expect_capacity=False,  # the fake replicas export no capacity gauge
    )
    base.update(kw)
    return GroupConfig(**base)  # type: ignore[arg-type]


def config(spec: GroupConfig, state_dir: Path, interval: float = INTERVAL) -> Config:
    return Config(
        prometheus=PrometheusConfig(),
        groups=(spec,),
        interval_seconds=interval,
        state_dir=str(state_dir),
    )


class Daemon:
    """One autoscaler process after another, on the same provider and state directory."""

    def __init__(
        self,
        config: Config,
        provider: MemoryProvider,
        clock: FakeClock,
        reader: SignalReader | None = None,
    ) -> None:
        self.config = config
        self.provider = provider
        self.clock = clock
        self.reader = reader or SignalReader(1.0)
        self.decisions: list[Decision] = []
        self.controller = self._start()

    def _start(self) -> Controller:
        return Controller(
            self.config,
            {"g": self.provider},
            Metrics(),
            SharedState(self.config.interval_seconds),
            reader=self.reader,  # type: ignore[arg-type]
            clock=self.clock,
            memory=open_store(self.config, self.clock),  # the daemon's own store, on disk
        )

    def restart(self) -> None:
        self.controller.close()
        self.clock = self.provider.clock = self.clock.new_process()
        self.controller = self._start()

    def cycle(self, signal: float) -> None:
        self.reader.value = signal
        self.controller.cycle()
        decision = self.controller.groups["g"].decision
        assert decision is not None
        self.decisions.append(decision)
        self.clock.advance(self.config.interval_seconds)

    @property
    def count(self) -> int:
        return len(self.provider.replicas)


def daemon(state_dir: Path, spec: GroupConfig, count: int, interval: float = INTERVAL) -> Daemon:
    """A daemon on group `spec`, starting with `count` replicas created an hour ago."""
    clock = FakeClock()
    return Daemon(config(spec, state_dir, interval), MemoryProvider(clock, count), clock)
