//! Parquet tables, read one column chunk at a time with the `parquet` crate's column reader
//! (no Arrow): a column is read from every row group when its test starts, and dropped when
//! it ends, so a file of 1,000 columns × 3M rows costs the memory of the few columns being
//! tested, not of the file.
//!
//! Flat columns only. DOUBLE, FLOAT, INT32 and INT64 are numbers (a DECIMAL's scale is
//! applied); BOOLEAN and BYTE_ARRAY (strings) are categories; nulls and NaN are missing.
//! Nested columns, INT96 and FIXED_LEN_BYTE_ARRAY are refused with an error naming the
//! column. Codecs: uncompressed, Snappy and gzip.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use parquet::basic::{LogicalType, Type as PhysicalType};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::DataType;
use parquet::file::reader::{ChunkReader, FileReader, Length, SerializedFileReader};

use super::{ColumnData, DatasetError};

/// Values read per call from a column chunk.
const BATCH: usize = 64 * 1024;

/// An opened Parquet file: its footer is read, its data is not.
pub struct ParquetTable {
    pub path: PathBuf,
    pub names: Vec<String>,
    pub rows: u64,
    reader: SerializedFileReader<PositionalFile>,
    /// Buffers of columns already tested, reused for the next ones (at most
    /// [`SPARE_BUFFERS`]): a fresh 24 MB buffer a column costs a page fault every 4 KiB.
    spare: Mutex<Vec<Vec<f64>>>,
}

/// Column buffers a table keeps for reuse.
const SPARE_BUFFERS: usize = 3;

/// A file read with positional reads (`pread`), so columns are read from several threads at
/// once. (`parquet`'s own reader for `File` seeks a shared file offset: concurrent column
/// reads would race and read each other's pages.)
struct PositionalFile {
    file: std::fs::File,
    len: u64,
}

impl Length for PositionalFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for PositionalFile {
    type T = std::io::BufReader<ReadAt>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let file = self.file.try_clone()?;
        Ok(std::io::BufReader::new(ReadAt { file, at: start }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        let mut buf = vec![0; length];
        std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut buf, start)?;
        Ok(buf.into())
    }
}

/// A sequential reader from an offset, by positional reads on its own (duplicated) handle:
/// the handle's shared offset is never used.
struct ReadAt {
    file: std::fs::File,
    at: u64,
}

