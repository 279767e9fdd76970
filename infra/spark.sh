#!/usr/bin/env bash
# Fetches the Delta Lake jars for Apache Spark (Maven Central, cached) for tidelake's tests and prints them on
# stdout as one comma-separated list of absolute paths, ready for `spark.jars` (nothing else goes to stdout).
# Spark itself comes from PyPI (pyspark); no package is resolved at run time (no `spark.jars.packages`).
#
#   infra/spark.sh          fetch the jars unless they are cached, print the list
#
# Used with tests/spark_read.py:
#   python tests/spark_read.py "$(infra/spark.sh)" LAKE_ROOT ad_events ad_events_minute
#
# Pairing: Delta 4.4.0 is built for Spark 4.2 (Scala 2.13), so the Python side is pyspark==4.2.0 (with
# delta-spark==4.4.0 from PyPI); Spark 4.x runs on Java 17 or 21.
#
# Environment:
#   TIDELAKE_CACHE  cache folder kept across runs (default: ~/.cache/tidelake); the jars go to
#                   delta-spark-<version>/, Maven's local repository is m2/
set -euo pipefail

version=4.4.0
spark_line=4.2
scala=2.13
cache="${TIDELAKE_CACHE:-$HOME/.cache/tidelake}"
dir="$cache/delta-spark-$version"
# delta-spark and its runtime dependency delta-storage; everything else Delta needs for local and S3 tables
# (Hadoop, Parquet, Jackson, Scala) is in pyspark's own jars folder.
artifacts=(
  "io.delta:delta-spark_${spark_line}_${scala}:$version"
  "io.delta:delta-storage:$version"
)

log() { echo "spark.sh: $*" >&2; }

jar_of() { # group:artifact:version -> file name
  local rest="${1#*:}"
  echo "${rest%%:*}-${rest#*:}.jar"
}

fetch() {
  local artifact
  if [ -f "$dir/.complete" ]; then
    for artifact in "${artifacts[@]}"; do
      if [ ! -f "$dir/$(jar_of "$artifact")" ]; then rm -f "$dir/.complete"; break; fi
    done
  fi
  if [ -f "$dir/.complete" ]; then return; fi
  log "fetching Delta Lake $version for Spark $spark_line from Maven Central into $dir"
  mkdir -p "$dir"
  for artifact in "${artifacts[@]}"; do
    mvn -q -B -Dmaven.repo.local="$cache/m2" org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
      -Dartifact="$artifact:jar" -DoutputDirectory="$dir" >&2
    if [ ! -f "$dir/$(jar_of "$artifact")" ]; then log "Maven finished but $(jar_of "$artifact") is missing"; exit 1; fi
  done
  touch "$dir/.complete"
}

fetch
abs="$(cd "$dir" && pwd)"
list=""
for artifact in "${artifacts[@]}"; do list="${list:+$list,}$abs/$(jar_of "$artifact")"; done
echo "$list"
