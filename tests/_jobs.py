"""Jobs for process-pool tests, in a module light enough for spawned workers to import quickly."""

import os


def dies_on_b(args):
    """Kills its worker process for 'b' (like a segfaulting decoder); succeeds for anything else."""
    if args[0] == "b":
        os._exit(3)
    return args[0], None, 1, 0
