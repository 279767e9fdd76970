"""Reads a tidelake table whose columns grew with DuckDB (delta extension) and Python deltalake, and
prints one JSON object: for each engine the row count, how many rows hold a value in <column>, the
largest value of <max column> (when given), and the columns it sees now; for deltalake also the
columns at <version>.

Usage: evolution_check.py <table path> <column> <version> [<max column>]
"""

import glob
import json
import os
import sys

import deltalake
import duckdb


def main(path, column, version, max_column=None):
    out = {}
    ext = glob.glob(os.path.join(os.path.dirname(duckdb.__file__), "..", "duckdb_extension_delta", "**", "delta.duckdb_extension"), recursive=True)
    con = duckdb.connect()
    con.execute(f"LOAD '{ext[0]}'")
    rows, filled = con.execute(f"SELECT count(*), count(\"{column}\") FROM delta_scan('{path}')").fetchone()
    columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM delta_scan('{path}')").fetchall()]
    out["duckdb"] = {"rows": rows, "filled": filled, "columns": columns}
    if max_column:
        out["duckdb"]["max"] = con.execute(f"SELECT max(\"{max_column}\") FROM delta_scan('{path}')").fetchone()[0]
    con.close()

    table = deltalake.DeltaTable(path)
    data = table.to_pyarrow_table()
    old = deltalake.DeltaTable(path, version=int(version))
    out["deltalake"] = {
        "rows": data.num_rows,
        "filled": data.num_rows - data.column(column).null_count,
        "columns": data.column_names,
        "columns_at_version": [f.name for f in old.schema().fields],
    }
    if max_column:
        out["deltalake"]["max"] = max(v for v in data.column(max_column).to_pylist() if v is not None)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
    # Skip interpreter teardown: the two engines' native runtimes do not shut down cleanly together.
    os._exit(0)
