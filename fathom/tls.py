"""One verifying TLS context per process, shared by every HTTP client Fathom builds.

Building a context loads the whole CA bundle (about 0.1 s of CPU). httpx builds one per client,
even for plain-HTTP loopback servers, and a research run holds half a dozen clients (model,
judge, search, page reader...): 0.6 s of every run went there. A context is safe to share between
clients and connections. Imports nothing from Fathom, so every layer may use it.
"""

from __future__ import annotations

import functools
import ssl

__all__ = ["openai_ssl_context", "ssl_context"]


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """The context httpx would build by default (certifi's CA bundle, or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR`` when set), built once."""
    import httpx

    return httpx.create_ssl_context()


@functools.cache
def openai_ssl_context() -> ssl.SSLContext:
    """The context the OpenAI SDK's HTTP client would build by default, built once."""
    import httpx2

    return httpx2.create_ssl_context()
