"""The peers asched is measured against, each driven the same way by the workloads."""
