"""Watching the cluster: the status, health, running and metrics endpoints, the Prometheus exposition, and
the one module of read models (``selectors``) behind them and the console's dashboard."""
