"""The ``fathom`` command line: parse arguments and print, nothing else."""
