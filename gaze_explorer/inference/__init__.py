"""torch + transformers: model loading, family adapters, the registered attention function
(capture + steering), generation streams, discovery and trajectories."""
