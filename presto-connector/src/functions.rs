//! SQL functions the connector adds to DataFusion's.
//!
//! - `sketch_distinct(<m>_sketch)`: the distinct count of the merged `approx_distinct` sketches of
//!   a rollup table's rows (the layout of [`tidelake_lake::sketch`]). A rollup row's `<m>` column
//!   is that row's own estimate; estimates of several rows do not add up, their sketches merge:
//!   `SELECT ad_id, sketch_distinct(unique_users_sketch) FROM ad_events_hour GROUP BY ad_id`.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Accumulator, AggregateUDF, Signature, SimpleAggregateUDF, Volatility};
use tidelake_lake::sketch::Sketch;

/// The name of the sketch-merging aggregate.
pub const SKETCH_DISTINCT: &str = "sketch_distinct";

/// `sketch_distinct(binary) -> bigint` (any of Arrow's binary types).
pub fn sketch_distinct() -> AggregateUDF {
    let binaries = vec![DataType::Binary, DataType::BinaryView, DataType::LargeBinary];
    AggregateUDF::from(SimpleAggregateUDF::new_with_signature(
        SKETCH_DISTINCT,
        Signature::uniform(1, binaries, Volatility::Immutable),
        DataType::Int64,
        Arc::new(|_| Ok(Box::new(SketchMerge::default()))),
        vec![Arc::new(Field::new("sketch", DataType::Binary, true))],
    ))
}

/// The merged sketch so far (none before the first non-null input).
#[derive(Debug, Default)]
struct SketchMerge {
    sketch: Option<Sketch>,
}

impl SketchMerge {
    fn fold(&mut self, values: &ArrayRef) -> Result<()> {
        let values = cast(values, &DataType::Binary)?;
        for bytes in values.as_binary::<i32>().iter().flatten() {
            let sketch = Sketch::from_bytes(bytes)
                .map_err(|e| DataFusionError::Execution(format!("{SKETCH_DISTINCT}: not a tidelake sketch: {e}")))?;
            match self.sketch.as_mut() {
                Some(merged) => merged.merge(&sketch),
                None => self.sketch = Some(sketch),
            }
        }
        Ok(())
    }
}

impl Accumulator for SketchMerge {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.fold(&values[0])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.fold(&states[0])
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(self.sketch.as_ref().map(Sketch::to_bytes))])
    }

    /// The estimate, 0 when every input was null (no value was ever seen).
    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(self.sketch.as_ref().map_or(0, |s| s.estimate() as i64))))
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.sketch.as_ref().map_or(0, |s| s.to_bytes().len())
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::BinaryArray;

    use super::*;

    #[test]
    fn sketches_merge_into_one_distinct_count() {
        let sketch = |users: std::ops::Range<u32>| {
            let mut s = Sketch::default();
            users.for_each(|u| s.insert(format!("u-{u}").as_bytes()));
            s.to_bytes()
        };
        let (a, b) = (sketch(0..60), sketch(40..100));
        let rows: ArrayRef = Arc::new(BinaryArray::from(vec![Some(a.as_slice()), None, Some(b.as_slice())]));
        let mut merge = SketchMerge::default();
        merge.update_batch(&[rows]).unwrap();
        assert_eq!(merge.evaluate().unwrap(), ScalarValue::Int64(Some(100)));
        let bad: ArrayRef = Arc::new(BinaryArray::from(vec![Some(&b"xy"[..])]));
        assert!(merge.update_batch(&[bad]).unwrap_err().to_string().contains("not a tidelake sketch"));
    }
}
