//! Nothing to build: the crate's build-dependencies are there for the features they turn on.
fn main() {}