impl std::io::Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(&self.file, buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Opens `path` and reads its footer (schema and row groups).
pub fn open(path: &Path) -> Result<ParquetTable, DatasetError> {
    let file = std::fs::File::open(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let len = file
        .metadata()
        .map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let reader = SerializedFileReader::new(PositionalFile { file, len }).map_err(|e| {
        DatasetError::Parquet {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    let meta = reader.metadata().file_metadata();
    let names = meta
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.path().string())
        .collect();
    let rows = u64::try_from(meta.num_rows()).unwrap_or(0);
    Ok(ParquetTable {
        path: path.to_path_buf(),
        names,
        rows,
        reader,
        spare: Mutex::new(Vec::new()),
    })
}

impl ParquetTable {
    /// Takes back the numbers of a column read by [`ParquetTable::column`] once its test is
    /// done, for the next column to fill.
    pub fn recycle(&self, mut numbers: Vec<f64>) {
        numbers.clear();
        if let Ok(mut spare) = self.spare.lock() {
            if spare.len() < SPARE_BUFFERS {
                spare.push(numbers);
            }
        }
    }

    /// Column `index`, from every row group.
    pub fn column(&self, index: usize) -> Result<ColumnData, DatasetError> {
        let err = |reason: String| DatasetError::ParquetColumn {
            path: self.path.clone(),
            column: self.names.get(index).cloned().unwrap_or_default(),
            reason,
        };
        // The reader's own checks are errors; a panic inside it on a damaged file is made one
        // too, so no input stops `eval` without a message naming the file and column.
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.read(index)));
        match read {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(reason)) => Err(err(reason)),
            Err(_) => Err(err(
                "the column's data is damaged (the reader failed)".into()
            )),
        }
    }

    fn read(&self, index: usize) -> Result<ColumnData, String> {
        let schema = self.reader.metadata().file_metadata().schema_descr();
        if index >= schema.num_columns() {
            return Err("no such column".into());
        }
        let descr = schema.column(index);
        if descr.max_rep_level() > 0 {
            return Err("a nested (repeated) column; only flat columns are supported".into());
        }
        let scale = match descr.logical_type_ref() {
            Some(LogicalType::Decimal(d)) => 10f64.powi(d.scale),
            _ => 1.0,
        };
        match descr.physical_type() {
            PhysicalType::INT96 | PhysicalType::FIXED_LEN_BYTE_ARRAY => {
                return Err(format!(
                    "physical type {} is not supported (numbers, booleans and strings are)",
                    descr.physical_type()
                ));
            }
            _ => {}
        }
        let mut out = ColumnData {
            numbers: self
                .spare
                .lock()
                .ok()
                .and_then(|mut s| s.pop())
                .unwrap_or_default(),
            ..ColumnData::default()
        };
        if matches!(
            descr.physical_type(),
            PhysicalType::DOUBLE | PhysicalType::FLOAT | PhysicalType::INT32 | PhysicalType::INT64
        ) {
            out.numbers
                .reserve(usize::try_from(self.rows).unwrap_or(0).min(1 << 28));
        }
        for g in 0..self.reader.num_row_groups() {
            let group = self.reader.get_row_group(g).map_err(|e| e.to_string())?;
            let reader = group.get_column_reader(index).map_err(|e| e.to_string())?;
            match reader {
                ColumnReader::DoubleColumnReader(r) => numbers(r, &mut out, |x| x),
                ColumnReader::FloatColumnReader(r) => numbers(r, &mut out, f64::from),
                ColumnReader::Int32ColumnReader(r) => {
                    numbers(r, &mut out, |x| f64::from(x) / scale)
                }
                ColumnReader::Int64ColumnReader(r) => numbers(r, &mut out, |x| x as f64 / scale),
                ColumnReader::BoolColumnReader(r) => texts(r, &mut out, |b, push| {
                    push(if *b { "true" } else { "false" })
                }),
                ColumnReader::ByteArrayColumnReader(r) => texts(r, &mut out, |b, push| {
                    push(&String::from_utf8_lossy(b.data()))
                }),
                _ => Err("unsupported physical type".to_string()),
            }?;
        }
        Ok(out)
    }
}

/// Reads a column chunk of numbers into `out`; nulls count as missing.
fn numbers<T: DataType>(
    mut r: ColumnReaderImpl<T>,
    out: &mut ColumnData,
    to_f64: impl Fn(T::T) -> f64,
) -> Result<(), String>
where
    T::T: Copy,
{
    let mut values: Vec<T::T> = Vec::with_capacity(BATCH);
    let mut defs: Vec<i16> = Vec::with_capacity(BATCH);
    loop {
        values.clear();
        defs.clear();
        let (records, read, levels) = r
            .read_records(BATCH, Some(&mut defs), None, &mut values)
            .map_err(|e| e.to_string())?;
        if records == 0 && levels == 0 {
            return Ok(());
        }
        out.missing += (records.saturating_sub(read)) as u64;
        let start = out.numbers.len();
        out.numbers.extend(values.iter().map(|&v| to_f64(v)));
        if !out.numbers[start..].iter().all(|x| x.is_finite()) {
            // NaN and infinities are missing values (rare: checked in bulk, then dropped).
            let before = out.numbers.len();
            let mut k = 0usize;
            out.numbers.retain(|x| {
                k += 1;
                k <= start || x.is_finite()
            });
            out.missing += (before - out.numbers.len()) as u64;
        }
    }
}

/// Reads a column chunk of categories into `out`; nulls count as missing.
fn texts<T: DataType>(
    mut r: ColumnReaderImpl<T>,
    out: &mut ColumnData,
    each: impl Fn(&T::T, &mut dyn FnMut(&str)),
) -> Result<(), String> {
    let mut values: Vec<T::T> = Vec::with_capacity(BATCH);
    let mut defs: Vec<i16> = Vec::with_capacity(BATCH);
    loop {
        values.clear();
        defs.clear();
        let (records, read, levels) = r
            .read_records(BATCH, Some(&mut defs), None, &mut values)
            .map_err(|e| e.to_string())?;
        if records == 0 && levels == 0 {
            return Ok(());
        }
        out.missing += (records.saturating_sub(read)) as u64;
        for v in &values {
            each(v, &mut |text: &str| match out.texts.get_mut(text) {
                Some(n) => *n += 1,
                None => {
                    out.texts.insert(text.to_string(), 1);
                }
            });
        }
    }
}
