"""Reads tidelake's Delta tables with Apache Spark (pyspark + the Delta Lake jars) and prints what it saw.

Usage: python spark_read.py JARS LAKE_ROOT TABLE [TABLE ...] [--stream-wait N]

  JARS         comma-separated jar paths for `spark.jars` (the output of `infra/spark.sh jars`); nothing is
               resolved at run time
  LAKE_ROOT    the lake's root folder (`[lake] root` of tidelake.toml)
  TABLE        a table's folder under LAKE_ROOT, e.g. ad_events, ad_events_minute, _dead_letters/ad_events
  --stream-wait N
               after the first streaming run over the first TABLE, wait up to N seconds for a newer Delta
               version of it and run the same stream again from the same checkpoint

Prints exactly one JSON object on stdout (Spark's own output goes to stderr):

  {"spark_version": "...",
   "tables": {TABLE: {"rows": n, "columns": [...], "sum_cost": "decimal as text" or null, "version": v}
                     or {"error": "..."}, ...},
   "version_1_rows": rows of the first TABLE at version 1 (versionAsOf; version 0 creates the table
                     empty), or {"error": "..."},
   "stream": {"initial": rows, "new": rows or null, "versions": [before, after]} or {"error": "..."}}

"versions" are the table's latest Delta version before the first streaming run and the newer one waited
for; "new" counts the rows the second run saw (commits without data change, like OPTIMIZE, add none).
With --stream-wait, this line goes to stderr once the first run is done, so a test commits after it:
  spark_read.py: stream: first run saw N rows up to version V; waiting up to S s for a newer version

A part that fails reports {"error": "..."} and the others still run, so a test can tell which part failed.
A folder without any Delta commit gives {"error": "no Delta table ..."}. Exit status: 0 once the JSON is
printed, 2 on bad arguments or when no Spark session could be started (the JSON then has "error").
Needs Java 17 or 21 (JAVA_HOME or `java` on PATH) and pyspark==4.2.0 for the Delta 4.4.0 jars.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import time

COMMIT_FILE = re.compile(r"^(\d{20})\.json$")
CHECKPOINT_FILE = re.compile(r"^(\d{20})\.checkpoint(\.\d+\.\d+)?\.parquet$")


def usage(message):
    sys.stderr.write(f"spark_read.py: {message}\n")
    sys.stderr.write("usage: python spark_read.py JARS LAKE_ROOT TABLE [TABLE ...] [--stream-wait N]\n")
    sys.exit(2)


def parse_args(argv):
    positional, stream_wait = [], None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--stream-wait" or arg.startswith("--stream-wait="):
            if "=" in arg:
                value = arg.split("=", 1)[1]
            else:
                i += 1
                if i >= len(argv):
                    usage("--stream-wait needs a number of seconds")
                value = argv[i]
            try:
                stream_wait = float(value)
            except ValueError:
                usage(f"--stream-wait: not a number of seconds: {value!r}")
        elif arg.startswith("--"):
            usage(f"unknown option {arg}")
        else:
            positional.append(arg)
        i += 1
    if len(positional) < 3:
        usage("JARS, LAKE_ROOT and at least one TABLE are needed")
    jars, root, tables = positional[0], positional[1], positional[2:]
    return jars, os.path.abspath(root), tables, stream_wait


def latest_log_version(path):
    """The newest version in a table's _delta_log (commit or checkpoint file), None without any."""
    log_dir = os.path.join(path, "_delta_log")
    try:
        names = os.listdir(log_dir)
    except OSError:
        return None
    versions = [int(m.group(1)) for m in map(COMMIT_FILE.match, names) if m]
    versions += [int(m.group(1)) for m in map(CHECKPOINT_FILE.match, names) if m]
    return max(versions) if versions else None


def error_text(exc):
    """The first lines of an exception's message: enough to tell what failed, without the JVM stack."""
    text = str(exc).strip() or type(exc).__name__
    lines = [line for line in text.splitlines() if line.strip() and not line.strip().startswith("at ")]
    short = " ".join(lines[:3])
    return short if len(short) <= 600 else short[:600] + "..."


def failure(path, exc):
    if latest_log_version(path) is None:
        return {"error": f"no Delta table at {path} (no commit in its _delta_log); Spark: {error_text(exc)}"}
    return {"error": f"{type(exc).__name__}: {error_text(exc)}"}


def log(message):
    sys.stderr.write(f"spark_read.py: {message}\n")
    sys.stderr.flush()


