//! Reads columns of the Parquet files a Delta table holds, straight from its object store.

use arrow::array::RecordBatch;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use crate::error::{Error, Result};

/// Reads `columns` of the Parquet file at `path` (relative to the table's store); columns the file
/// does not hold are left out. `table` names the table in errors.
pub async fn read_columns(
    store: &dyn ObjectStore,
    table: &str,
    path: &Path,
    columns: &[&str],
) -> Result<Vec<RecordBatch>> {
    let bytes = store.get(path).await?.bytes().await?;
    let file_error = |e: parquet::errors::ParquetError| Error::Delta {
        table: format!("{table} file {path}"),
        source: Box::new(e.into()),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(file_error)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
    builder
        .with_projection(mask)
        .build()
        .map_err(file_error)?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(Error::arrow(format!("reading {path} of {table}")))
}
