"""The library: data, networks, DSA, the training engine, evaluation, sets, caches, settings, seeds."""
