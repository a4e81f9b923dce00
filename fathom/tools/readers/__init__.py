"""Page readers for ``query_url``: site readers chosen by host, the page itself, a headless
browser and the Internet Archive as fallbacks (see :mod:`fathom.tools.readers.chain`)."""

from fathom.tools.readers.base import Reader, ReaderError
from fathom.tools.readers.chain import ReaderChain, ReadFailure, Reading

__all__ = ["ReadFailure", "Reader", "ReaderChain", "ReaderError", "Reading"]
