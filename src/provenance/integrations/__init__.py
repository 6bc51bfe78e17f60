"""Orchestrator integrations: thin adapters over record's two seams.

Each orchestrator is one module (`kfp`, `airflow`) implementing a `RunContext` (the
orchestrator's run id is the pipeline run id) and a `LinkSink` (links kept where they outlive
the task), plus the glue its tasks call. Each module imports its orchestrator only when used;
this package imports nothing heavy.
"""
