"""A real Prometheus on a free loopback port (autoscaler/prometheus_process.py)."""

from autoscaler.prometheus_process import REPO, PrometheusServer, free_port, wait_http

__all__ = ["REPO", "PrometheusServer", "free_port", "wait_http"]
