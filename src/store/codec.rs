//! A small, explicit binary encoding for store records: little-endian integers and floats,
//! length-prefixed strings and arrays. Decoding checks every length against what is left, so a
//! damaged record is an error, never a panic or a huge allocation.

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("record truncated or malformed at byte {at}: {what}")]
pub struct DecodeError {
    pub at: usize,
    pub what: &'static str,
}

#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn opt_i64(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(x) => self.u8(1).i64(x),
            None => self.u8(0),
        }
    }
    pub fn opt_f64(&mut self, v: Option<f64>) -> &mut Self {
        match v {
            Some(x) => self.u8(1).f64(x),
            None => self.u8(0),
        }
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    pub fn f64s<'a>(&mut self, v: impl ExactSizeIterator<Item = &'a f64>) -> &mut Self {
        self.u64(v.len() as u64);
        self.buf.reserve(v.len() * 8);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
        self
    }
    pub fn i64s<'a>(&mut self, v: impl ExactSizeIterator<Item = &'a i64>) -> &mut Self {
        self.u64(v.len() as u64);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
        self
    }
}

pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, at: 0 }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError { at: self.at, what })?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn arr8(&mut self, what: &'static str) -> Result<[u8; 8], DecodeError> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.arr8(what)?))
    }
    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.arr8(what)?))
    }
    pub fn f64(&mut self, what: &'static str) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.arr8(what)?))
    }
    pub fn opt_i64(&mut self, what: &'static str) -> Result<Option<i64>, DecodeError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => Ok(Some(self.i64(what)?)),
            _ => Err(DecodeError {
                at: self.at - 1,
                what,
            }),
        }
    }
    pub fn opt_f64(&mut self, what: &'static str) -> Result<Option<f64>, DecodeError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => Ok(Some(self.f64(what)?)),
            _ => Err(DecodeError {
                at: self.at - 1,
                what,
            }),
        }
    }
    fn len(&mut self, elem: usize, what: &'static str) -> Result<usize, DecodeError> {
        let n = self.u64(what)?;
        let left = (self.buf.len() - self.at) as u64;
        if n.checked_mul(elem as u64).is_none_or(|b| b > left) {
            return Err(DecodeError { at: self.at, what });
        }
        Ok(n as usize)
    }
    pub fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.len(1, what)?;
        self.take(n, what)
    }
    pub fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let at = self.at;
        let b = self.bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError { at, what })
    }
    pub fn f64s(&mut self, what: &'static str) -> Result<Vec<f64>, DecodeError> {
        let n = self.len(8, what)?;
        let s = self.take(n * 8, what)?;
        Ok(s.chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }
    pub fn i64s(&mut self, what: &'static str) -> Result<Vec<i64>, DecodeError> {
        let n = self.len(8, what)?;
        let s = self.take(n * 8, what)?;
        Ok(s.chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.at == self.buf.len() {
            Ok(())
        } else {
            Err(DecodeError {
                at: self.at,
                what: "trailing bytes",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = Writer::default();
        w.u8(7)
            .i64(-3)
            .opt_f64(Some(-0.0))
            .opt_i64(None)
            .str("héllo")
            .f64s([1.5, f64::MAX].iter())
            .i64s([9].iter());
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.u8("a").unwrap(), 7);
        assert_eq!(r.i64("b").unwrap(), -3);
        assert_eq!(
            r.opt_f64("c").unwrap().map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
        assert_eq!(r.opt_i64("d").unwrap(), None);
        assert_eq!(r.string("e").unwrap(), "héllo");
        assert_eq!(r.f64s("f").unwrap(), vec![1.5, f64::MAX]);
        assert_eq!(r.i64s("g").unwrap(), vec![9]);
        r.finish().unwrap();
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let mut w = Writer::default();
        w.f64s([1.0, 2.0].iter());
        for cut in 0..w.buf.len() {
            assert!(Reader::new(&w.buf[..cut]).f64s("x").is_err());
        }
        // A huge length prefix does not allocate.
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        assert!(Reader::new(&huge).f64s("x").is_err());
        assert!(Reader::new(&huge).bytes("x").is_err());
    }
}
