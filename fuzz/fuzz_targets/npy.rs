//! Fuzz target: `.npy` bytes through `formats::npy`'s pure parser. An error or an array, never a
//! panic; the header and the whole-file parse agree; an accepted array is exactly as long as
//! its header says, and `<f8` data read in place is bit for bit the decoded copy.
//!
//! Input: the whole file. It is copied to an 8-aligned buffer first, so `<f8` data at an
//! 8-aligned offset (where `numpy.save` puts it) takes the in-place path, as a mapped file does.

#![no_main]

use driftgauge::formats::npy::{
    f64_in_place, parse_header, parse_npy, Dtype, NpyError, MAX_HEADER_LEN,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = vec![0u8; data.len() + 7];
    let start = buf.as_ptr().align_offset(8).min(7);
    buf[start..start + data.len()].copy_from_slice(data);
    let bytes = &buf[start..start + data.len()];

    let header = parse_header(bytes);
    let values = parse_npy(bytes);
    match (&header, &values) {
        (Ok(h), Ok(v)) => {
            let size = match h.dtype {
                Dtype::F64 => 8,
                Dtype::F32 => 4,
            };
            assert_eq!(v.len(), h.count);
            assert_eq!(h.data_offset + size * h.count, bytes.len(), "{h:?}");
            assert!(h.data_offset <= 12 + MAX_HEADER_LEN, "{h:?}");
            let in_place = f64_in_place(bytes, h);
            match h.dtype {
                Dtype::F64 => {
                    let aligned = (bytes.as_ptr() as usize + h.data_offset) % 8 == 0;
                    if cfg!(target_endian = "little") {
                        assert_eq!(in_place.is_some(), aligned, "{h:?}");
                    }
                    if let Some(p) = in_place {
                        let a: Vec<u64> = p.iter().map(|x| x.to_bits()).collect();
                        let b: Vec<u64> = v.iter().map(|x| x.to_bits()).collect();
                        assert_eq!(a, b);
                    }
                }
                Dtype::F32 => {
                    assert!(in_place.is_none());
                    for x in v {
                        assert!(x.is_nan() || f64::from(*x as f32).to_bits() == x.to_bits());
                    }
                }
            }
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            match a {
                NpyError::BadHeader { offset, .. } => assert!(*offset <= bytes.len(), "{a}"),
                NpyError::HeaderTooLong { len, max } => assert!(len > max, "{a}"),
                NpyError::DataLength {
                    expected, found, ..
                } => assert_ne!(expected, found, "{a}"),
                _ => {}
            }
            // Every error renders.
            let _ = a.to_string();
        }
        _ => panic!("parse_header {header:?} but parse_npy {values:?}"),
    }
});
