//! Files driftgauge reads as data rather than config: `.npy` arrays, memory-mapped (the
//! format itself is `formats::npy`, pure over bytes).

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use memmap2::{Mmap, MmapOptions};

use crate::formats::npy::{decode, f64_in_place, parse_header, parse_npy, NpyError, NpyHeader};

/// Why a `.npy` file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NpyFileError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Npy(#[from] NpyError),
}

/// A sample's values: decoded into memory, or the data of a memory-mapped `.npy` file.
pub enum Values {
    Owned(Vec<f64>),
    Mapped(MappedF64),
}

impl Deref for Values {
    type Target = [f64];

    fn deref(&self) -> &[f64] {
        match self {
            Values::Owned(v) => v,
            Values::Mapped(m) => m.as_slice(),
        }
    }
}

impl Values {
    /// The values as a vector: moved when owned, copied out of a mapping.
    pub fn into_vec(self) -> Vec<f64> {
        match self {
            Values::Owned(v) => v,
            Values::Mapped(m) => m.as_slice().to_vec(),
        }
    }
}

impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Values::Owned(_) => "Owned",
            Values::Mapped(_) => "Mapped",
        };
        write!(f, "Values::{kind}({} values)", self.len())
    }
}

/// The float64 data of a mapped `.npy` file, used in place.
pub struct MappedF64 {
    map: Mmap,
    header: NpyHeader,
}

impl MappedF64 {
    pub fn as_slice(&self) -> &[f64] {
        // Checked in `read_npy_file` on these same bytes, which neither move nor change.
        f64_in_place(&self.map, &self.header).expect("checked when mapped")
    }
}

/// Reads a `.npy` file: memory-mapped (private, read-only, every page mapped up front), and
/// for `<f8` data used in place; other accepted data (float32) is decoded into memory. A
/// file that cannot be mapped (a pipe; a platform without mappings) is read in one go.
pub fn read_npy_file(path: &Path) -> Result<Values, NpyFileError> {
    let mut file = File::open(path)?;
    // SAFETY: a read-only private mapping of a file driftgauge never writes. As with any
    // mapped file, another process truncating it while it is mapped makes reads of the lost
    // pages fault (SIGBUS); `eval` maps its files only while it runs.
    let Ok(map) = (unsafe { MmapOptions::new().populate().map(&file) }) else {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes)?;
        return Ok(Values::Owned(parse_npy(&bytes)?));
    };
    let header = parse_header(&map)?;
    if header.count > 0 && f64_in_place(&map, &header).is_some() {
        return Ok(Values::Mapped(MappedF64 { map, header }));
    }
    Ok(Values::Owned(decode(&map, &header)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::npy::tests::{f8, npy};

    #[test]
    fn files_are_mapped_in_place_or_decoded() {
        let dir = std::env::temp_dir().join(format!("driftgauge-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let values: Vec<f64> = (0..1000).map(|i| i as f64 * 0.5 - 7.0).collect();
        let f8_path = dir.join("a.npy");
        std::fs::write(&f8_path, npy(1, "<f8", "(1000,)", &f8(&values)))
            .unwrap_or_else(|e| panic!("{e}"));
        let got = read_npy_file(&f8_path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&*got, &values[..]);
        #[cfg(target_endian = "little")]
        assert!(matches!(got, Values::Mapped(_)), "{got:?}");
        let f4: Vec<u8> = values
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect();
        let f4_path = dir.join("b.npy");
        std::fs::write(&f4_path, npy(3, "<f4", "(1000,)", &f4)).unwrap_or_else(|e| panic!("{e}"));
        let got = read_npy_file(&f4_path).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(got, Values::Owned(_)));
        assert_eq!(&*got, &values[..]);
        // Into a vector, moved or copied out of the mapping: the same values.
        assert_eq!(got.into_vec(), values);
        let mapped = read_npy_file(&f8_path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mapped.into_vec(), values);
        let bad_path = dir.join("c.npy");
        std::fs::write(&bad_path, b"\x93NUMPY\x01\x00\x05\x00{oops")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            read_npy_file(&bad_path),
            Err(NpyFileError::Npy(NpyError::BadHeader { .. }))
        ));
        // An empty file maps to no bytes, and is no NPY file.
        let empty_path = dir.join("d.npy");
        std::fs::write(&empty_path, b"").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            read_npy_file(&empty_path),
            Err(NpyFileError::Npy(NpyError::NotNpy))
        ));
        assert!(matches!(
            read_npy_file(&dir.join("missing.npy")),
            Err(NpyFileError::Io(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
