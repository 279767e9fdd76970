//! With the `sql` feature, every binary of this package (the CLI under test, the test and bench
//! binaries) finds the prebuilt libduckdb in DUCKDB_LIB_DIR without LD_LIBRARY_PATH.

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if let (Some(_), Some(dir)) = (std::env::var_os("CARGO_FEATURE_SQL"), std::env::var_os("DUCKDB_LIB_DIR")) {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", std::path::Path::new(&dir).display());
    }
}
