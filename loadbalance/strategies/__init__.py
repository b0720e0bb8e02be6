"""One module per load-balancing strategy; the registry lives in :mod:`loadbalance.selection`."""
