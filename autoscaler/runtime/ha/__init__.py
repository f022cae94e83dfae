"""High availability on etcd: one leader among several instances on one configuration.

`etcd.py` is the few etcd v3 calls we need (over the JSON gateway, every call with a
timeout, endpoints tried in turn), `leader.py` campaigns and fences, `memory.py` keeps the
planner's memory in etcd so a failover keeps cooldowns and stabilization. See docs/ha.md.
"""
