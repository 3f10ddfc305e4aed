"""pipelines: the Beam catalog job (`python -m pipelines.separate_catalog`): options, stages, the
RunInference model handler, and the assembly in `pipelines.catalog`."""
