"""OpenStack provider tests: an HTTP emulator, a real Nova + Keystone harness, a contract suite."""