def start_spark(jars):
    from pyspark.sql import SparkSession

    # Spark looks up the host's address before it reads spark.driver.host; keep that on loopback too.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    scratch = tempfile.mkdtemp(prefix="spark-read-")
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("tidelake-spark-read")
        .config("spark.jars", jars)
        .config("spark.driver.memory", "1g")
        # A short-lived local JVM: the C1 compiler alone starts much faster, and one GC thread is plenty.
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.warehouse.dir", os.path.join(scratch, "warehouse"))
        .config("spark.sql.session.timeZone", "UTC")
        # Delta replays the log of a small table in 50 tasks by default: far too many for local[2].
        .config("spark.databricks.delta.snapshotPartitions", "2")
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark, scratch


def read_table(spark, path):
    from pyspark.sql import functions as F

    df = spark.read.format("delta").load(path)
    columns = df.columns
    if "cost" in columns:
        row = df.agg(F.count(F.lit(1)).alias("rows"), F.sum("cost").alias("sum_cost")).collect()[0]
        rows, total = row["rows"], row["sum_cost"]
        sum_cost = None if total is None else format(total, "f")  # plain digits, never 1E-7
    else:
        rows, sum_cost = df.count(), None
    quoted = "`" + path.replace("`", "``") + "`"
    version = spark.sql(f"DESCRIBE HISTORY delta.{quoted}").agg(F.max("version")).collect()[0][0]
    return {"rows": rows, "columns": columns, "sum_cost": sum_cost, "version": version}


def run_stream(spark, path, checkpoint, name):
    """One availableNow run of a Delta streaming read from the checkpoint; returns the rows it saw."""
    seen = []

    def count_batch(batch_df, batch_id):
        seen.append(batch_df.count())

    query = (
        spark.readStream.format("delta")
        .load(path)
        .writeStream.queryName(name)
        .foreachBatch(count_batch)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    if query.exception() is not None:
        raise RuntimeError(str(query.exception()))
    return sum(seen)


def stream_part(spark, path, scratch, stream_wait):
    checkpoint = os.path.join(scratch, "stream-checkpoint")
    before = latest_log_version(path)
    initial = run_stream(spark, path, checkpoint, "tidelake_stream_initial")
    report = {"initial": initial, "new": None, "versions": [before]}
    if stream_wait is None:
        return report
    # A test waits for this line before it commits to the table.
    log(f"stream: first run saw {initial} rows up to version {before}; "
        f"waiting up to {stream_wait:g} s for a newer version")
    deadline = time.monotonic() + stream_wait
    after = latest_log_version(path)
    while (after is None or before is None or after <= before) and time.monotonic() < deadline:
        time.sleep(0.5)
        after = latest_log_version(path)
    # A writer may land its work in a few commits: take them all, once none has come for 2 s.
    settled = time.monotonic() + 2
    while after is not None and before is not None and after > before and time.monotonic() < min(settled, deadline):
        time.sleep(0.25)
        newest = latest_log_version(path)
        if newest != after:
            after, settled = newest, time.monotonic() + 2
    report["versions"] = [before, after]
    if after is None or before is None or after <= before:
        report["error"] = f"no Delta version newer than {before} within {stream_wait:g} s"
        return report
    report["new"] = run_stream(spark, path, checkpoint, "tidelake_stream_again")
    return report


def main():
    jars, root, tables, stream_wait = parse_args(sys.argv[1:])

    # Only the JSON goes to stdout: everything else this process or the JVM it starts writes there
    # (the JVM inherits file descriptor 1) goes to stderr instead.
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    result = {}
    started = time.monotonic()
    try:
        spark, scratch = start_spark(jars)
        log(f"Spark {spark.version} started in {time.monotonic() - started:.1f} s")
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        result["error"] = f"could not start Spark: {type(exc).__name__}: {error_text(exc)}"
        out.write(json.dumps(result) + "\n")
        out.flush()
        sys.exit(2)

    try:
        result["spark_version"] = spark.version
        paths = {table: os.path.join(root, table) for table in tables}
        result["tables"] = {}
        for table in tables:
            part = time.monotonic()
            try:
                result["tables"][table] = read_table(spark, paths[table])
            except Exception as exc:  # noqa: BLE001
                result["tables"][table] = failure(paths[table], exc)
            log(f"read {table} in {time.monotonic() - part:.1f} s")

        first = paths[tables[0]]
        try:
            result["version_1_rows"] = spark.read.format("delta").option("versionAsOf", 1).load(first).count()
        except Exception as exc:  # noqa: BLE001
            result["version_1_rows"] = failure(first, exc)

        part = time.monotonic()
        try:
            result["stream"] = stream_part(spark, first, scratch, stream_wait)
        except Exception as exc:  # noqa: BLE001
            result["stream"] = failure(first, exc)
        log(f"stream part took {time.monotonic() - part:.1f} s")
    finally:
        out.write(json.dumps(result) + "\n")
        out.flush()
        log(f"done in {time.monotonic() - started:.1f} s")
        try:
            spark.stop()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
