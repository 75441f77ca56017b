"""One unit per DAG stage: ingest, contracts (validate), training, promotion, scoring,
deployment and monitoring. They depend on the core and the adapters."""
