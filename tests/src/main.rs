//! The `tidelake` CLI, built as part of the end-to-end test package.

fn main() {
    tidelake::main()
}
