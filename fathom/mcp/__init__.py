"""Fathom as an MCP server (``fathom mcp``): research, resume and read runs from any MCP client.

The server is in :mod:`fathom.mcp.server`; it imports the MCP SDK, so only ``fathom mcp`` loads it.
"""
