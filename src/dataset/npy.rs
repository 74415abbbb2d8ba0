//! `.npy` tables: a two-dimensional float64 or float32 array (rows × columns, C or Fortran
//! order; one dimension is one column), memory-mapped. Columns are named by their index,
//! `0`, `1`, .... NaN and infinities are missing values.
//!
//! A C-order file keeps each row's values together, so columns are read a block of
//! neighbouring ones at a time ([`NpyTable::block`]); a Fortran-order file's columns are
//! each one run. The file is mapped whole: for tables larger than memory, use Parquet.

use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapOptions};

use super::{ColumnData, DatasetError};
use crate::formats::npy::{parse_table_header, table_columns, NpyTable as Header};

/// An opened `.npy` table.
pub struct NpyTable {
    pub path: PathBuf,
    pub names: Vec<String>,
    pub table: Header,
    map: Mmap,
}

/// How many dimensions the `.npy` file starting with `head` has, if it is one.
pub fn dimensions(head: &[u8]) -> Option<usize> {
    crate::formats::npy::dimensions(head).ok()
}

/// Maps `path` and checks its header.
pub fn open(path: &Path) -> Result<NpyTable, DatasetError> {
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
    Ok(NpyTable {
        path: path.to_path_buf(),
        names: (0..table.columns).map(|i| i.to_string()).collect(),
        table,
        map,
    })
}

impl NpyTable {
    /// Columns read together: 64 neighbours in a C-order table (512 contiguous bytes of
    /// each row, which the prefetchers follow; 8 at a time left the reads waiting on a cache
    /// miss per row, 40% of the run), one at a time in Fortran order.
    pub fn block(&self) -> usize {
        if self.table.fortran {
            1
        } else {
            64
        }
    }

    /// The columns `indices`, read in one pass.
    pub fn columns(&self, indices: &[usize]) -> Vec<ColumnData> {
        let mut values = vec![Vec::new(); indices.len()];
        table_columns(&self.map, &self.table, indices, &mut values);
        values.into_iter().map(to_column).collect()
    }
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
