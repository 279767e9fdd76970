#!/usr/bin/env bash
# Prints the folder of a prebuilt libduckdb 1.5.6 for `tidelake sql` (the CLI's `sql` feature), fetching
# it on first use into the cache: the npm package @duckdb/node-bindings-linux-x64 ships DuckDB's
# release library (with Parquet) next to its Node binding. Build with DUCKDB_LIB_DIR set to the folder.
#
# Environment:
#   TIDELAKE_CACHE   cache folder kept across runs (default: ~/.cache/tidelake)
set -euo pipefail
package="@duckdb/node-bindings-linux-x64"
version="1.5.6-r.1"
cache="${TIDELAKE_CACHE:-$HOME/.cache/tidelake}"
dir="$cache/libduckdb-$version"
mkdir -p "$cache"
exec 9>"$cache/.libduckdb-$version.lock"
flock 9
if [ ! -f "$dir/.complete" ]; then
  case "$(uname -sm)" in
    "Linux x86_64") ;;
    *) echo "duckdb.sh: $package is for Linux x86_64; elsewhere build with --features sql-bundled" >&2; exit 1 ;;
  esac
  command -v npm >/dev/null || { echo "duckdb.sh: npm is needed to fetch $package" >&2; exit 1; }
  echo "duckdb.sh: fetching $package@$version from the npm registry into $dir" >&2
  rm -rf "$dir" "$dir.tmp"
  mkdir -p "$dir.tmp"
  (cd "$dir.tmp" && npm pack --silent "$package@$version" >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$dir"
  mv "$dir.tmp/package/libduckdb.so" "$dir.tmp/package/LICENSE" "$dir/"
  rm -rf "$dir.tmp"
  touch "$dir/.complete"
fi
echo "$dir"
