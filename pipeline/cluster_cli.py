"""Cluster subcommands (submit, schedule, runs, compare) over kfp.Client. Being written."""


def add_cluster_commands(sub) -> None:
    """Register the cluster subcommands on the `python -m pipeline` parser."""
