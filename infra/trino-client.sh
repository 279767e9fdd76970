#!/usr/bin/env bash
# Fetches a Trino client's jar (one self-contained jar each, Maven Central, cached) for tidelake's tests
# and prints the jar's absolute path on stdout (nothing else goes to stdout).
#
#   infra/trino-client.sh jdbc   the Trino JDBC driver (what DBeaver, DataGrip and Metabase use)
#   infra/trino-client.sh cli    the Trino CLI's executable jar
#
# Used with tests/jdbc/JdbcClient.java and the CLI:
#   java -cp "$(infra/trino-client.sh jdbc)" tests/jdbc/JdbcClient.java jdbc:trino://127.0.0.1:PORT/tidelake/lake USER
#   java -jar "$(infra/trino-client.sh cli)" --server http://127.0.0.1:PORT --execute 'SHOW CATALOGS'
#
# Environment:
#   TIDELAKE_CACHE  cache folder kept across runs (default: ~/.cache/tidelake); each jar goes to
#                   trino-<client>-<version>/, Maven's local repository is m2/
set -euo pipefail

# JDBC 484 does not resolve from Maven Central (its parent imports a BOM that is not published); 480
# does. The CLI is the newest release that resolves; both run on Java 17.
case "${1:-}" in
  jdbc) artifact=trino-jdbc; version=480; classifier="" ;;
  cli) artifact=trino-cli; version=476; classifier=":executable" ;;
  *) echo "usage: infra/trino-client.sh jdbc|cli" >&2; exit 2 ;;
esac
cache="${TIDELAKE_CACHE:-$HOME/.cache/tidelake}"
dir="$cache/$artifact-$version"

log() { echo "trino-client.sh: $*" >&2; }

jar() { find "$dir" -maxdepth 1 -name "$artifact-$version*.jar" | head -1; }

if [ ! -f "$dir/.complete" ] || [ -z "$(jar)" ]; then
  log "fetching io.trino:$artifact:$version$classifier from Maven Central into $dir"
  mkdir -p "$dir"
  mvn -q -B -Dmaven.repo.local="$cache/m2" org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
    -Dartifact="io.trino:$artifact:$version:jar$classifier" -DoutputDirectory="$dir" >&2
  if [ -z "$(jar)" ]; then log "Maven finished but no $artifact jar is in $dir"; exit 1; fi
  touch "$dir/.complete"
fi
echo "$(cd "$dir" && pwd)/$(basename "$(jar)")"
