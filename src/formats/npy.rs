//! Values from NumPy's `.npy` files (`numpy.save`), for `driftgauge eval`: one sample (a
//! one-dimensional array), or the columns of a table (two dimensions, [`parse_table_header`]
//! and [`table_columns`], C or Fortran order).
//!
//! The format: the magic `\x93NUMPY`, a version byte pair (1.0, 2.0 or 3.0), the header
//! length (`u16` little-endian for 1.0, `u32` for 2.0 and 3.0), then the header, a Python
//! dict literal such as `{'descr': '<f8', 'fortran_order': False, 'shape': (1000,), }`,
//! then the array's bytes. Accepted: one-dimensional arrays of little-endian float64 (`<f8`)
//! or float32 (`<f4`, widened exactly), C order. Anything else is an [`NpyError`] saying
//! what was found; no input panics, the header is bounded to [`MAX_HEADER_LEN`] bytes, and
//! the data must be exactly as long as the shape says.
//!
//! Two parts. The format, pure functions over bytes (no I/O): [`parse_header`],
//! [`parse_npy`] (decodes a copy) and [`f64_in_place`] (`<f8` data read where it lies).
//! The file itself is read in `config::files`: `read_npy_file` memory-maps it
//! (`memmap2`) and, for `<f8` data (which `numpy.save` always aligns), hands out the values
//! in place without copying them: on this machine a fresh 8 MB buffer costs more in page
//! faults than the whole KS test on it.

/// The NPY magic string.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The longest header accepted. NumPy itself refuses headers over 10,000 bytes unless told
/// otherwise; a one-dimensional float array needs under 128.
pub const MAX_HEADER_LEN: usize = 65_536;

/// Why bytes are not an acceptable NPY array.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NpyError {
    #[error("not an NPY file: it does not start with the magic \\x93NUMPY")]
    NotNpy,
    #[error("unsupported NPY format version {major}.{minor} (1.0, 2.0 and 3.0 are supported)")]
    UnsupportedVersion { major: u8, minor: u8 },
    #[error("the file ends inside the NPY header")]
    TruncatedHeader,
    #[error("NPY header of {len} bytes is longer than the {max} bytes accepted")]
    HeaderTooLong { len: usize, max: usize },
    #[error("malformed NPY header at byte {offset}: {reason}")]
    BadHeader { offset: usize, reason: &'static str },
    #[error("NPY header is missing the key {key:?}")]
    MissingKey { key: &'static str },
    #[error("NPY header has an unexpected key {key:?}")]
    UnknownKey { key: String },
    #[error(
        "unsupported dtype {descr:?}: expected little-endian float64 ('<f8') or float32 ('<f4')"
    )]
    UnsupportedDtype { descr: String },
    #[error("Fortran-ordered arrays are not supported")]
    FortranOrder,
    #[error("expected a one-dimensional array, got shape ({shape})")]
    NotOneDimensional { shape: String },
    #[error("expected a table (a two-dimensional array, rows × columns), got shape ({shape})")]
    NotATable { shape: String },
    #[error("the shape ({count},) needs {expected} bytes of data, the file has {found}")]
    DataLength {
        count: u64,
        expected: u64,
        found: u64,
    },
}

/// Element types accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// `<f8`
    F64,
    /// `<f4`
    F32,
}

impl Dtype {
    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 => 8,
            Dtype::F32 => 4,
        }
    }
}

/// What an NPY header says, checked against the length of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NpyHeader {
    pub dtype: Dtype,
    /// Number of values.
    pub count: usize,
    /// Where the data starts.
    pub data_offset: usize,
}

/// Decodes a whole `.npy` file held in memory.
pub fn parse_npy(bytes: &[u8]) -> Result<Vec<f64>, NpyError> {
    let header = parse_header(bytes)?;
    Ok(decode(bytes, &header))
}

/// Parses and checks the header of a `.npy` file whose bytes (all of them) are `bytes`.
pub fn parse_header(bytes: &[u8]) -> Result<NpyHeader, NpyError> {
    let (fields, data_offset) = read_header(bytes)?;
    if fields.fortran {
        return Err(NpyError::FortranOrder);
    }
    let count = match fields.shape.as_slice() {
        [n] => usize::try_from(*n).map_err(|_| NpyError::BadHeader {
            offset: 0,
            reason: "dimension too large",
        })?,
        _ => {
            return Err(NpyError::NotOneDimensional {
                shape: shape_text(&fields.shape),
            })
        }
    };
    check_length(bytes, data_offset, count as u64, fields.dtype)?;
    Ok(NpyHeader {
        dtype: fields.dtype,
        count,
        data_offset,
    })
}

