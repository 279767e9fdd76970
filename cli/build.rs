//! With the `sql` feature and a prebuilt libduckdb (`DUCKDB_LIB_DIR`), the binary records that
//! folder as a library search path (rpath), so it runs without LD_LIBRARY_PATH.

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if std::env::var_os("CARGO_FEATURE_SQL").is_some() && std::env::var_os("CARGO_FEATURE_SQL_BUNDLED").is_none() {
        if let Some(dir) = std::env::var_os("DUCKDB_LIB_DIR") {
            println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{}", std::path::Path::new(&dir).display());
        }
    }
}
