// Drives `tidelake serve` through the real Trino JDBC driver: its DatabaseMetaData calls (which the driver
// turns into queries on system.jdbc), its PreparedStatement path (PREPARE/EXECUTE with bound parameters),
// the types it maps result columns to, and USE. Used by the Rust integration tests.
//
//   java -cp "$(infra/trino-client.sh jdbc)" tests/jdbc/JdbcClient.java jdbc:trino://127.0.0.1:PORT/tidelake/lake USER
//
// Single-file program for Java 17's source launcher: no compile step, no library but the driver.
// Prints exactly one JSON object on stdout, one key per step. A step that throws records
// {"error": "<exception class>: <message>"} under its key and the next step still runs, so a test can
// tell which call failed. Exits 1 only when the connection itself cannot be made.

import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

public class JdbcClient {
    private static final String COUNT_AND_COST =
            "SELECT count(*), CAST(sum(cost) AS varchar) FROM lake.ad_events WHERE event_type = %s AND ad_id >= %s";

    /** One step of the run: whatever it returns is written as JSON under its key. */
    interface Step {
        Object run() throws Exception;
    }

    private final Connection connection;
    private final Map<String, Object> out = new LinkedHashMap<>();
    /** The statement of "prepared", executed again with other parameters by "prepared_again". */
    private PreparedStatement clickStatement;

    private JdbcClient(Connection connection) {
        this.connection = connection;
    }

    public static void main(String[] args) {
        if (args.length != 2) {
            System.err.println("usage: java -cp trino-jdbc.jar JdbcClient.java JDBC_URL USER");
            System.exit(2);
        }
        Connection connection;
        try {
            connection = DriverManager.getConnection(args[0], args[1], null);
        } catch (Exception e) {
            Map<String, Object> failed = new LinkedHashMap<>();
            failed.put("connect", error(e));
            System.out.println(Json.write(failed));
            System.exit(1);
            return;
        }
        JdbcClient client = new JdbcClient(connection);
        client.runAll();
        System.out.println(Json.write(client.out));
        try {
            connection.close();
        } catch (SQLException e) {
            System.err.println("closing the connection: " + describe(e));
        }
    }

    private void runAll() {
        step("catalogs", () -> column(meta().getCatalogs(), "TABLE_CAT"));
        step("schemas", () -> rows(meta().getSchemas(), "TABLE_SCHEM", "TABLE_CATALOG"));
        step("schemas_like", () -> rows(meta().getSchemas("tidelake", "l%"), "TABLE_SCHEM", "TABLE_CATALOG"));
        step("lake_tables", () -> rows(meta().getTables(null, "lake", "%", null),
                "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE"));
        step("live_views", () -> rows(meta().getTables("tidelake", "live", "%", new String[] {"VIEW"}),
                "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE"));
        step("columns", this::columns);
        step("table_types", () -> column(meta().getTableTypes(), "TABLE_TYPE"));
        step("type_info", this::typeInfo);
        step("literal", this::literal);
        step("prepared", this::prepared);
        step("prepared_again", this::preparedAgain);
        step("prepared_typed", this::preparedTyped);
        step("result_types", this::resultTypes);
        step("use_schema", this::useSchema);
        closeQuietly(clickStatement);
    }

    private void step(String key, Step step) {
        try {
            out.put(key, step.run());
        } catch (Exception e) {
            System.err.println(key + ": " + describe(e));
            out.put(key, error(e));
        }
    }

    private DatabaseMetaData meta() throws SQLException {
        return connection.getMetaData();
    }

    // --- the steps ---

    private Object columns() throws SQLException {
        List<Object> found = new ArrayList<>();
        try (ResultSet rs = meta().getColumns(null, "lake", "ad_events", "%")) {
            while (rs.next()) {
                Map<String, Object> column = new LinkedHashMap<>();
                column.put("name", rs.getString("COLUMN_NAME"));
                column.put("type", rs.getString("TYPE_NAME"));
                column.put("data_type", rs.getInt("DATA_TYPE"));
                column.put("size", nullableInt(rs, "COLUMN_SIZE"));
                column.put("digits", nullableInt(rs, "DECIMAL_DIGITS"));
                column.put("position", rs.getInt("ORDINAL_POSITION"));
                column.put("nullable", rs.getString("IS_NULLABLE"));
                found.add(column);
            }
        }
        return found;
    }

    private Object typeInfo() throws SQLException {
        List<Object> types = new ArrayList<>();
        try (ResultSet rs = meta().getTypeInfo()) {
            while (rs.next()) {
                types.add(Arrays.asList(rs.getString("TYPE_NAME"), rs.getInt("DATA_TYPE")));
            }
        }
        return types;
    }

    private Object literal() throws SQLException {
        try (Statement statement = connection.createStatement();
                ResultSet rs = statement.executeQuery(String.format(COUNT_AND_COST, "'click'", "3"))) {
            return singleRow(rs);
        }
    }

    private Object prepared() throws SQLException {
        clickStatement = connection.prepareStatement(String.format(COUNT_AND_COST, "?", "?"));
        clickStatement.setString(1, "click");
        clickStatement.setLong(2, 3);
        try (ResultSet rs = clickStatement.executeQuery()) {
            return singleRow(rs);
        }
    }

    private Object preparedAgain() throws SQLException {
        if (clickStatement == null) {
            throw new IllegalStateException("no statement to execute again: \"prepared\" did not create it");
        }
        clickStatement.setString(1, "impression");
        clickStatement.setLong(2, 0);
        try (ResultSet rs = clickStatement.executeQuery()) {
            return singleRow(rs);
        }
    }

