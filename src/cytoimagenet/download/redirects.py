"""The opener every fetch uses: verified TLS and the redirect rules.

Redirects go to http(s) only, never from HTTPS to plain HTTP, and, for a plain-HTTP URL or a
mirror, only within the same host.
"""

from __future__ import annotations

import ssl
import urllib.request
from urllib.parse import urlsplit

from cytoimagenet.errors import DownloadError


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only, never HTTPS → HTTP, and optionally within one host."""

    def __init__(self, same_host: bool = False) -> None:
        super().__init__()
        self.same_host = same_host

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        """Return the follow-up request, refusing other schemes, downgrades and other hosts."""
        old, new = urlsplit(req.full_url), urlsplit(newurl)
        if new.scheme not in ("http", "https"):
            raise DownloadError(
                f"{req.full_url}: refused a redirect to {newurl} (only http(s) is fetched)"
            )
        if old.scheme == "https" and new.scheme != "https":
            raise DownloadError(f"{req.full_url}: refused a redirect from HTTPS to {newurl}")
        if self.same_host and (new.hostname or "").lower() != (old.hostname or "").lower():
            raise DownloadError(
                f"{req.full_url}: refused a redirect to another host ({newurl}); a plain-HTTP "
                "URL or a mirror is only followed within its own host. Point --mirror at the "
                "final location instead."
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def build_opener(*, same_host: bool = False) -> urllib.request.OpenerDirector:
    """Return the opener every fetch uses: verified TLS, the redirect rules of the module."""
    context = ssl.create_default_context()  # CERT_REQUIRED and host-name checks
    return urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context), _NoDowngrade(same_host)
    )
