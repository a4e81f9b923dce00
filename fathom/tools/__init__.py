"""Research tools: web search backends, page fetching behind an SSRF guard, text extraction and
goal-conditioned evidence, tied together by :class:`fathom.tools.toolbox.Toolbox`.

Import from the submodules; this package imports nothing so that ``fathom.tools.base`` stays light.
"""
