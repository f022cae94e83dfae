"""The fault suite (`make chaos`, tests/test_chaos.py): the real daemon, a real Prometheus,
real replica processes, one fault at a time, one table row per fault. Nothing imports it.
"""
