"""The workloads of ``python -m bench``: each measures asched and its peers on the same work."""
