"""The SQL checkpointer: saver, row layout, codec, queries and maintenance."""
