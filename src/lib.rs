//! Examples and cluster-level tests for flock-actix live in `examples/` and `tests/`.
