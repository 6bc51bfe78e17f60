"""The MLflow promotion gate. mlflow is imported lazily, only by the functions that need it."""