/// What the header of a two-dimensional `.npy` file (a table: rows × columns) says, checked
/// against the length of the bytes. A one-dimensional array is a table of one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NpyTable {
    pub dtype: Dtype,
    pub rows: usize,
    pub columns: usize,
    /// Fortran order: each column's values lie together (else each row's, C order).
    pub fortran: bool,
    /// Where the data starts.
    pub data_offset: usize,
}

/// Parses and checks the header of a `.npy` file holding a table (2-D, C or Fortran order;
/// 1-D is one column).
pub fn parse_table_header(bytes: &[u8]) -> Result<NpyTable, NpyError> {
    let (fields, data_offset) = read_header(bytes)?;
    let too_large = || NpyError::BadHeader {
        offset: 0,
        reason: "dimension too large",
    };
    let (rows, columns) = match fields.shape.as_slice() {
        [n] => (*n, 1),
        [r, c] => (*r, *c),
        _ => {
            return Err(NpyError::NotATable {
                shape: shape_text(&fields.shape),
            })
        }
    };
    let count = rows.checked_mul(columns).ok_or_else(too_large)?;
    check_length(bytes, data_offset, count, fields.dtype)?;
    Ok(NpyTable {
        dtype: fields.dtype,
        rows: usize::try_from(rows).map_err(|_| too_large())?,
        columns: usize::try_from(columns).map_err(|_| too_large())?,
        fortran: fields.fortran,
        data_offset,
    })
}

/// Rows of a C-order table read together by [`table_columns`]: 256 rows of 64 wanted
/// neighbouring columns are 128 KiB.
const TILE_ROWS: usize = 256;

/// The values of `columns` (indices, each below `table.columns`; others are skipped) of a
/// checked table, appended to `out[k]` for `columns[k]`, in row order. In C order this walks
/// the rows once, a tile of `TILE_ROWS` at a time, reading only the wanted values of each
/// (neighbouring columns share a cache line); in Fortran order each column is one run. Float64 data 8-aligned in memory is read
/// in place, anything else decoded value by value.
pub fn table_columns(bytes: &[u8], table: &NpyTable, columns: &[usize], out: &mut [Vec<f64>]) {
    let data = bytes.get(table.data_offset..).unwrap_or(&[]);
    let wanted: Vec<(usize, usize)> = columns
        .iter()
        .copied()
        .enumerate()
        .filter(|&(k, c)| c < table.columns && k < out.len())
        .collect();
    for &(k, _) in &wanted {
        out[k].reserve(table.rows);
    }
    let count = table.rows * table.columns;
    let aligned = (data.as_ptr() as usize).is_multiple_of(std::mem::align_of::<f64>());
    if table.dtype == Dtype::F64
        && aligned
        && cfg!(target_endian = "little")
        && data.len() == count * 8
    {
        // SAFETY: `data` is `8 * count` bytes starting 8-aligned, borrowed like `bytes`; every
        // bit pattern is a valid f64, and the target is little-endian like the data.
        let values: &[f64] =
            unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<f64>(), count) };
        if table.fortran {
            for &(k, c) in &wanted {
                out[k].extend_from_slice(&values[c * table.rows..(c + 1) * table.rows]);
            }
        } else if table.columns > 0 {
            // A tile of rows at a time (it stays in cache while each wanted column is copied
            // out of it), so every output is written in runs, not a value per row.
            for tile in values.chunks(TILE_ROWS * table.columns) {
                for &(k, c) in &wanted {
                    out[k].extend(tile.chunks_exact(table.columns).map(|row| row[c]));
                }
            }
        }
        return;
    }
    let size = table.dtype.size();
    let value = |i: usize| -> f64 {
        let at = i * size;
        match (table.dtype, data.get(at..at + size)) {
            (Dtype::F64, Some(c)) => {
                f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
            }
            (Dtype::F32, Some(c)) => f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            _ => f64::NAN,
        }
    };
    for r in 0..table.rows {
        for &(k, c) in &wanted {
            let i = if table.fortran {
                c * table.rows + r
            } else {
                r * table.columns + c
            };
            out[k].push(value(i));
        }
    }
}

