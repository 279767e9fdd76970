"""Checks the rollup tables of the sample `ad_events` table against the raw table, bucket by bucket.

For each grain given, reads `<raw>_<grain>` with Python deltalake, merges its rows per key and bucket
(sums, max, and the HyperLogLog sketches, decoded here from their documented byte layout,
sparse and dense), and compares
with the same aggregate computed by DuckDB straight from the raw table. Prints one JSON object per grain:
buckets compared, the first mismatches, and the largest error of the distinct-user estimates (relative,
against at least 100).

usage: rollup_check.py RAW_TABLE_PATH GRAIN [GRAIN ...]
"""

import json
import math
import sys

import deltalake
import duckdb

MICROS = {"minute": 60_000_000, "hour": 3_600_000_000, "day": 86_400_000_000}


def merge(sketch, sparse, dense):
    """Merges a sketch into `sparse` (fine register -> rank) or, once any input is dense, `dense`
    (register -> rank); returns the dense dict if the merge is dense, else None."""
    fmt, precision, form = sketch[0], sketch[1], sketch[2]
    assert fmt == 1 and precision == 12, (fmt, precision)
    if form == 0:
        for i in range(3, len(sketch), 4):
            word = int.from_bytes(sketch[i:i + 4], "big")
            r, rank = word >> 6, word & 0x3F
            sparse[r] = max(sparse.get(r, 0), rank)
    else:
        for r, rank in enumerate(sketch[3:]):
            if rank:
                dense[r] = max(dense.get(r, 0), rank)


def coarse(register, rank):
    low = register & 0x1FFF
    return register >> 13, (13 + rank if low == 0 else 13 - low.bit_length() + 1)


def estimate(sparse, dense, had_dense):
    if not had_dense and len(sparse) * 4 <= 4096:
        m = 2 ** 25
        return m * math.log(m / (m - len(sparse)))
    for r, rank in sparse.items():
        c, k = coarse(r, rank)
        dense[c] = max(dense.get(c, 0), k)
    m = 4096
    zeros = m - len(dense)
    total = zeros + sum(2.0 ** -rank for rank in dense.values())
    alpha = 0.7213 / (1 + 1.079 / m)
    raw = alpha * m * m / total
    return m * math.log(m / zeros) if raw <= 2.5 * m and zeros else raw


def check(raw_path, grain):
    size = MICROS[grain]
    con = duckdb.connect()
    raw = deltalake.DeltaTable(raw_path).to_pyarrow_table(
        columns=["event_time", "event_type", "ad_id", "campaign_id", "user_id", "cost"]
    )
    rollup = deltalake.DeltaTable(f"{raw_path}_{grain}").to_pyarrow_table()
    con.register("raw", raw)
    con.register("rollup", rollup)
    expected = {}
    for row in con.execute(
        f"""SELECT ad_id, campaign_id, (epoch_us(event_time) // {size}) * {size} AS bucket,
                   count(*) FILTER (WHERE event_type = 'impression'), count(*) FILTER (WHERE event_type = 'click'),
                   sum(cost), max(cost), count(DISTINCT user_id)
            FROM raw GROUP BY ALL"""
    ).fetchall():
        expected[row[:3]] = row[3:]
    actual = {}
    for row in con.execute(
        f"""SELECT ad_id, campaign_id, epoch_us("{grain}") AS bucket, sum(impressions), sum(clicks), sum(spend),
                   max(max_cost), list(unique_users_sketch)
            FROM rollup GROUP BY ALL"""
    ).fetchall():
        sparse, dense = {}, {}
        for sketch in row[7]:
            merge(sketch, sparse, dense)
        actual[row[:3]] = (row[3], row[4], row[5], row[6], estimate(sparse, dense, any(s[2] == 1 for s in row[7])))
    mismatches = []
    worst = 0.0
    for key in sorted(set(expected) | set(actual)):
        want, got = expected.get(key), actual.get(key)
        if want is None or got is None or tuple(want[:4]) != tuple(got[:4]):
            mismatches.append({"key": [str(k) for k in key], "raw": str(want), "rollup": str(got)})
            continue
        # Relative error, with small counts judged against 100: two of a few dozen users whose
        # hashes share their top 25 bits count as one, which no sketch of this size avoids.
        worst = max(worst, abs(got[4] - want[4]) / max(want[4], 100))
    rows = con.execute(f"SELECT count(*) FROM rollup").fetchone()[0]
    return {"buckets": len(expected), "rollup_rows": rows, "mismatches": mismatches[:5],
            "mismatch_count": len(mismatches), "max_distinct_error": worst}


def main(raw_path, grains):
    print(json.dumps({grain: check(raw_path, grain) for grain in grains}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
