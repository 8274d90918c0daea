"""Templates: the use cases of the source platforms as ready pipelines to start a project from."""
