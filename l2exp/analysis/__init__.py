"""Reports and plots written to MLflow."""
