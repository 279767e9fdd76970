//! Prepared statements' parameters: the values `EXECUTE ... USING` binds, and what
//! `DESCRIBE INPUT` and `DESCRIBE OUTPUT` say of a prepared statement.
//!
//! A parameter's value is the `USING` expression evaluated on its own, before the statement runs:
//! `42`, `'O''Brien'`, `BIGINT '42'`, `DECIMAL '1.50'`, `DATE '2026-11-23'`, `X'0aff'`,
//! `CAST(NULL AS varchar)`. The value, with its type, takes the place of its `?` in the planned
//! statement, so nothing a client sends as a parameter is ever read as SQL.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, RecordBatchOptions, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{ColumnarValue, LogicalPlan};
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, ExprWithAlias};

use crate::error::{Error, Result};
use crate::metadata::trino_type_name;

/// `plan` with `params` bound to its parameters `$1`, `$2`, ... in order.
pub fn bind(state: &SessionState, plan: LogicalPlan, params: &[SqlExpr]) -> Result<LogicalPlan> {
    let wanted = plan.get_parameter_names()?.len();
    if wanted != params.len() {
        return Err(Error::Session(format!(
            "Incorrect number of parameters: expected {wanted} but found {}",
            params.len()
        )));
    }
    if params.is_empty() {
        return Ok(plan);
    }
    let values = params.iter().enumerate().map(|(i, p)| value(state, p, i + 1)).collect::<Result<Vec<_>>>()?;
    Ok(plan.with_param_values(values)?)
}

/// The value of parameter `n`'s expression, which must be a constant.
fn value(state: &SessionState, expr: &SqlExpr, n: usize) -> Result<ScalarValue> {
    let refused =
        |e: &dyn std::fmt::Display| Error::Session(format!("parameter {n} (`{expr}`) is not a constant value: {e}"));
    let empty = DFSchema::empty();
    let logical = state
        .create_logical_expr_from_sql_expr(ExprWithAlias { expr: expr.clone(), alias: None }, &empty)
        .map_err(|e| refused(&e.strip_backtrace()))?;
    let physical = state.create_physical_expr(logical, &empty).map_err(|e| refused(&e.strip_backtrace()))?;
    let one_row = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        Vec::new(),
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .map_err(|e| Error::Panicked(e.to_string()))?;
    match physical.evaluate(&one_row).map_err(|e| refused(&e.strip_backtrace()))? {
        ColumnarValue::Scalar(value) => Ok(value),
        ColumnarValue::Array(array) => Ok(ScalarValue::try_from_array(&array, 0)?),
    }
}

/// `DESCRIBE INPUT`: each parameter's position and the type its place in `plan` asks for
/// (`unknown` where the statement does not say).
pub fn describe_input(plan: &LogicalPlan) -> Result<RecordBatch> {
    let types = plan.get_parameter_types()?;
    let mut positions: Vec<(i64, String)> = types
        .into_iter()
        .filter_map(|(name, data_type)| {
            let position = name.strip_prefix('$')?.parse::<i64>().ok()?;
            Some((position, data_type.map_or_else(|| "unknown".to_string(), |t| trino_type_name(&t))))
        })
        .collect();
    positions.sort();
    let schema = Arc::new(Schema::new(vec![
        Field::new("Position", DataType::Int64, false),
        Field::new("Type", DataType::Utf8, false),
    ]));
    let (numbers, names): (Vec<i64>, Vec<String>) = positions.into_iter().unzip();
    let columns: Vec<arrow::array::ArrayRef> =
        vec![Arc::new(Int64Array::from(numbers)), Arc::new(StringArray::from(names))];
    Ok(RecordBatch::try_new(schema, columns).expect("columns match the schema"))
}

/// `DESCRIBE OUTPUT`: the columns `plan` gives, in Trino's shape.
pub fn describe_output(plan: &LogicalPlan) -> RecordBatch {
    let fields = plan.schema().fields();
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    let schema = Arc::new(Schema::new(vec![
        text("Column Name"),
        text("Catalog"),
        text("Schema"),
        text("Table"),
        text("Type"),
        Field::new("Type Size", DataType::Int64, false),
        Field::new("Aliased", DataType::Boolean, false),
    ]));
    let empty = || Arc::new(StringArray::from(vec![""; fields.len()]));
    let columns: Vec<arrow::array::ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(fields.iter().map(|f| f.name()))),
        empty(),
        empty(),
        empty(),
        Arc::new(StringArray::from_iter_values(fields.iter().map(|f| trino_type_name(f.data_type())))),
        Arc::new(Int64Array::from_iter_values(fields.iter().map(|f| type_size(f.data_type())))),
        Arc::new(arrow::array::BooleanArray::from(vec![false; fields.len()])),
    ];
    RecordBatch::try_new(schema, columns).expect("columns match the schema")
}

/// Bytes of a fixed-width value of `data_type`, 0 for variable-width types, as Trino reports them.
fn type_size(data_type: &DataType) -> i64 {
    match data_type {
        DataType::Boolean | DataType::Int8 => 1,
        DataType::Int16 => 2,
        DataType::Int32 | DataType::Float32 | DataType::Date32 => 4,
        DataType::Int64 | DataType::Float64 | DataType::Timestamp(..) | DataType::Date64 => 8,
        DataType::Decimal128(p, _) if *p <= 18 => 8,
        DataType::Decimal128(..) => 16,
        _ => 0,
    }
}
