"""Queries `tidelake serve` through the real Trino and Presto Python clients and prints what they got.

Usage: python trino_clients.py HOST PORT TOPIC [USER PASSWORD CERT TOKEN_USER TOKEN]

Prints one JSON object: for each named query the rows as the client's DB-API returned them (values
rendered as `type:repr` so the Rust test sees the Python types the clients mapped), or the error
the client raised (`error`: its class, `name`: Trino's errorName). With USER and PASSWORD it logs
in with HTTP basic auth over https (trusting CERT), also tries a wrong password, an unknown user, no
credentials and a bearer token, and checks that one user cannot see another's query.
"""

import base64
import json
import os
import ssl
import sys
import urllib.error
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


def raw(method, url, cert, authorization, body=None):
    """One request as it is: the status, and the JSON body when there is one."""
    request = urllib.request.Request(url, data=body, method=method, headers={"Authorization": authorization})
    context = ssl.create_default_context(cafile=cert)
    try:
        with urllib.request.urlopen(request, context=context) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, None


def others_query(host, port, cert, user, password, token):
    """Alice posts a query; the token's user can neither poll nor cancel it; alice still can."""
    alice = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    other = f"Bearer {token}"
    base = f"https://{host}:{port}"
    _, posted = raw("POST", f"{base}/v1/statement", cert, alice, b"SELECT 7 AS seven")
    nxt = posted["nextUri"]
    seen = {"other_poll": raw("GET", nxt, cert, other)[0], "other_cancel": raw("DELETE", nxt, cert, other)[0]}
    status, page = raw("GET", nxt, cert, alice)
    seen["owner_poll"] = status
    seen["owner_rows"] = page.get("data") if page else None
    seen["next_uri_scheme"] = nxt.split(":")[0]
    return seen


def main(host, port, topic, user=None, password=None, cert=None, token_user=None, token=None):
    out = {}
    # requests lets these variables override a session's own `verify`: trust CERT alone.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        os.environ.pop(name, None)
    auth = trino.auth.BasicAuthentication(user, password) if user else None
    conn = trino.dbapi.connect(
        host=host, port=int(port), user=user, catalog="tidelake", schema="live",
        auth=auth, http_scheme="https", verify=cert,
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
    # Browsing as a BI tool does, in the connection's schema (`live`).
    out["show_tables"] = run(cur, "SHOW TABLES")
    out["describe"] = run(cur, "DESCRIBE ad_events")

    if user:
        def login(name, authentication):
            return trino.dbapi.connect(
                host=host, port=int(port), user=name, catalog="tidelake", schema="live",
                auth=authentication, http_scheme="https", verify=cert,
            ).cursor()
        out["wrong_password"] = run(login(user, trino.auth.BasicAuthentication(user, password + "x")), "SELECT 1")
        out["unknown_user"] = run(login("mallory", trino.auth.BasicAuthentication("mallory", password)), "SELECT 1")
        out["no_credentials"] = run(login(user, None), "SELECT 1")
        out["token"] = run(login(token_user, trino.auth.JWTAuthentication(token)), "SELECT count(*) FROM lake.ad_events")
        out["token_as_other"] = run(login(user, trino.auth.JWTAuthentication(token)), "SELECT 1")
        out["others_query"] = others_query(host, port, cert, user, password, token)
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
