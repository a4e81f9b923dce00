"""``fathom serve``: launch SGLang servers (and SGLang's router in front of replicas), check on
them and stop them.

Nothing here imports the graph, the nodes or the store: serving only starts, watches and stops
processes, identified by PID *and* process start time in a JSON state file (never by name).
"""
