"""Pure core: specs, the TLC format, features, the model wrapper, months, metrics and the typed
records the stages hand each other. No I/O; depends on nothing else in the package."""
