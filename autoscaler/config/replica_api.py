"""How replicas serve their JSON status (SimpleScaleVM's REPLICA_API_*), and the URL to read.

Shared by the configuration checks, the daemon's `/sd?via=bridge` targets and the bridge.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autoscaler.core.model import Replica
    from autoscaler.core.spec import GroupConfig

REPLICA_API_KEYS = ("protocol", "port", "path", "capacity_key", "termination_key")


@dataclass(frozen=True)
class ReplicaApi:
    """Where and how a replica serves its JSON status (SimpleScaleVM's REPLICA_API_*)."""

    protocol: str = "http"
    port: int = 8080
    path: str = "/"
    capacity_key: str = "capacity"
    termination_key: str = "termination"

    def __post_init__(self) -> None:
        if self.protocol not in ("http", "https"):
            raise ValueError(f"REPLICA_API_PROTOCOL must be http or https, not {self.protocol!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"REPLICA_API_PORT must be 1-65535, not {self.port}")
        if not self.path.startswith("/"):
            raise ValueError(f"REPLICA_API_PATH must start with '/', not {self.path!r}")

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> ReplicaApi:
        """From a config mapping (keys protocol, port, path, capacity_key, termination_key),
        falling back to the REPLICA_API_* variables of `env`, then to SimpleScaleVM's defaults.
        """
        env = os.environ if env is None else env
        unknown = set(values) - set(REPLICA_API_KEYS)
        if unknown:
            raise ValueError(f"unknown replica_api keys: {', '.join(sorted(unknown))}")
        d = cls()

        def pick(key: str, default: Any) -> Any:
            if key in values:
                return values[key]
            return env.get(f"REPLICA_API_{key.upper()}", default)

        port = pick("port", d.port)
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise ValueError(f"REPLICA_API_PORT must be an integer, not {port!r}") from None
        return cls(
            protocol=str(pick("protocol", d.protocol)).lower(),
            port=port,
            path=str(pick("path", d.path)),
            capacity_key=str(pick("capacity_key", d.capacity_key)),
            termination_key=str(pick("termination_key", d.termination_key)),
        )


def replica_url(address: str, api: ReplicaApi) -> str:
    """The URL of a replica's JSON status: `{protocol}://{host}:{port}{path}` as SimpleScaleVM
    builds it. A port already in `address` ("10.0.0.5:9000", "[fe80::1]:9000") is kept;
    a bare host gets `api.port`.
    """
    host = address.strip()
    if not host:
        raise ValueError("empty replica address")
    if host.startswith("["):  # [v6] or [v6]:port
        end = host.find("]")
        if end < 0:
            raise ValueError(f"bad address {address!r}")
        hostport = host if host[end + 1 :].startswith(":") else f"{host[: end + 1]}:{api.port}"
    elif host.count(":") > 1:  # bare IPv6
        hostport = f"[{host}]:{api.port}"
    elif ":" in host:
        hostport = host
    else:
        hostport = f"{host}:{api.port}"
    return f"{api.protocol}://{hostport}{api.path}"


def sd_target(replica: Replica, group: GroupConfig) -> str:
    """The `/sd?via=bridge` target of one replica: its JSON status URL.

    Built from the group's `replica_api` mapping when the configuration has one, else
    from the autoscaler's REPLICA_API_* variables, else SimpleScaleVM's defaults.
    """
    if not replica.address:
        raise ValueError(f"replica {replica.id} has no address")
    api = ReplicaApi.from_mapping(group.replica_api)
    return replica_url(replica.address, api)


# The keys a group may give the bridge per probe (bridge/server.py honours them).
PROBE_PARAMS = ("capacity_key", "termination_key")


def bridge_params(group: GroupConfig) -> dict[str, str]:
    """The http_sd labels that make Prometheus call the bridge's `/probe` with the group's
    own JSON keys: `__param_capacity_key`, `__param_termination_key` (Prometheus turns
    `__param_<name>` target labels into URL parameters, as for blackbox_exporter modules).
    A key set to "" (do not read) becomes `__param_skip`: Prometheus drops empty labels.

    Only the keys the group's `replica_api` sets: otherwise the bridge keeps its own
    (command line, REPLICA_API_* of its environment, a nested `--capacity-path`)."""
    params: dict[str, str] = {}
    skip = []
    for key in PROBE_PARAMS:
        if key not in group.replica_api:
            continue
        value = str(group.replica_api[key])
        if value:
            params[f"__param_{key}"] = value
        else:
            skip.append(key.removesuffix("_key"))
    if skip:
        params["__param_skip"] = ",".join(skip)
    return params
