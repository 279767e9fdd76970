#!/usr/bin/env bash
# Fetches the Trino JDBC driver (one self-contained jar, Maven Central, cached) for tidelake's tests and
# prints the jar's absolute path on stdout (nothing else goes to stdout).
#
#   infra/trino-jdbc.sh     fetch the jar unless it is cached, print its path
#
# Used with tests/jdbc/JdbcClient.java:
#   java -cp "$(infra/trino-jdbc.sh)" tests/jdbc/JdbcClient.java jdbc:trino://127.0.0.1:PORT/tidelake/lake USER
#
# Environment:
#   TIDELAKE_CACHE  cache folder kept across runs (default: ~/.cache/tidelake); the jar goes to
#                   trino-jdbc-<version>/, Maven's local repository is m2/
set -euo pipefail

# 484 does not resolve from Maven Central (its parent imports a BOM that is not published); 480 does.
version=480
cache="${TIDELAKE_CACHE:-$HOME/.cache/tidelake}"
dir="$cache/trino-jdbc-$version"
jar="$dir/trino-jdbc-$version.jar"

log() { echo "trino-jdbc.sh: $*" >&2; }

fetch() {
  if [ -f "$dir/.complete" ] && [ -f "$jar" ]; then return; fi
  log "fetching io.trino:trino-jdbc:$version from Maven Central into $dir"
  mkdir -p "$dir"
  mvn -q -B -Dmaven.repo.local="$cache/m2" org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
    -Dartifact="io.trino:trino-jdbc:$version:jar" -DoutputDirectory="$dir" >&2
  if [ ! -f "$jar" ]; then log "Maven finished but $jar is missing"; exit 1; fi
  touch "$dir/.complete"
}

fetch
echo "$(cd "$dir" && pwd)/$(basename "$jar")"
