//! The `tidelake` binary; everything lives in the library.

fn main() {
    tidelake::main()
}
