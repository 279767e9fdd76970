//! Reads the Parquet files a Delta table holds, straight from its object store, fetching only what
//! a read needs. The dedup index, the audit, the rollups, optimize and reprocessing all read
//! through here.
//!
//! A read of some columns of a large file fetches the footer, then only those columns' chunks, row
//! group by row group, as it goes. A read of every column, or of a small file, fetches the whole
//! object in one request: on object storage a request costs about as much as a few megabytes.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderBuilder, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::error::{Error, Result};

/// A table's object store.
pub type Store = Arc<dyn ObjectStore>;

/// Files up to this size are fetched whole, whatever columns a read wants.
pub const WHOLE_OBJECT_BYTES: u64 = 4 * 1024 * 1024;

/// The footer bytes fetched at once: most footers fit, so the metadata takes one request.
const FOOTER_HINT: usize = 64 * 1024;

/// One Parquet file of a table.
#[derive(Debug, Clone, Copy)]
pub struct DataFile<'a> {
    /// The table's object store.
    pub store: &'a Store,
    /// The table's name, for errors.
    pub table: &'a str,
    /// Where the file is, relative to the table's root.
    pub path: &'a Path,
    /// Its size in bytes, when the log says (saves a request for it).
    pub size: Option<u64>,
}

impl<'a> DataFile<'a> {
    /// The file at `path` of the table `table` (named so in errors) in `store`.
    pub fn new(store: &'a Store, table: &'a str, path: &'a Path) -> Self {
        DataFile { store, table, path, size: None }
    }

    /// The same file, whose size is known.
    pub fn with_size(self, size: Option<u64>) -> Self {
        DataFile { size, ..self }
    }

    /// The rows of the file, as a stream of record batches: `columns` of them (every column when
    /// `None`; a column the file does not hold is left out). A storage error stays one (a missing
    /// file, a failure to retry); a file that does not read as Parquet is an error naming it.
    pub async fn stream(&self, columns: Option<&[&str]>) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let (table, path) = (self.table.to_string(), self.path.clone());
        let whole = columns.is_none() || self.size.is_some_and(|size| size <= WHOLE_OBJECT_BYTES);
        if whole {
            let bytes = self.store.get(self.path).await?.bytes().await?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| error(&table, &path, e))?;
            let reader = project(builder, columns).build().map_err(|e| error(&table, &path, e))?;
            let rows = reader.map(move |batch| batch.map_err(|e| error(&table, &path, e.into())));
            return Ok(futures::stream::iter(rows).boxed());
        }
        let size = match self.size {
            Some(size) => size,
            None => self.store.head(self.path).await?.size,
        };
        let reader = RangeReader { store: self.store.clone(), path: self.path.clone(), size };
        let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|e| error(&table, &path, e))?;
        let rows = project(builder, columns).build().map_err(|e| error(&table, &path, e))?;
        Ok(rows.map_err(move |e| error(&table, &path, e)).boxed())
    }

    /// The rows of the file, `columns` of them (see [`DataFile::stream`]).
    pub async fn read(&self, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>> {
        self.stream(columns).await?.try_collect().await
    }
}

/// Reads `columns` of the Parquet file at `path` (relative to the table's store); columns the file
/// does not hold are left out. `table` names the table in errors.
pub async fn read_columns(store: &Store, table: &str, path: &Path, columns: &[&str]) -> Result<Vec<RecordBatch>> {
    DataFile::new(store, table, path).read(Some(columns)).await
}

/// Reads byte ranges of one object: the footer first, then the column chunks a read wants.
struct RangeReader {
    store: Store,
    path: Path,
    size: u64,
}

impl AsyncFileReader for RangeReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move { Ok(self.store.get_range(&self.path, range).await?) }.boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        // The store merges ranges that lie close into one request.
        async move { Ok(self.store.get_ranges(&self.path, &ranges).await?) }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let reader = ParquetMetaDataReader::new().with_prefetch_hint(Some(FOOTER_HINT));
            Ok(Arc::new(reader.load_and_finish(self, size).await?))
        }
        .boxed()
    }
}

fn project<T>(builder: ArrowReaderBuilder<T>, columns: Option<&[&str]>) -> ArrowReaderBuilder<T> {
    match columns {
        None => builder,
        Some(columns) => {
            let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
            builder.with_projection(mask)
        }
    }
}

/// A storage error stays one; anything else is the file's.
fn error(table: &str, path: &Path, e: ParquetError) -> Error {
    match e {
        ParquetError::External(inner) => match inner.downcast::<object_store::Error>() {
            Ok(storage) => Error::ObjectStore(*storage),
            Err(other) => file_error(table, path, ParquetError::External(other)),
        },
        other => file_error(table, path, other),
    }
}

fn file_error(table: &str, path: &Path, e: ParquetError) -> Error {
    Error::Delta { table: format!("{table} file {path}"), source: Box::new(e.into()) }
}