/// How many dimensions the array whose file starts with `bytes` has (the data need not
/// follow: a file's first 64 KiB always hold its header).
pub fn dimensions(bytes: &[u8]) -> Result<usize, NpyError> {
    read_header(bytes).map(|(fields, _)| fields.shape.len())
}

fn shape_text(shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let mut s = dims.join(", ");
    if dims.len() == 1 {
        s.push(',');
    }
    s
}

fn check_length(
    bytes: &[u8],
    data_offset: usize,
    count: u64,
    dtype: Dtype,
) -> Result<(), NpyError> {
    let available = (bytes.len() - data_offset) as u64;
    let expected = count.checked_mul(dtype.size() as u64);
    if expected != Some(available) {
        return Err(NpyError::DataLength {
            count,
            expected: expected.unwrap_or(u64::MAX),
            found: available,
        });
    }
    Ok(())
}

/// The header's fields and where the data starts.
fn read_header(bytes: &[u8]) -> Result<(Fields, usize), NpyError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(NpyError::NotNpy);
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(&[major, minor]) => (major, minor),
        _ => return Err(NpyError::TruncatedHeader),
    };
    let (len_bytes, start) = match (major, minor) {
        (1, 0) => (2, 10),
        (2, 0) | (3, 0) => (4, 12),
        _ => return Err(NpyError::UnsupportedVersion { major, minor }),
    };
    let len_field = bytes
        .get(8..8 + len_bytes)
        .ok_or(NpyError::TruncatedHeader)?;
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    if header_len > MAX_HEADER_LEN {
        return Err(NpyError::HeaderTooLong {
            len: header_len,
            max: MAX_HEADER_LEN,
        });
    }
    let text = bytes
        .get(start..start + header_len)
        .ok_or(NpyError::TruncatedHeader)?;
    let fields = parse_dict(text, start)?;
    Ok((fields, start + header_len))
}

/// The `<f8` data of `bytes` used in place, when `header` is `bytes`' checked header, the
/// data starts 8-aligned in memory and the target is little-endian like the data; else
/// `None` (then [`parse_npy`] decodes a copy).
pub fn f64_in_place<'a>(bytes: &'a [u8], header: &NpyHeader) -> Option<&'a [f64]> {
    if header.dtype != Dtype::F64 || cfg!(target_endian = "big") {
        return None;
    }
    let data = bytes.get(header.data_offset..)?;
    let aligned = (data.as_ptr() as usize).is_multiple_of(std::mem::align_of::<f64>());
    if !aligned || header.count.checked_mul(8) != Some(data.len()) {
        return None;
    }
    // SAFETY: `data` is `8 * count` bytes starting 8-aligned, borrowed for `'a` like the
    // result; every bit pattern is a valid f64, and the target is little-endian like the data.
    Some(unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<f64>(), header.count) })
}

/// The values after a checked header.
pub fn decode(bytes: &[u8], header: &NpyHeader) -> Vec<f64> {
    let data = bytes.get(header.data_offset..).unwrap_or(&[]);
    match header.dtype {
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
    }
}

struct Fields {
    dtype: Dtype,
    shape: Vec<u64>,
    fortran: bool,
}

/// A cursor over the header's dict literal; `base` is the header's offset in the file, for
/// error positions.
struct Cursor<'a> {
    text: &'a [u8],
    pos: usize,
    base: usize,
}

