"""Queries `tidelake serve` through the real Trino and Presto Python clients and prints what they got.

Usage: python trino_clients.py HOST PORT TOPIC [USER PASSWORD]

Prints one JSON object: for each named query the rows as the client's DB-API returned them (values
rendered as `type:repr` so the Rust test sees the Python types the clients mapped), or the error
the client raised (`error`: its class, `name`: Trino's errorName). With USER and PASSWORD it logs
in with HTTP basic auth, and also tries a wrong password.
"""

import json
import sys
import urllib.request

import prestodb
import trino


def shown(value):
    return f"{type(value).__name__}:{value}"


def run(cursor, sql):
    try:
        cursor.execute(sql)
        rows = cursor.fetchall()
        names = [d[0] for d in cursor.description]
        return {"columns": names, "rows": [[shown(v) for v in row] for row in rows]}
    except Exception as e:  # the test asserts on the class and Trino's error name
        return {"error": type(e).__name__, "name": getattr(e, "error_name", None), "message": str(e)[:300]}


def main(host, port, topic, user=None, password=None):
    out = {}
    auth = trino.auth.BasicAuthentication(user, password) if user else None
    conn = trino.dbapi.connect(
        host=host, port=int(port), user=user or "analyst", catalog="tidelake", schema="live",
        auth=auth, http_scheme="http", allow_insecure_auth=True,
    ) if auth else trino.dbapi.connect(host=host, port=int(port), user="analyst", catalog="tidelake", schema="live")
    cur = conn.cursor()
    out["live_totals"] = run(cur, "SELECT count(*), count(DISTINCT event_id), sum(cost) FROM ad_events")
    out["lake_count"] = run(cur, "SELECT count(*) FROM lake.ad_events")
    out["kafka_count"] = run(cur, f'SELECT count(*) FROM kafka."{topic}"')
    out["joined"] = run(
        cur,
        f'SELECT count(*) FROM kafka."{topic}" k JOIN lake.ad_events l ON k.event_id = l.event_id',
    )
    out["types"] = run(
        cur,
        "SELECT event_id, event_time, cost, ad_id, event_type = 'click', event_date "
        "FROM lake.ad_events ORDER BY event_id LIMIT 2",
    )
    out["all_rows"] = run(cur, "SELECT event_id FROM live.ad_events")
    out["bad_syntax"] = run(cur, "SELEC 1")
    out["unknown_table"] = run(cur, "SELECT * FROM lake.nothing_here")
    out["write_refused"] = run(cur, "CREATE TABLE x AS SELECT 1")

    if user:
        wrong = trino.dbapi.connect(
            host=host, port=int(port), user=user, catalog="tidelake", schema="live",
            auth=trino.auth.BasicAuthentication(user, password + "x"), http_scheme="http", allow_insecure_auth=True,
        )
        out["wrong_password"] = run(wrong.cursor(), "SELECT 1")
        unknown = trino.dbapi.connect(
            host=host, port=int(port), user="mallory", catalog="tidelake", schema="live",
            auth=trino.auth.BasicAuthentication("mallory", password), http_scheme="http", allow_insecure_auth=True,
        )
        out["unknown_user"] = run(unknown.cursor(), "SELECT 1")
        none = trino.dbapi.connect(host=host, port=int(port), user=user, catalog="tidelake", schema="live")
        out["no_credentials"] = run(none.cursor(), "SELECT 1")
    else:
        presto = prestodb.dbapi.connect(host=host, port=int(port), user="analyst", catalog="tidelake", schema="live")
        pcur = presto.cursor()
        out["presto_live_totals"] = run(pcur, "SELECT count(*), count(DISTINCT event_id), sum(cost) FROM ad_events")
        out["presto_bad_syntax"] = run(pcur, "SELEC 1")
        # A dashboard query twice: the second is served from the result cache, same rows.
        dashboard = (
            "SELECT event_type, count(*), sum(cost), max(event_time) FROM lake.ad_events "
            "WHERE event_time >= TIMESTAMP '2026-11-01 00:00:00' GROUP BY event_type ORDER BY event_type"
        )
        out["dashboard_first"] = run(cur, dashboard)
        out["dashboard_again"] = run(cur, dashboard)
        with urllib.request.urlopen(f"http://{host}:{port}/v1/metrics") as response:
            out["metrics"] = json.load(response)
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
