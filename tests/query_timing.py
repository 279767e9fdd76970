"""Times one aggregate query over a Delta table in DuckDB (delta extension), over the rows a filter
keeps when one is given: prints the best of N runs in seconds and the result rows, as one JSON
object.

    query_timing.py <table path> [runs] [SQL condition, e.g. "ad_id = 17"]
"""

import glob
import json
import os
import sys
import time

import duckdb


def main(path, runs, condition):
    ext = glob.glob(os.path.join(os.path.dirname(duckdb.__file__), "..", "duckdb_extension_delta", "**", "delta.duckdb_extension"), recursive=True)
    con = duckdb.connect()
    con.execute(f"LOAD '{ext[0]}'")
    where = f"WHERE {condition}" if condition else ""
    query = f"SELECT ad_id, count(*) AS n, CAST(sum(cost) AS VARCHAR) AS cost FROM delta_scan('{path}') {where} GROUP BY ad_id ORDER BY ad_id"
    best, rows = None, None
    for _ in range(int(runs)):
        started = time.perf_counter()
        rows = con.execute(query).fetchall()
        took = time.perf_counter() - started
        best = took if best is None else min(best, took)
    print(json.dumps({"seconds": best, "rows": [list(r) for r in rows]}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "3", sys.argv[3] if len(sys.argv) > 3 else None)
    os._exit(0)