    private Object preparedTyped() throws SQLException {
        String sql = "SELECT count(*) FROM lake.ad_events WHERE event_date >= ? AND cost > ?";
        try (PreparedStatement statement = connection.prepareStatement(sql)) {
            statement.setDate(1, Date.valueOf("2000-01-01"));
            statement.setBigDecimal(2, new BigDecimal("0.5"));
            try (ResultSet rs = statement.executeQuery()) {
                return singleRow(rs).get(0);
            }
        }
    }

    private Object resultTypes() throws SQLException {
        String sql = "SELECT event_id, event_time, ad_id, cost, event_date FROM lake.ad_events LIMIT 1";
        try (Statement statement = connection.createStatement(); ResultSet rs = statement.executeQuery(sql)) {
            ResultSetMetaData md = rs.getMetaData();
            List<Object> typeNames = new ArrayList<>();
            for (int i = 1; i <= md.getColumnCount(); i++) {
                typeNames.add(md.getColumnTypeName(i));
            }
            List<Object> classes = new ArrayList<>();
            if (rs.next()) {
                for (int i = 1; i <= md.getColumnCount(); i++) {
                    Object value = rs.getObject(i);
                    classes.add(value == null ? null : value.getClass().getName());
                }
            }
            Map<String, Object> types = new LinkedHashMap<>();
            types.put("type_names", typeNames);
            types.put("classes", classes);
            return types;
        }
    }

    private Object useSchema() throws SQLException {
        try (Statement statement = connection.createStatement()) {
            statement.execute("USE tidelake.live");
        }
        try (Statement statement = connection.createStatement();
                ResultSet rs = statement.executeQuery("SELECT count(*) FROM ad_events")) {
            List<Object> row = singleRow(rs);
            return Arrays.asList(connection.getSchema(), row.get(0));
        }
    }

    // --- reading result sets ---

    /** The one row a query returns, each value as getString gives it. */
    private static List<Object> singleRow(ResultSet rs) throws SQLException {
        if (!rs.next()) {
            throw new IllegalStateException("the query returned no row");
        }
        List<Object> row = new ArrayList<>();
        for (int i = 1; i <= rs.getMetaData().getColumnCount(); i++) {
            row.add(rs.getString(i));
        }
        if (rs.next()) {
            throw new IllegalStateException("the query returned more than one row");
        }
        return row;
    }

    /** One named column of every row, as strings. */
    private static List<Object> column(ResultSet rs, String name) throws SQLException {
        List<Object> values = new ArrayList<>();
        try (rs) {
            while (rs.next()) {
                values.add(rs.getString(name));
            }
        }
        return values;
    }

    /** The named columns of every row, each row a list of strings. */
    private static List<Object> rows(ResultSet rs, String... names) throws SQLException {
        List<Object> found = new ArrayList<>();
        try (rs) {
            while (rs.next()) {
                List<Object> row = new ArrayList<>();
                for (String name : names) {
                    row.add(rs.getString(name));
                }
                found.add(row);
            }
        }
        return found;
    }

    private static Integer nullableInt(ResultSet rs, String name) throws SQLException {
        int value = rs.getInt(name);
        return rs.wasNull() ? null : value;
    }

    // --- errors ---

    private static Map<String, Object> error(Exception e) {
        Map<String, Object> error = new LinkedHashMap<>();
        error.put("error", describe(e));
        return error;
    }

    private static String describe(Exception e) {
        return e.getClass().getName() + ": " + e.getMessage();
    }

    private static void closeQuietly(AutoCloseable closeable) {
        if (closeable == null) {
            return;
        }
        try {
            closeable.close();
        } catch (Exception e) {
            System.err.println("closing: " + describe(e));
        }
    }

    /** Just enough JSON: null, booleans, numbers, strings, lists and string-keyed maps; ASCII only. */
    static final class Json {
        static String write(Object value) {
            StringBuilder sb = new StringBuilder();
            append(sb, value);
            return sb.toString();
        }

        private static void append(StringBuilder sb, Object value) {
            if (value == null) {
                sb.append("null");
            } else if (value instanceof Boolean || value instanceof Integer || value instanceof Long) {
                sb.append(value);
            } else if (value instanceof Map<?, ?> map) {
                sb.append('{');
                String separator = "";
                for (Map.Entry<?, ?> entry : map.entrySet()) {
                    sb.append(separator);
                    string(sb, String.valueOf(entry.getKey()));
                    sb.append(": ");
                    append(sb, entry.getValue());
                    separator = ", ";
                }
                sb.append('}');
            } else if (value instanceof List<?> list) {
                sb.append('[');
                String separator = "";
                for (Object item : list) {
                    sb.append(separator);
                    append(sb, item);
                    separator = ", ";
                }
                sb.append(']');
            } else {
                string(sb, value.toString());
            }
        }

        private static void string(StringBuilder sb, String s) {
            sb.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"' -> sb.append("\\\"");
                    case '\\' -> sb.append("\\\\");
                    case '\n' -> sb.append("\\n");
                    case '\r' -> sb.append("\\r");
                    case '\t' -> sb.append("\\t");
                    case '\b' -> sb.append("\\b");
                    case '\f' -> sb.append("\\f");
                    default -> {
                        // Non-ASCII too: stdout's charset follows the locale, which may be plain ASCII.
                        if (c < 0x20 || c > 0x7e) {
                            sb.append(String.format("\\u%04x", (int) c));
                        } else {
                            sb.append(c);
                        }
                    }
                }
            }
            sb.append('"');
        }
    }
}
