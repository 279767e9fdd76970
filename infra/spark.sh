#!/usr/bin/env bash
# Apache Spark with Delta Lake for tidelake's tests: Spark from PyPI (pyspark, in its own virtual
# environment), the Delta Lake jars from Maven Central; both cached. Nothing is resolved when Spark
# runs (no `spark.jars.packages`).
#
#   infra/spark.sh python   create the environment unless it is cached, print its Python's path
#   infra/spark.sh jars     fetch the jars unless they are cached, print them comma-separated (for `spark.jars`)
#
# Used with tests/spark_read.py:
#   "$(infra/spark.sh python)" tests/spark_read.py "$(infra/spark.sh jars)" LAKE_ROOT ad_events ad_events_minute
#
# Pairing: Delta 4.4.0 is built for Spark 4.2 (Scala 2.13), so the Python side is pyspark 4.2.0
# (infra/requirements-spark.txt); Spark 4 runs on Java 17 or 21. Only stdout's last line is the answer.
#
# Environment:
#   TIDELAKE_CACHE  cache folder kept across runs (default: ~/.cache/tidelake); the jars go to
#                   delta-spark-<version>/, Maven's local repository is m2/, the environment is
#                   venv-spark-<hash of the requirements>/
#   PYTHON          the interpreter to build the environment from (default: python3)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version=4.4.0
spark_line=4.2
scala=2.13
cache="${TIDELAKE_CACHE:-$HOME/.cache/tidelake}"
dir="$cache/delta-spark-$version"
# delta-spark and its runtime dependency delta-storage; everything else Delta needs for tables on local disk
# (Hadoop, Parquet, Jackson, Scala) is in pyspark's own jars folder. Tables on S3 would also need hadoop-aws
# (the Hadoop version of pyspark's jars) and the AWS SDK bundle.
artifacts=(
  "io.delta:delta-spark_${spark_line}_${scala}:$version"
  "io.delta:delta-storage:$version"
)

log() { echo "spark.sh: $*" >&2; }

jar_of() { # group:artifact:version -> file name
  local rest="${1#*:}"
  echo "${rest%%:*}-${rest#*:}.jar"
}

jars() {
  local artifact
  mkdir -p "$cache"
  # Tests may ask for the jars at the same time: one fetches them, the others wait.
  exec 9>"$cache/.delta-spark-$version.lock"
  flock 9
  if [ -f "$dir/.complete" ]; then
    for artifact in "${artifacts[@]}"; do
      if [ ! -f "$dir/$(jar_of "$artifact")" ]; then rm -f "$dir/.complete"; break; fi
    done
  fi
  if [ ! -f "$dir/.complete" ]; then
    log "fetching Delta Lake $version for Spark $spark_line from Maven Central into $dir"
    mkdir -p "$dir"
    for artifact in "${artifacts[@]}"; do
      mvn -q -B -Dmaven.repo.local="$cache/m2" org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
        -Dartifact="$artifact:jar" -DoutputDirectory="$dir" >&2
      if [ ! -f "$dir/$(jar_of "$artifact")" ]; then log "Maven finished but $(jar_of "$artifact") is missing"; exit 1; fi
    done
    touch "$dir/.complete"
  fi
  local abs list=""
  abs="$(cd "$dir" && pwd)"
  for artifact in "${artifacts[@]}"; do list="${list:+$list,}$abs/$(jar_of "$artifact")"; done
  echo "$list"
}

python_env() {
  local requirements="$here/requirements-spark.txt" key venv
  key="$(sha256sum "$requirements" | cut -c1-12)"
  venv="$cache/venv-spark-$key"
  mkdir -p "$cache"
  exec 8>"$cache/.venv-spark-$key.lock"
  flock 8
  if [ ! -f "$venv/.complete" ]; then
    log "creating $venv (pyspark is a large package: a minute or two)"
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    touch "$venv/.complete"
  fi
  echo "$venv/bin/python"
}

case "${1:-}" in
  jars) jars ;;
  python) python_env ;;
  *) echo "usage: infra/spark.sh python|jars" >&2; exit 2 ;;
esac
