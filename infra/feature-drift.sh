#!/usr/bin/env bash
# Lists the crates that the README's first command (`cargo run -p tidelake`) compiles with other
# features than its test command (`cargo test --workspace --features tidelake-tests/sql`): each
# one, and everything above it, would be compiled twice. Build scripts and proc-macros count apart
# (they get features of their own). Add what it prints to unify/Cargo.toml.
# Prints nothing and exits 0 when the two builds share one dependency tree.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tree() { cargo tree --quiet -f '{p} [{f}]' --prefix none "$@" | sed 's/ (\*)$//' | grep -v '^tidelake' | sort -u; }
drift="$(comm -23 <(tree -p tidelake -e normal,build) <(tree --workspace --features tidelake-tests/sql))"
if [ -n "$drift" ]; then
  echo "feature-drift.sh: the CLI alone compiles these with features the test build does not use:" >&2
  echo "$drift" >&2
  exit 1
fi
