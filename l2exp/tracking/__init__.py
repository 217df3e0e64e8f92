"""Everything MLflow: tracking store, runs, dataset lineage, model registry and promotion."""
