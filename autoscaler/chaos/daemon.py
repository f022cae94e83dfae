"""`python -m autoscaler.chaos.daemon run --config F`: the real `autoscaler run`, plus the
suite's two hooks, read from the control file named by $AUTOSCALER_CHAOS_CONTROL:

- the provider type `chaos` (autoscaler/chaos/provider.py: local processes behind a
  fault-injecting wrapper), registered the way a plugin would be;
- the process's wall clock, `time.time`, shifted by `clock_offset` seconds: an NTP step
  or an operator setting the clock. Monotonic time does not move, exactly as with
  `FakeClock.jump_wall` in tests/fake_daemon.py, but here for the whole real process
  (its provider's stamps and its logs too).
"""

from __future__ import annotations

import os
import sys
import time

from autoscaler.chaos.control import ENV, Reader


def shift_wall_clock(reader: Reader) -> None:
    real = time.time

    def shifted() -> float:
        return real() + float(reader.get().get("clock_offset", 0.0))

    time.time = shifted


def main() -> int:
    reader = Reader(os.environ[ENV])
    shift_wall_clock(reader)  # before anything reads it
    from autoscaler.cli import main as cli_main
    from autoscaler.providers import registry

    registry.register("chaos", "autoscaler.chaos.provider")
    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
