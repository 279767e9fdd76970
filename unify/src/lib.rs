//! No code: see this crate's `Cargo.toml`. Its dependencies are here for the features they turn on.
