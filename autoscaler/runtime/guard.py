"""The hook through which the controller asks whether it may act (HA: runtime/ha/leader.py).

Without one, the controller always acts (one instance, guarded by the state directory's
lock). With one, it decides every cycle but acts only while `term()` is not None, asks
`may_act()` right before every provider action (create, delete, reconcile; a count
provider's set-count goes through create/delete), and drops the planner memory it holds in
RAM whenever the term changes, so the store's (the leader's) is what it plans from.
"""

from __future__ import annotations

from typing import Any, Protocol

# Provider operations that change the world: fenced one by one.
ACTIONS = frozenset({"create", "delete", "reconcile"})


class ActGuard(Protocol):
    def term(self) -> int | None:
        """The current leadership term (changes with every new lease); None: not leading."""
        ...

    def may_act(self) -> bool:
        """Fencing, right before a provider action: False stops it."""
        ...

    def status(self) -> dict[str, Any]:
        """What /status shows under `ha`: who leads, who this instance is."""
        ...