impl Cursor<'_> {
    fn err<T>(&self, reason: &'static str) -> Result<T, NpyError> {
        Err(NpyError::BadHeader {
            offset: self.base + self.pos,
            reason,
        })
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.text.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8, reason: &'static str) -> Result<(), NpyError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(reason)
        }
    }

    /// A quoted string without escapes (NumPy writes none in these fields).
    fn string(&mut self) -> Result<&[u8], NpyError> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return self.err("expected a quoted string"),
        };
        self.pos += 1;
        let start = self.pos;
        while let Some(&c) = self.text.get(self.pos) {
            if c == quote {
                let s = &self.text[start..self.pos];
                self.pos += 1;
                return Ok(s);
            }
            if c == b'\\' || !c.is_ascii() || c.is_ascii_control() {
                return self.err("unsupported character in a string");
            }
            self.pos += 1;
        }
        self.err("unterminated string")
    }

    fn word(&mut self) -> &[u8] {
        self.skip_space();
        let start = self.pos;
        while let Some(c) = self.text.get(self.pos) {
            if c.is_ascii_alphanumeric() || *c == b'_' {
                self.pos += 1;
            } else {
                break;
            }
        }
        &self.text[start..self.pos]
    }

    /// A tuple of non-negative integers: `()`, `(n,)`, `(n, m)`, ...
    fn shape(&mut self) -> Result<Vec<u64>, NpyError> {
        self.expect(b'(', "expected a tuple for 'shape'")?;
        let mut dims = Vec::new();
        loop {
            if self.peek() == Some(b')') {
                self.pos += 1;
                return Ok(dims);
            }
            self.skip_space();
            let start = self.pos;
            let digits = self.word().to_vec();
            let at = |reason| NpyError::BadHeader {
                offset: self.base + start,
                reason,
            };
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(at("expected a non-negative integer in 'shape'"));
            }
            let mut v: u64 = 0;
            for d in digits {
                v = v
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(d - b'0')))
                    .ok_or_else(|| at("dimension too large"))?;
            }
            if dims.len() >= 32 {
                return self.err("too many dimensions");
            }
            dims.push(v);
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b')') => {}
                _ => return self.err("expected ',' or ')' in 'shape'"),
            }
        }
    }
}

