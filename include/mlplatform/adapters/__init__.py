"""Adapters: the lake and its layout, validated snapshots, the MLflow registry, alerts,
settings and cloud clients. They depend on the core only."""
