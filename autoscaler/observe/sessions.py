"""An HTTP session whose configured certificate checks are the ones applied."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from requests.sessions import _Settings


class PinnedSession(requests.Session):
    """A requests session that keeps its own `verify`.

    requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE in the environment replace a
    session's `verify` on every request that passes none (psf/requests#3829): a configured
    `ca_file` (or `insecure_skip_verify`) would be silently ignored wherever an image sets
    those variables, as many do. A session left at the default (True: the system's CAs)
    still follows them; proxies from the environment still apply.
    """

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> _Settings:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None and self.verify is not True:
            settings["verify"] = self.verify
        return settings
