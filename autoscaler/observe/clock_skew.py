"""How far this process's wall clock is from Prometheus's, read from the answers' `Date`.

Sample timestamps come from Prometheus's clock; staleness compares them with ours. With
our clock stepped ahead by more than `stale_after_seconds`, every sample looked stale (the
fault suite, row "wall clock +1 h": every replica "without data", and partial data may
scale up, so the group grew to max); stepped back, every sample looked fresh. `Date` has a
1 s resolution, so an offset within TOLERANCE_SECONDS counts as none: with clocks in step
nothing is measured differently than before.
"""

from __future__ import annotations

import logging
from email.utils import parsedate_to_datetime

log = logging.getLogger(__name__)

TOLERANCE_SECONDS = 2.0


class ClockSkew:
    """`seconds`: our wall clock minus Prometheus's (0 while within the tolerance)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def update(self, date: str | None, received_at: float | None) -> None:
        if not date or received_at is None:
            return
        try:
            theirs = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return  # not an HTTP date: keep what we had
        # `Date` is truncated to the second: the true offset is in (raw - 1, raw].
        raw = received_at - theirs - 0.5
        new = raw if abs(raw) > TOLERANCE_SECONDS else 0.0
        if abs(new - self.seconds) > TOLERANCE_SECONDS:
            log.warning(
                "this wall clock is %+.0fs from Prometheus's: sample ages are measured on "
                "Prometheus's clock",
                new,
            )
        self.seconds = new
