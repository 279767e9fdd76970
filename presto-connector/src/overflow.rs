//! Integer arithmetic that fails on overflow, as Trino's does.
//!
//! DataFusion adds, subtracts and multiplies integers with wrapping: `9223372036854775807 + 1` is
//! `-9223372036854775808`, a wrong answer with no word of warning. After type coercion, the
//! [`CheckedArithmetic`] analyzer rule turns each integer `+`, `-` and `*` into a function that
//! computes the same with arrow's checked kernels, so an overflow fails the query
//! (`NUMERIC_VALUE_OUT_OF_RANGE` over the Trino protocol). The function is named like the
//! operator it replaces, so column names and plans read as the SQL did.

use std::sync::Arc;

use arrow::array::Datum;
use arrow::compute::kernels::numeric;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ExprSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// Rewrites integer `+`, `-`, `*` into their overflow-checked forms.
#[derive(Debug, Default)]
pub struct CheckedArithmetic;

impl AnalyzerRule for CheckedArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = match node.inputs().as_slice() {
                [] => node.schema().as_ref().clone(),
                inputs => merge_schema(inputs),
            };
            node.map_expressions(|e| e.transform_up(|e| checked(e, &schema)))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "tidelake_checked_arithmetic"
    }
}

fn checked(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
        return Ok(Transformed::no(e));
    };
    let Some(kind) = Kind::of(*op) else {
        return Ok(Transformed::no(e));
    };
    // An expression whose type cannot be told here (an outer column of a subquery) keeps its
    // operator.
    let (Ok(l), Ok(r)) = (left.get_type(schema), right.get_type(schema)) else {
        return Ok(Transformed::no(e));
    };
    if !(l.is_integer() && l == r) {
        return Ok(Transformed::no(e));
    }
    let udf = Arc::new(ScalarUDF::new_from_impl(Checked::new(kind)));
    let args = vec![left.as_ref().clone(), right.as_ref().clone()];
    Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(udf, args))))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Add,
    Subtract,
    Multiply,
}

impl Kind {
    fn of(op: Operator) -> Option<Kind> {
        match op {
            Operator::Plus => Some(Kind::Add),
            Operator::Minus => Some(Kind::Subtract),
            Operator::Multiply => Some(Kind::Multiply),
            _ => None,
        }
    }

    fn operator(self) -> Operator {
        match self {
            Kind::Add => Operator::Plus,
            Kind::Subtract => Operator::Minus,
            Kind::Multiply => Operator::Multiply,
        }
    }
}

/// One checked operator on two integers of the same type.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    kind: Kind,
    name: String,
    signature: Signature,
}

impl Checked {
    fn new(kind: Kind) -> Self {
        let name = format!("checked_{kind:?}").to_lowercase();
        Checked { kind, name, signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        Ok(format!("{} {} {}", args[0], self.kind.operator(), args[1]))
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(format!("{} {} {}", args[0].schema_name(), self.kind.operator(), args[1].schema_name()))
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        Ok(Arc::new(Field::new(self.name(), args.arg_fields[0].data_type().clone(), nullable)))
    }

    fn is_nullable(&self, args: &[Expr], schema: &dyn ExprSchema) -> bool {
        args.iter().any(|a| a.nullable(schema).unwrap_or(true))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [left, right] = args.args.as_slice() else { unreachable!("the signature takes two arguments") };
        let datum = |value: &ColumnarValue| -> Result<Box<dyn Datum>> {
            Ok(match value {
                ColumnarValue::Array(array) => Box::new(array.clone()),
                ColumnarValue::Scalar(scalar) => Box::new(scalar.to_scalar()?),
            })
        };
        let (l, r) = (datum(left)?, datum(right)?);
        let result = match self.kind {
            Kind::Add => numeric::add(l.as_ref(), r.as_ref())?,
            Kind::Subtract => numeric::sub(l.as_ref(), r.as_ref())?,
            Kind::Multiply => numeric::mul(l.as_ref(), r.as_ref())?,
        };
        Ok(match (left, right) {
            (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&result, 0)?)
            }
            _ => ColumnarValue::Array(result),
        })
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn run(sql: &str) -> Result<Vec<arrow::array::RecordBatch>> {
        let ctx = SessionContext::new();
        ctx.add_analyzer_rule(Arc::new(CheckedArithmetic));
        ctx.sql(sql).await?.collect().await
    }

    #[tokio::test]
    async fn integer_overflow_fails_and_names_stay_as_written() {
        let wrapped = run("SELECT a + b FROM (VALUES (9223372036854775807, 1)) t(a, b)").await.unwrap_err();
        assert!(wrapped.to_string().contains("Overflow"), "{wrapped}");
        assert!(run("SELECT 9223372036854775807 * 2").await.is_err());
        assert!(run("SELECT a - 1 FROM (VALUES (CAST(-9223372036854775808 AS BIGINT))) t(a)").await.is_err());
        let fine = run("SELECT a + b, a * 2 - b FROM (VALUES (40, 2)) t(a, b)").await.unwrap();
        let schema = fine[0].schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["t.a + t.b", "t.a * Int64(2) - t.b"]);
        let value = |i: usize| fine[0].column(i).as_primitive::<arrow::datatypes::Int64Type>().value(0);
        assert_eq!((value(0), value(1)), (42, 78));
        // Other types keep DataFusion's own operators.
        assert!(run("SELECT 1.5 + 2.25, DATE '2026-12-01' + INTERVAL '1' DAY").await.is_ok());
    }
}