fn parse_dict(text: &[u8], base: usize) -> Result<Fields, NpyError> {
    let mut c = Cursor { text, pos: 0, base };
    c.expect(b'{', "expected '{'")?;
    let mut descr: Option<String> = None;
    let mut fortran: Option<bool> = None;
    let mut shape: Option<Vec<u64>> = None;
    loop {
        if c.peek() == Some(b'}') {
            c.pos += 1;
            break;
        }
        let key = c.string()?.to_vec();
        c.expect(b':', "expected ':' after a key")?;
        match key.as_slice() {
            b"descr" => {
                if c.peek() != Some(b'\'') && c.peek() != Some(b'"') {
                    // A list: a structured dtype.
                    return Err(NpyError::UnsupportedDtype {
                        descr: "a structured dtype".to_string(),
                    });
                }
                let d = c.string()?;
                descr = Some(String::from_utf8_lossy(d).into_owned());
            }
            b"fortran_order" => {
                fortran = Some(match c.word() {
                    b"True" => true,
                    b"False" => false,
                    _ => return c.err("expected True or False for 'fortran_order'"),
                });
            }
            b"shape" => shape = Some(c.shape()?),
            other => {
                return Err(NpyError::UnknownKey {
                    key: String::from_utf8_lossy(other).into_owned(),
                })
            }
        }
        match c.peek() {
            Some(b',') => c.pos += 1,
            Some(b'}') => {}
            _ => return c.err("expected ',' or '}' after a value"),
        }
    }
    // Only padding may follow the dict.
    if c.peek().is_some() {
        return c.err("unexpected text after the header dict");
    }
    let descr = descr.ok_or(NpyError::MissingKey { key: "descr" })?;
    let fortran = fortran.ok_or(NpyError::MissingKey {
        key: "fortran_order",
    })?;
    let shape = shape.ok_or(NpyError::MissingKey { key: "shape" })?;
    let dtype = match descr.as_str() {
        "<f8" => Dtype::F64,
        "<f4" => Dtype::F32,
        _ => return Err(NpyError::UnsupportedDtype { descr }),
    };
    Ok(Fields {
        dtype,
        shape,
        fortran,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An NPY file as `numpy.save` writes it (header padded so the data is 64-aligned).
    pub(crate) fn npy(version: u8, descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        let prefix = if version == 1 { 10 } else { 12 };
        let mut header = dict.into_bytes();
        let total = (prefix + header.len() + 1).div_ceil(64) * 64;
        header.resize(total - prefix - 1, b' ');
        header.push(b'\n');
        let mut out = MAGIC.to_vec();
        out.extend([version, 0]);
        if version == 1 {
            out.extend((header.len() as u16).to_le_bytes());
        } else {
            out.extend((header.len() as u32).to_le_bytes());
        }
        out.extend(header);
        out.extend(data);
        out
    }

    pub(crate) fn f8(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn tables_in_c_and_fortran_order_give_the_same_columns() {
        // 3 rows × 2 columns: [[1, 2], [3, 4], [5, 6]].
        let c_order = npy(1, "<f8", "(3, 2)", &f8(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        let mut fortran = npy(1, "<f8", "(3, 2)", &f8(&[1.0, 3.0, 5.0, 2.0, 4.0, 6.0]));
        let at = fortran.windows(5).position(|w| w == b"False").unwrap_or(0);
        fortran.splice(at..at + 5, *b"True ");
        let f4: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let c_f4 = npy(1, "<f4", "(3, 2)", &f4);
        for bytes in [&c_order, &fortran, &c_f4] {
            let t = parse_table_header(bytes).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((t.rows, t.columns), (3, 2));
            let mut out = vec![Vec::new(), Vec::new(), Vec::new()];
            table_columns(bytes, &t, &[1, 0, 7], &mut out);
            assert_eq!(out, vec![vec![2.0, 4.0, 6.0], vec![1.0, 3.0, 5.0], vec![]]);
        }
        let one = npy(1, "<f8", "(2,)", &f8(&[1.0, 2.0]));
        assert_eq!(
            parse_table_header(&one).map(|t| (t.rows, t.columns)),
            Ok((2, 1))
        );
        assert_eq!(
            parse_table_header(&npy(1, "<f8", "(1, 1, 2)", &f8(&[1.0, 2.0]))),
            Err(NpyError::NotATable {
                shape: "1, 1, 2".into()
            })
        );
        assert_eq!(dimensions(&c_order[..20]), Err(NpyError::TruncatedHeader));
        assert_eq!(dimensions(&c_order[..c_order.len() - 48]), Ok(2));
    }

    #[test]
    fn reads_float64_in_every_version() {
        let values = [1.5, -0.0, 0.0, f64::MAX, 5e-324, -3.25];
        for version in [1, 2, 3] {
            let bytes = npy(version, "<f8", "(6,)", &f8(&values));
            let got = parse_npy(&bytes).unwrap_or_else(|e| panic!("v{version}: {e}"));
            let got: Vec<u64> = got.iter().map(|v| v.to_bits()).collect();
            let want: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "v{version}");
            assert_eq!(parse_header(&bytes).map(|h| h.data_offset % 64), Ok(0));
        }
    }

    #[test]
    fn reads_float32_widened_exactly() {
        let values = [0.1f32, -2.5, 1e-40, f32::MAX];
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let got = parse_npy(&npy(1, "<f4", "(4,)", &data));
        let want: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        assert_eq!(got, Ok(want));
    }

    #[test]
    fn accepts_double_quotes_spacing_and_key_order() {
        let dict = b"{\"shape\":(2,),\"fortran_order\":False,\"descr\":\"<f8\"}";
        let mut bytes = MAGIC.to_vec();
        bytes.extend([1, 0]);
        bytes.extend((dict.len() as u16).to_le_bytes());
        bytes.extend(dict);
        bytes.extend(f8(&[1.0, 2.0]));
        assert_eq!(parse_npy(&bytes), Ok(vec![1.0, 2.0]));
        // Empty arrays parse (KS then refuses the empty sample).
        assert_eq!(parse_npy(&npy(1, "<f8", "(0,)", &[])), Ok(vec![]));
    }

    #[test]
    fn rejects_what_it_does_not_support_clearly() {
        let data = f8(&[1.0, 2.0]);
        let cases: Vec<(Vec<u8>, NpyError)> = vec![
            (b"1.0\n2.0\n".to_vec(), NpyError::NotNpy),
            (b"\x93NUM".to_vec(), NpyError::NotNpy),
            (b"\x93NUMPY\x01".to_vec(), NpyError::TruncatedHeader),
            (
                b"\x93NUMPY\x04\x00\x00\x00".to_vec(),
                NpyError::UnsupportedVersion { major: 4, minor: 0 },
            ),
            (
                b"\x93NUMPY\x01\x00\x50\x00{".to_vec(),
                NpyError::TruncatedHeader,
            ),
            (
                b"\x93NUMPY\x02\x00\xff\xff\xff\x7f".to_vec(),
                NpyError::HeaderTooLong {
                    len: 0x7fff_ffff,
                    max: MAX_HEADER_LEN,
                },
            ),
            (
                npy(1, ">f8", "(2,)", &data),
                NpyError::UnsupportedDtype {
                    descr: ">f8".into(),
                },
            ),
            (
                npy(1, "<i8", "(2,)", &data),
                NpyError::UnsupportedDtype {
                    descr: "<i8".into(),
                },
            ),
            (
                npy(1, "<f8", "(1, 2)", &data),
                NpyError::NotOneDimensional {
                    shape: "1, 2".into(),
                },
            ),
            (
                npy(1, "<f8", "()", &data[..8]),
                NpyError::NotOneDimensional { shape: "".into() },
            ),
            (
                npy(1, "<f8", "(3,)", &data),
                NpyError::DataLength {
                    count: 3,
                    expected: 24,
                    found: 16,
                },
            ),
            (
                npy(1, "<f8", "(1,)", &data),
                NpyError::DataLength {
                    count: 1,
                    expected: 8,
                    found: 16,
                },
            ),
            (
                npy(1, "<f8", "(99999999999999999999,)", &data),
                NpyError::BadHeader {
                    // 10 bytes of preamble, then the dict up to the digits.
                    offset: 10 + "{'descr': '<f8', 'fortran_order': False, 'shape': (".len(),
                    reason: "dimension too large",
                },
            ),
            (
                npy(1, "<f8", "(4611686018427387904,)", &data),
                NpyError::DataLength {
                    count: 4611686018427387904,
                    expected: u64::MAX,
                    found: 16,
                },
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse_npy(&bytes), Err(want.clone()), "{want}");
        }
        let fortran = {
            let mut b = npy(1, "<f8", "(2,)", &data);
            let at = b.windows(5).position(|w| w == b"False").unwrap_or(0);
            b.splice(at..at + 5, *b"True ");
            b
        };
        assert_eq!(parse_npy(&fortran), Err(NpyError::FortranOrder));
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        let data = f8(&[1.0]);
        for dict in [
            "",
            "{",
            "{'descr'",
            "{'descr': '<f8'",
            "{'descr': '<f8', 'shape': (1,)}",
            "{'descr': '<f8', 'fortran_order': Maybe, 'shape': (1,)}",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
            "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,)}",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)} trailing",
            "{'descr': '<f\\8', 'fortran_order': False, 'shape': (1,)}",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,",
            "{'descr': '<f8' 'fortran_order': False}",
        ] {
            let mut bytes = MAGIC.to_vec();
            bytes.extend([1, 0]);
            bytes.extend((dict.len() as u16).to_le_bytes());
            bytes.extend(dict.as_bytes());
            bytes.extend(&data);
            assert!(parse_npy(&bytes).is_err(), "{dict}");
        }
        // Every prefix of a good file, and every single-byte corruption of its header.
        let good = npy(1, "<f8", "(1,)", &data);
        for len in 0..good.len() {
            let _ = parse_npy(&good[..len]);
        }
        for i in 0..good.len() - 8 {
            for b in [0u8, b'(', b')', b'\'', b',', 0xff] {
                let mut bad = good.clone();
                bad[i] = b;
                let _ = parse_npy(&bad);
            }
        }
    }

    #[test]
    fn float64_is_read_in_place_only_where_it_is_aligned() {
        let values = [1.5, -2.0, 1e300];
        let bytes = npy(1, "<f8", "(3,)", &f8(&values));
        // Every start in memory: in place exactly when the data starts 8-aligned.
        let mut buf = vec![0u8; bytes.len() + 8];
        for shift in 0..8 {
            buf[shift..shift + bytes.len()].copy_from_slice(&bytes);
            let at = &buf[shift..shift + bytes.len()];
            let Ok(header) = parse_header(at) else {
                panic!("header at shift {shift}");
            };
            let aligned = (at.as_ptr() as usize + header.data_offset).is_multiple_of(8);
            match f64_in_place(at, &header) {
                Some(v) => {
                    assert!(aligned, "shift {shift}");
                    assert_eq!(v, &values[..]);
                }
                None => assert!(!aligned || cfg!(target_endian = "big"), "shift {shift}"),
            }
            assert_eq!(parse_npy(at), Ok(values.to_vec()));
        }
        // Not float64, or not the header of these bytes: never in place.
        let f4 = npy(1, "<f4", "(2,)", &[0; 8]);
        let h4 = parse_header(&f4).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f64_in_place(&f4, &h4), None);
        let h8 = NpyHeader {
            dtype: Dtype::F64,
            ..h4
        };
        assert_eq!(f64_in_place(&f4, &h8), None);
    }
}
