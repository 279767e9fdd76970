"""Runs a list of statements through the `trino` client against `tidelake serve` and through DuckDB
on the same Delta table, and prints what each engine answered.

Usage: python literal_check.py PORT TABLE_PATH STATEMENTS_JSON

STATEMENTS_JSON is a file holding a list of {"name", "sql", "duckdb"?}: `sql` is sent to tidelake as
written; DuckDB runs `duckdb` when given (the same statement in DuckDB's own syntax), else `sql`. In
DuckDB, `ad_events` is a view over the table's current snapshot and `ad_events_v1` one over its
version 1 (the Parquet files Python `deltalake` lists for it). Prints one JSON object: per name,
{"trino": {"columns", "rows"} | {"error"}, "duckdb": ...}, every value as `str(value)`.
"""

import glob
import json
import os
import sys

import deltalake
import duckdb
import trino


def shown(rows):
    return [[None if v is None else str(v) for v in row] for row in rows]


def main(port, path, statements_file):
    statements = json.load(open(statements_file, encoding="utf-8"))
    ext = glob.glob(os.path.join(os.path.dirname(duckdb.__file__), "..", "duckdb_extension_delta", "**", "delta.duckdb_extension"), recursive=True)
    con = duckdb.connect()
    con.execute(f"LOAD '{ext[0]}'")
    con.execute(f"CREATE VIEW ad_events AS SELECT * FROM delta_scan('{path}')")
    files = deltalake.DeltaTable(path, version=1).file_uris()
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    con.execute(f"CREATE VIEW ad_events_v1 AS SELECT * FROM read_parquet([{listed}], hive_partitioning = true)")

    conn = trino.dbapi.connect(host="127.0.0.1", port=int(port), user="analyst", catalog="tidelake", schema="lake")
    cur = conn.cursor()
    out = {}
    for s in statements:
        answers = {}
        try:
            cur.execute(s["sql"])
            rows = cur.fetchall()
            answers["trino"] = {"columns": [d[0] for d in cur.description], "rows": shown(rows)}
        except Exception as e:  # the test prints it when the engines disagree
            answers["trino"] = {"error": f"{type(e).__name__}: {e}"[:500]}
        try:
            result = con.execute(s.get("duckdb", s["sql"]))
            rows = result.fetchall()
            answers["duckdb"] = {"columns": [d[0] for d in result.description], "rows": shown(rows)}
        except Exception as e:
            answers["duckdb"] = {"error": f"{type(e).__name__}: {e}"[:500]}
        out[s["name"]] = answers
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
    os._exit(0)
