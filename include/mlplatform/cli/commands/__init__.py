"""The ``mlplatform`` commands, one module per area; each has ``register(sub)``.

- :mod:`~mlplatform.cli.commands.data`: generate, ingest, validate, lake, contracts
- :mod:`~mlplatform.cli.commands.models`: spec, train, promote, rollback, score
- :mod:`~mlplatform.cli.commands.operations`: monitor, serve, config

``completion`` (shell completion) is generated from the whole parser in
:mod:`mlplatform.cli.completion`. ``run`` and ``stop`` drive the embedded platform and live
with it in :mod:`mlplatform.dev.commands`, which is not installed with the wheel.
"""
