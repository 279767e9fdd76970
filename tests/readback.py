"""Reads a tidelake table with two independent engines, DuckDB (delta extension) and Python deltalake,
and prints what each saw as one JSON object: row count, distinct event ids, a digest of the sorted ids
and the sum of a decimal column."""

import glob
import hashlib
import json
import os
import sys

import deltalake
import duckdb


def digest(ids):
    h = hashlib.sha256()
    for i in sorted(ids):
        h.update(str(i).encode())
        h.update(b"\n")
    return h.hexdigest()


def main(path, id_column, sum_column):
    out = {}
    ext = glob.glob(os.path.join(os.path.dirname(duckdb.__file__), "..", "duckdb_extension_delta", "**", "delta.duckdb_extension"), recursive=True)
    con = duckdb.connect()
    con.execute(f"LOAD '{ext[0]}'")
    ids = [r[0] for r in con.execute(f"SELECT \"{id_column}\" FROM delta_scan('{path}')").fetchall()]
    total = con.execute(f"SELECT CAST(COALESCE(SUM(\"{sum_column}\"), 0) AS VARCHAR) FROM delta_scan('{path}')").fetchone()[0]
    out["duckdb"] = {"rows": len(ids), "distinct": len(set(ids)), "digest": digest(ids), "sum": total}
    con.close()

    table = deltalake.DeltaTable(path).to_pyarrow_table(columns=[id_column, sum_column])
    ids = table.column(id_column).to_pylist()
    values = [v for v in table.column(sum_column).to_pylist() if v is not None]
    out["deltalake"] = {"rows": len(ids), "distinct": len(set(ids)), "digest": digest(ids), "sum": str(sum(values))}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
    # Skip interpreter teardown: the two engines' native runtimes do not shut down cleanly together.
    os._exit(0)
