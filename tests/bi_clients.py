"""Browses and queries `tidelake serve` the way Python BI stacks do: SQLAlchemy's inspector and table
reflection through the `trino` dialect (what Superset lists tables and columns with), pandas
`read_sql` with bound parameters, and the DB-API with parameters (EXECUTE IMMEDIATE by default, or
PREPARE/EXECUTE with `legacy_prepared_statements`).

Usage: python bi_clients.py HOST PORT

Prints one JSON object, one key per step; a step that raises records {"error": class, "message"}.
"""

import json
import sys

import pandas as pd
import sqlalchemy as sa
import trino

COUNT_AND_COST = (
    "SELECT count(*) AS n, CAST(sum(cost) AS varchar) AS cost FROM lake.ad_events "
    "WHERE event_type = {} AND ad_id >= {}"
)


def step(out, key, run):
    try:
        out[key] = run()
    except Exception as e:  # the test says which step failed and why
        out[key] = {"error": type(e).__name__, "message": str(e)[:500]}


def frame_rows(frame):
    return [[str(v) for v in row] for row in frame.itertuples(index=False)]


def inspector_steps(out, engine):
    inspector = sa.inspect(engine)
    step(out, "schemas", lambda: sorted(inspector.get_schema_names()))
    step(out, "lake_tables", lambda: sorted(inspector.get_table_names(schema="lake")))
    step(out, "live_views", lambda: sorted(inspector.get_view_names(schema="live")))
    step(
        out,
        "columns",
        lambda: [[c["name"], str(c["type"]), c["nullable"]] for c in inspector.get_columns("ad_events", schema="lake")],
    )
    step(
        out,
        "has_table",
        lambda: [inspector.has_table("ad_events", schema="lake"), inspector.has_table("nothing", schema="lake")],
    )
    step(
        out,
        "reflected",
        lambda: [c.name for c in sa.Table("ad_events", sa.MetaData(), autoload_with=engine, schema="lake").columns],
    )


def pandas_steps(out, engine):
    literal = sa.text(COUNT_AND_COST.format("'click'", "3"))
    bound = sa.text(COUNT_AND_COST.format(":kind", ":ad"))
    step(out, "pandas_literal", lambda: frame_rows(pd.read_sql(literal, engine)))
    step(out, "pandas_params", lambda: frame_rows(pd.read_sql(bound, engine, params={"kind": "click", "ad": 3})))
    tricky = sa.text("SELECT count(*) AS n FROM lake.ad_events WHERE user_id = :user")
    step(out, "pandas_tricky", lambda: frame_rows(pd.read_sql(tricky, engine, params={"user": "x' OR '1'='1"})))


def dbapi_steps(out, host, port):
    for key, legacy in [("dbapi_immediate", False), ("dbapi_prepare", True)]:
        def run(legacy=legacy):
            connection = trino.dbapi.connect(
                host=host, port=port, user="bi", catalog="tidelake", schema="lake", legacy_prepared_statements=legacy
            )
            cursor = connection.cursor()
            cursor.execute(COUNT_AND_COST.format("?", "?"), ("click", 3))
            rows = [[str(v) for v in row] for row in cursor.fetchall()]
            # The session the server handed back: prepared statements are deallocated again.
            return {"rows": rows, "prepared_left": sorted(connection._client_session.prepared_statements)}

        step(out, key, run)

    def use_and_session():
        connection = trino.dbapi.connect(host=host, port=port, user="bi", catalog="tidelake", schema="lake")
        cursor = connection.cursor()
        cursor.execute("USE live")
        cursor.fetchall()
        cursor.execute("SET SESSION query_max_execution_time = '10m'")
        cursor.fetchall()
        cursor.execute("SHOW SESSION")
        properties = {row[0]: row[1] for row in cursor.fetchall()}
        cursor.execute("SELECT count(*) FROM ad_events")
        count = cursor.fetchall()[0][0]
        session = connection._client_session
        return {
            "schema": session.schema,
            "properties": session.properties,
            "shown": properties.get("query_max_execution_time"),
            "live_count": count,
        }

    step(out, "use_and_session", use_and_session)

    def time_limit():
        connection = trino.dbapi.connect(
            host=host, port=port, user="bi", catalog="tidelake", schema="lake",
            session_properties={"query_max_execution_time": "1s"},
        )
        cursor = connection.cursor()
        try:
            cursor.execute("SELECT count(*) FROM ad_events a, ad_events b, ad_events c WHERE a.cost + b.cost > c.cost")
            return {"rows": cursor.fetchall()}
        except trino.exceptions.TrinoQueryError as e:
            return {"name": e.error_name, "type": e.error_type, "message": e.message}

    step(out, "time_limit", time_limit)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    engine = sa.create_engine(f"trino://bi@{host}:{port}/tidelake")
    out = {}
    inspector_steps(out, engine)
    pandas_steps(out, engine)
    dbapi_steps(out, host, port)
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
