"""The planner's memory: clock conversion, the JSON store, its checks, and its wiring.

The regressions of issue #9 are in tests/test_regressions_memory.py and the restart
property in tests/test_core_properties_restart.py; this file covers the parts they rest on.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest

from autoscaler.config import Config, ConfigError, PrometheusConfig
from autoscaler.core.clock import FUTURE_TOLERANCE_SECONDS, Reading, to_monotonic, to_wall
from autoscaler.core.model import PlannerState
from autoscaler.core.spec import GroupConfig, ProviderConfig, ScalingBehavior
from autoscaler.providers.registry import load_config, parse_config
from autoscaler.runtime.state_store import (
    FILE_NAME,
    VERSION,
    InvalidMemory,
    JsonFileMemoryStore,
    decode,
    encode,
    open_store,
    state_dir,
)
from tests.fake_daemon import FakeClock, daemon, group

WALL = 1_700_000_000.0
HORIZON = 300.0


# --- core/clock.py ---------------------------------------------------------------------


def test_wall_and_monotonic_round_trip() -> None:
    at = Reading(monotonic=500.0, wall=WALL)
    assert to_wall(450.0, at) == WALL - 50
    assert to_monotonic(WALL - 50, at, HORIZON) == 450.0
    later = Reading(monotonic=20.0, wall=WALL + 30)  # another process, 30 s later
    assert to_monotonic(WALL - 50, later, HORIZON) == 20.0 - 80


def test_future_and_too_old_stamps_are_dropped() -> None:
    at = Reading(monotonic=500.0, wall=WALL)
    assert to_monotonic(WALL + 3600, at, HORIZON) is None  # the wall clock went back
    assert to_monotonic(WALL + FUTURE_TOLERANCE_SECONDS / 2, at, HORIZON) == 500.0  # "now"
    assert to_monotonic(WALL - HORIZON, at, HORIZON) is None  # can no longer matter
    assert to_monotonic(WALL - HORIZON + 1, at, HORIZON) == 500.0 - HORIZON + 1
    assert to_monotonic(WALL, at, 0.0) is None  # no window at all: nothing matters


# --- encode / decode ---------------------------------------------------------------------


def _state() -> PlannerState:
    return PlannerState(recommendations=((440.0, 3), (490.0, 5)), last_scale_up=470.0)


def test_encode_decode_moves_the_memory_onto_the_new_timeline() -> None:
    saved = encode(_state(), Reading(monotonic=500.0, wall=WALL))
    assert saved == {
        "saved_at": WALL,
        "recommendations": [[WALL - 60, 3], [WALL - 10, 5]],
        "last_scale_up": WALL - 30,
        "last_scale_down": None,
    }
    restored = decode(json.loads(json.dumps(saved)), Reading(7.0, WALL + 20), HORIZON)
    assert restored == PlannerState(
        recommendations=((7.0 - 80, 3), (7.0 - 30, 5)), last_scale_up=7.0 - 50
    )


def test_decode_drops_only_the_stamps_too_old_to_matter() -> None:
    saved = encode(_state(), Reading(monotonic=500.0, wall=WALL))
    restored = decode(saved, Reading(1000.0, WALL + 250), HORIZON)  # ages 310, 260, 280
    assert restored == PlannerState(recommendations=((740.0, 5),), last_scale_up=720.0)


def _entry(**kw: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "saved_at": WALL,
        "recommendations": [[WALL - 5, 2]],
        "last_scale_up": None,
        "last_scale_down": WALL - 1,
    }
    entry.update(kw)
    return entry


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("nonsense", "expected an object"),
        ({"saved_at": WALL}, "expected an object"),
        ({**_entry(), "extra": 1}, "expected an object"),
        (_entry(saved_at="yesterday"), "saved_at is not a finite number"),
        (_entry(saved_at=math.nan), "saved_at is not a finite number"),
        (_entry(saved_at=True), "saved_at is not a finite number"),
        (_entry(saved_at=-1.0), "negative"),
        (_entry(recommendations={"a": 1}), "not a list"),
        (_entry(recommendations=[[WALL, 2, 3]]), "not a [time, count] pair"),
        (_entry(recommendations=[[WALL, 2.5]]), "count is not an integer"),
        (_entry(recommendations=[[WALL, -1]]), "count is not an integer"),
        (_entry(recommendations=[[WALL, True]]), "count is not an integer"),
        (_entry(recommendations=[[math.inf, 2]]), "not a finite number"),
        (_entry(recommendations=[[WALL + 1, 2]]), "after the memory was saved"),
        (_entry(last_scale_up=WALL + 1), "after the memory was saved"),
        (_entry(last_scale_down="soon"), "not a finite number"),
    ],
)
def test_decode_refuses_what_it_cannot_trust(entry: Any, why: str) -> None:
    with pytest.raises(InvalidMemory, match=why.replace("[", r"\[")):
        decode(entry, Reading(100.0, WALL + 1), HORIZON)


def test_decode_refuses_stale_and_future_memory() -> None:
    with pytest.raises(InvalidMemory, match="stale"):
        decode(_entry(), Reading(100.0, WALL + HORIZON), HORIZON)
    with pytest.raises(InvalidMemory, match="the wall clock went back"):
        decode(_entry(), Reading(100.0, WALL - 400), HORIZON)


# --- the file store ------------------------------------------------------------------------


def _store(path: Path, clock: FakeClock, **kw: Any) -> JsonFileMemoryStore:
    return JsonFileMemoryStore(path, clock, {"g": HORIZON, "other": HORIZON}, **kw)


def test_file_store_round_trip_across_processes(tmp_path: Path) -> None:
    clock = FakeClock(wall=WALL, mono=500.0)
    _store(tmp_path, clock).save("g", _state())
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]  # no temporary file left
    doc = json.loads((tmp_path / FILE_NAME).read_text())
    assert doc["version"] == VERSION and set(doc["groups"]) == {"g"}
    clock.advance(20)
    new = clock.new_process()
    loaded = _store(tmp_path, new).load("g")
    shift = new.monotonic() - clock.monotonic()
    assert loaded == PlannerState(
        recommendations=((440.0 + shift, 3), (490.0 + shift, 5)), last_scale_up=470.0 + shift
    )
    assert _store(tmp_path, new).load("other") is None  # never saved


def test_a_save_keeps_the_groups_not_loaded_yet(tmp_path: Path) -> None:
    clock = FakeClock(wall=WALL, mono=500.0)
    first = _store(tmp_path, clock)
    first.save("g", _state())
    first.save("other", PlannerState(last_scale_down=480.0))
    second = _store(tmp_path, clock.new_process())
    second.save("g", PlannerState())  # "other" not loaded yet (its listing failed, say)
    assert second.load("other") is not None
    assert _store(tmp_path, clock.new_process()).load("other") is not None


def test_two_daemons_sharing_a_directory_keep_each_others_groups(tmp_path: Path) -> None:
    clock = FakeClock(wall=WALL, mono=500.0)
    mine = JsonFileMemoryStore(tmp_path, clock, {"g": HORIZON})
    theirs = JsonFileMemoryStore(tmp_path, clock, {"h": HORIZON})
    mine.save("g", _state())
    theirs.save("h", _state())
    mine.save("g", PlannerState(last_scale_down=499.0))
    doc = json.loads((tmp_path / FILE_NAME).read_text())
    assert set(doc["groups"]) == {"g", "h"}
    assert JsonFileMemoryStore(tmp_path, clock, {"h": HORIZON}).load("h") == _state()


def test_read_only_store_never_writes(tmp_path: Path) -> None:
    clock = FakeClock(wall=WALL, mono=500.0)
    store = _store(tmp_path, clock, read_only=True)
    store.save("g", _state())
    assert list(tmp_path.iterdir()) == []


def test_save_into_a_directory_that_cannot_be_made_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        _store(blocker / "state", FakeClock()).save("g", _state())


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "is not JSON"),
        (json.dumps({"version": 99, "groups": {}}), "has version 99"),
        (json.dumps([1, 2]), "has version None"),
        (json.dumps({"version": VERSION, "groups": []}), "has no groups object"),
        (json.dumps({"version": VERSION, "groups": {"g": {"saved_at": "x"}}}), "of group g"),
    ],
)
def test_corrupt_file_warns_once_and_starts_fresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str, why: str
) -> None:
    (tmp_path / FILE_NAME).write_text(content)
    store = _store(tmp_path, FakeClock())
    with caplog.at_level(logging.WARNING):
        assert store.load("g") is None
        assert store.load("other") is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and why in warnings[0], warnings
    store.save("g", _state())  # the bad file is replaced by a good one
    assert _store(tmp_path, FakeClock()).load("g") is not None


def test_binary_garbage_is_corrupt_too(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"\xff\xfe\x00garbage")
    with caplog.at_level(logging.WARNING):
        assert _store(tmp_path, FakeClock()).load("g") is None
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


# --- the daemon with its store ---------------------------------------------------------------


def test_corrupt_memory_still_seeds_the_cooldown_from_the_newest_replica(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / FILE_NAME).write_text("{corrupt")
    up = ScalingBehavior(cooldown_seconds=60)
    d = daemon(tmp_path, group(scale_up=up), 2)
    d.provider._add(d.clock.wall() - 10)  # created 10 s ago: a scale-up just happened
    with caplog.at_level(logging.WARNING):
        d.cycle(2.0)
    d.controller.close()
    decision = d.decisions[-1]
    assert decision.code == "cooldown" and d.count == 3
    assert decision.cooldown_remaining["up"] == pytest.approx(50)
    assert any("starting fresh" in r.getMessage() for r in caplog.records)


def test_memory_saved_before_the_wall_clock_went_back_is_ignored_but_seeded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    up = ScalingBehavior(cooldown_seconds=60)
    d = daemon(tmp_path, group(scale_up=up), 2)
    d.cycle(2.0)  # 2 -> 4, saved
    d.clock.advance(120)
    d.clock.jump_wall(-3600)
    with caplog.at_level(logging.WARNING):
        d.restart()
        d.cycle(2.0)
    d.controller.close()
    assert any("the wall clock went back" in r.getMessage() for r in caplog.records)
    # The replicas look created "in the future": the seed counts them as just created,
    # so the cooldown holds for its length once, never for the hour the clock went back.
    assert d.decisions[-1].code == "cooldown"
    assert d.decisions[-1].cooldown_remaining["up"] == pytest.approx(60)


def test_save_failure_is_logged_once_and_scaling_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    d = daemon(blocker / "state", group(), 2)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            d.cycle(2.0)
    d.controller.close()
    assert d.count > 2
    warnings = [r.getMessage() for r in caplog.records if "planner g memory save" in r.getMessage()]
    assert len(warnings) == 1, warnings
    failures = d.controller.metrics.registry.get_sample_value(
        "requests_failures_total", {"method": "save", "endpoint": "planner_memory"}
    )
    assert failures == 3


def test_dry_run_keeps_its_cooldowns(tmp_path: Path) -> None:
    """Dry run plans as if it had acted, cooldowns included (docs/decisions.md)."""
    up = ScalingBehavior(cooldown_seconds=60)
    d = daemon(tmp_path, group(scale_up=up, dry_run=True), 2)
    d.cycle(2.0)
    d.cycle(2.0)
    d.controller.close()
    assert [x.code for x in d.decisions] == ["target_above", "cooldown"]
    assert d.count == 2


def test_a_cooldown_starts_when_the_provider_answered(tmp_path: Path) -> None:
    up = ScalingBehavior(cooldown_seconds=60)
    d = daemon(tmp_path, group(scale_up=up), 2)
    d.provider.create_seconds = 25.0  # a slow cloud
    start = d.clock.monotonic()
    d.cycle(2.0)
    state = d.controller.groups["g"].state
    d.controller.close()
    assert state is not None and state.last_scale_up == start + 25


# --- configuration ---------------------------------------------------------------------------


def _raw(**top: Any) -> dict[str, Any]:
    return {
        "groups": {
            "web": {
                "provider": {"type": "local", "run_dir": "/srv/run"},
                "min": 1,
                "max": 5,
                "replica_capacity": 4,
                "policies": [{"type": "headroom", "min_available": 4}],
            }
        },
        **top,
    }


def test_state_dir_key_and_environment() -> None:
    assert parse_config(_raw(), {}).state_dir is None
    assert parse_config(_raw(state_dir="/var/lib/as"), {}).state_dir == "/var/lib/as"
    env = {"AUTOSCALER_STATE_DIR": "/tmp/x"}
    assert parse_config(_raw(state_dir="/var/lib/as"), env).state_dir == "/tmp/x"
    with pytest.raises(ConfigError, match="state_dir"):
        parse_config(_raw(state_dir=""), {})
    with pytest.raises(ConfigError, match="state_dir"):
        parse_config(_raw(state_dir=3), {})


def _config(*groups: GroupConfig, state_dir: str | None = None, base: Path | None) -> Config:
    return Config(prometheus=PrometheusConfig(), groups=groups, state_dir=state_dir, base_dir=base)


def test_state_dir_defaults_and_relative_paths(tmp_path: Path) -> None:
    local = group(name="a", provider=ProviderConfig("local", {"run_dir": "/srv/run"}))
    local_default = group(name="b", provider=ProviderConfig("local"))
    relative = group(name="d", provider=ProviderConfig("local", {"run_dir": "data/run"}))
    other = group(name="c", provider=ProviderConfig("openstack"))
    conf = tmp_path / "conf"  # the configuration file's directory
    assert state_dir(_config(other, local, local_default, base=conf)) == Path("/srv/run")
    assert state_dir(_config(local_default, base=conf)) == conf / "run"
    assert state_dir(_config(relative, base=conf)) == conf / "data" / "run"
    assert state_dir(_config(other, base=conf)) == conf / ".autoscaler-state"
    assert state_dir(_config(other, base=None)) == Path(".autoscaler-state")  # environment
    assert state_dir(_config(local, state_dir="mem", base=conf)) == conf / "mem"
    assert state_dir(_config(local, state_dir="/var/lib/as", base=conf)) == Path("/var/lib/as")


def test_state_dir_follows_the_local_providers_run_dir(tmp_path: Path) -> None:
    """The default memory lands where the local provider keeps its replicas' state."""
    (tmp_path / "autoscaler.yaml").write_text(
        "groups:\n  web:\n    provider: {type: local, run_dir: ./run}\n"
        "    min: 1\n    max: 2\n    replica_capacity: 1\n"
        "    policies: [{type: headroom, min_available: 1}]\n"
    )
    config = load_config(tmp_path / "autoscaler.yaml", {})
    assert state_dir(config) == tmp_path / "run"


def test_open_store_uses_each_groups_horizon(tmp_path: Path) -> None:
    g = group(scale_down=ScalingBehavior(stabilization_seconds=120, cooldown_seconds=30))
    store = open_store(_config(g, state_dir=str(tmp_path), base=None), FakeClock())
    assert store.horizons == {"g": 120}
    assert store.path == tmp_path / FILE_NAME
