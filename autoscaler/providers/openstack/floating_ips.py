"""External addresses: keep every floating IP of the pool on a healthy replica.

The pool is every floating IP whose `description` equals the configured one (as in
SimpleScaleVM). Each cycle, before deletes, the controller says which replicas are
healthy (active, fresh metrics, not asking termination) and which are being removed.
An address on a replica that is removed, failed, or has stopped reporting moves to a
healthy replica that has none; a free address is attached to one. Addresses held by
servers outside the group are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Move:
    fip_id: str
    address: str
    from_server: str | None
    to_server: str
    to_port: str


def plan_moves(
    fips: Sequence[Mapping[str, Any]],
    port_owner: Mapping[str, str],
    server_ports: Mapping[str, str],
    members: frozenset[str],
    healthy: frozenset[str],
    removing: frozenset[str],
) -> list[Move]:
    """Pure: which floating IPs go where.

    fips: {id, floating_ip_address, port_id}; port_owner: port id -> server id;
    server_ports: server id -> its port on the replica network; members: the group's
    server ids. Addresses on the most urgent holders (removing) move first.
    """
    good = healthy - removing
    holder: dict[str, str | None] = {}
    for f in fips:
        port = f.get("port_id")
        holder[f["id"]] = port_owner.get(port, "?") if port else None
    holding = {h for h in holder.values() if h in good}
    movable = [
        f
        for f in fips
        if holder[f["id"]] is None or (holder[f["id"]] in members and holder[f["id"]] not in good)
    ]
    movable.sort(key=lambda f: (holder[f["id"]] not in removing, holder[f["id"]] is None, f["id"]))
    targets = sorted(s for s in good if s not in holding and s in server_ports)
    moves = []
    for f, target in zip(movable, targets, strict=False):
        moves.append(
            Move(
                f["id"],
                f.get("floating_ip_address", ""),
                holder[f["id"]],
                target,
                server_ports[target],
            )
        )
    return moves


def reconcile(
    conn: Any,
    *,
    description: str,
    external_network_id: str | None,
    replica_network_id: str,
    members: frozenset[str],
    healthy: frozenset[str],
    removing: frozenset[str],
    redact: Callable[[str], str],
) -> list[Move]:
    """Apply `plan_moves` through Neutron. Raises RuntimeError listing what failed."""
    query: dict[str, Any] = {"description": description}
    if external_network_id:
        query["floating_network_id"] = external_network_id
    # Filter client-side too: the description filter is an API extension.
    fips = [
        {"id": f.id, "floating_ip_address": f.floating_ip_address, "port_id": f.port_id}
        for f in conn.network.ips(**query)
        if f.description == description
    ]
    if not fips:
        return []
    port_owner: dict[str, str] = {}
    server_ports: dict[str, str] = {}
    for p in conn.network.ports(network_id=replica_network_id):
        if p.device_id:
            port_owner[p.id] = p.device_id
            server_ports.setdefault(p.device_id, p.id)
    for f in fips:  # ports of holders on other networks still name their server
        if f["port_id"] and f["port_id"] not in port_owner:
            port = conn.network.get_port(f["port_id"])
            port_owner[f["port_id"]] = port.device_id or "?"
    moves = plan_moves(fips, port_owner, server_ports, members, healthy, removing)
    errors = []
    for m in moves:
        try:
            # Neutron re-associates in one PUT; the old port loses the address.
            conn.network.update_ip(m.fip_id, port_id=m.to_port)
            log.info(
                "floating IP %s moved from %s to %s",
                m.address,
                m.from_server or "nobody",
                m.to_server,
            )
        except Exception as exc:  # noqa: BLE001 - one failed move must not stop the others
            errors.append(f"{m.address} -> {m.to_server}: {redact(_short(exc))}")
    if errors:
        raise RuntimeError("floating IP moves failed: " + "; ".join(errors))
    return moves


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
