"""One real Nova + Keystone for the whole session, shared by every test module here."""

from tests.openstack.real_nova import real_openstack  # noqa: F401  (session fixture)
