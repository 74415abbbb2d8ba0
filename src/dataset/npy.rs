//! `.npy` tables: a two-dimensional float64 or float32 array (rows × columns, C or Fortran
//! order; one dimension is one column), memory-mapped. Columns are named by their index,
//! `0`, `1`, .... NaN and infinities are missing values.
//!
//! A C-order file keeps each row's values together, so the wanted columns are copied out
//! when the file is opened, eight neighbouring columns at a time (one cache line of each
//! row), in parallel; a Fortran-order file's columns are read in place when tested. The file
//! is mapped whole: for tables larger than memory, use Parquet.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapOptions};
use rayon::prelude::*;

use super::{ColumnData, DatasetError};
use crate::formats::npy::{parse_table_header, table_columns, NpyTable as Header};

/// Columns copied out together from a C-order table.
const BLOCK: usize = 8;

/// An opened `.npy` table.
pub struct NpyTable {
    pub path: PathBuf,
    pub names: Vec<String>,
    pub table: Header,
    map: Mmap,
    /// C order: the columns copied out at open (`None` for those not wanted).
    copied: Option<Vec<Option<ColumnData>>>,
}

/// How many dimensions the `.npy` file starting with `head` has, if it is one.
pub fn dimensions(head: &[u8]) -> Option<usize> {
    crate::formats::npy::dimensions(head).ok()
}

/// Maps `path` and checks its header; copies out the `wanted` columns (every one when
/// `None`) of a C-order table.
pub fn open(path: &Path, wanted: Option<&[String]>) -> Result<NpyTable, DatasetError> {
    let io = |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: a read-only private mapping of a file driftgauge never writes; as for any
    // mapped file, another process truncating it while `eval` runs makes reads fault.
    let map = unsafe { MmapOptions::new().populate().map(&file) }.map_err(io)?;
    let table = parse_table_header(&map).map_err(|source| DatasetError::Npy {
        path: path.to_path_buf(),
        source,
    })?;
    let names: Vec<String> = (0..table.columns).map(|i| i.to_string()).collect();
    let mut out = NpyTable {
        path: path.to_path_buf(),
        names,
        table,
        map,
        copied: None,
    };
    if !table.fortran && table.columns > 1 {
        let want: Vec<bool> = out
            .names
            .iter()
            .map(|n| wanted.is_none_or(|w| w.iter().any(|x| x == n)))
            .collect();
        let blocks: Vec<Vec<Option<ColumnData>>> = (0..table.columns.div_ceil(BLOCK))
            .into_par_iter()
            .map(|b| {
                let first = b * BLOCK;
                let last = (first + BLOCK).min(table.columns);
                let Some(from) = (first..last).find(|&c| want[c]) else {
                    return vec![None; last - first];
                };
                let to = (from..last).rfind(|&c| want[c]).unwrap_or(from) + 1;
                let mut values = vec![Vec::new(); to - from];
                table_columns(&out.map, &table, from, &mut values);
                let mut cols = vec![None; last - first];
                for (k, v) in values.into_iter().enumerate() {
                    if want[from + k] {
                        cols[from + k - first] = Some(to_column(v));
                    }
                }
                cols
            })
            .collect();
        out.copied = Some(blocks.into_iter().flatten().collect());
    }
    Ok(out)
}

fn to_column(values: Vec<f64>) -> ColumnData {
    let missing = values.iter().filter(|x| !x.is_finite()).count();
    let numbers = if missing == 0 {
        values
    } else {
        values.into_iter().filter(|x| x.is_finite()).collect()
    };
    ColumnData {
        numbers,
        missing: missing as u64,
        ..ColumnData::default()
    }
}

impl NpyTable {
    /// Column `index`'s values.
    pub fn column(&self, index: usize) -> Cow<'_, ColumnData> {
        if let Some(Some(c)) = self.copied.as_ref().and_then(|c| c.get(index)) {
            return Cow::Borrowed(c);
        }
        let mut values = vec![Vec::new()];
        table_columns(&self.map, &self.table, index, &mut values);
        Cow::Owned(to_column(values.pop().unwrap_or_default()))
    }
}
