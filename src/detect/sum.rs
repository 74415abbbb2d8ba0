//! Sums as NumPy computes them (`np.sum` on `float64`), so detectors that port SciPy add their
//! terms in the same order and get the same bits.
//!
//! NumPy's add reduction starts from `0.0` and adds a pairwise sum of the whole array
//! (`DOUBLE_pairwise_sum` in `loops_utils.h.src`): fewer than 8 values are added one by one;
//! up to 128 values are added into eight running accumulators (element `i` into accumulator
//! `i % 8`), which are combined as `((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7))`, and the remainder
//! past the last multiple of 8 is added one by one; longer arrays are split at half the
//! length rounded down to a multiple of 8 and both halves summed the same way. A contiguous
//! 2-D array summed whole is summed as its flattened row-major values.

/// `np.sum(values)` for a contiguous `float64` array, bit for bit.
pub fn numpy_sum(values: &[f64]) -> f64 {
    0.0 + pairwise(values)
}

/// `np.sum` of `f(i)` for `i in 0..len`, without materialising the terms.
pub fn numpy_sum_by(len: usize, f: impl Fn(usize) -> f64) -> f64 {
    0.0 + pairwise_by(0, len, &f)
}

const BLOCK: usize = 128;

/// `np.sum` of values handed in one at a time, in order, when their number is known up
/// front: the same bits as [`numpy_sum`] of them all, holding at most one block of 128 values
/// and one partial sum per block (so a long walk need not store its terms).
#[derive(Debug, Clone)]
pub struct StreamSum {
    n: usize,
    /// The lengths of the blocks NumPy's recursion ends in, in order.
    leaves: Vec<usize>,
    /// The block being filled: `buf[..len]`, to hold `want` values.
    buf: [f64; BLOCK],
    len: usize,
    want: usize,
    sums: Vec<f64>,
}

impl StreamSum {
    /// A sum of `n` values to come.
    pub fn new(n: usize) -> Self {
        let mut leaves = Vec::with_capacity(n / (BLOCK / 2) + 1);
        leaf_lengths(n, &mut leaves);
        let mut s = StreamSum {
            n,
            want: leaves[0],
            leaves,
            buf: [0.0; BLOCK],
            len: 0,
            sums: Vec::new(),
        };
        s.sums.reserve_exact(s.leaves.len());
        s.close_leaves();
        s
    }

    /// Takes the next value; values past the `n` announced are not summed.
    #[inline]
    pub fn push(&mut self, x: f64) {
        if self.len < self.want {
            self.buf[self.len] = x;
            self.len += 1;
            if self.len == self.want {
                self.close_leaves();
            }
        }
    }

    /// Sums the blocks that are full and moves on to the next (none past the last).
    fn close_leaves(&mut self) {
        while self.len == self.want && self.sums.len() < self.leaves.len() {
            self.sums.push(pairwise(&self.buf[..self.len]));
            self.len = 0;
            // Past the last block nothing more is taken (`want` stays 0).
            self.want = self.leaves.get(self.sums.len()).copied().unwrap_or(0);
        }
    }

    /// The sum, as `np.sum` gives it; values not handed in count as zeros.
    pub fn finish(self) -> f64 {
        0.0 + self.finish_part()
    }

    /// The pairwise sum without `np.sum`'s leading `0.0 +`: one half of a [`top_split`],
    /// whose two halves add up as `0.0 + (left + right)`.
    pub fn finish_part(mut self) -> f64 {
        while self.sums.len() < self.leaves.len() {
            self.push(0.0);
        }
        let mut next = 0;
        combine(self.n, &self.sums, &mut next)
    }
}

/// Where NumPy's pairwise sum of `n` values splits them first (`None`: it does not, they
/// are one block): the sums of `..n2` and `n2..` are independent, so two threads may make
/// them, and `0.0 + (left + right)` is `np.sum` of all, bit for bit.
pub fn top_split(n: usize) -> Option<usize> {
    (n > BLOCK).then(|| {
        let n2 = n / 2;
        n2 - n2 % 8
    })
}

fn leaf_lengths(n: usize, out: &mut Vec<usize>) {
    if n <= BLOCK {
        out.push(n);
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        leaf_lengths(n2, out);
        leaf_lengths(n - n2, out);
    }
}

fn combine(n: usize, sums: &[f64], next: &mut usize) -> f64 {
    if n <= BLOCK {
        let s = sums.get(*next).copied().unwrap_or(0.0);
        *next += 1;
        s
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        let left = combine(n2, sums, next);
        left + combine(n - n2, sums, next)
    }
}

fn pairwise(a: &[f64]) -> f64 {
    pairwise_by(0, a.len(), &|i| a[i])
}

fn pairwise_by(start: usize, n: usize, f: &impl Fn(usize) -> f64) -> f64 {
    if n < 8 {
        let mut res = 0.0;
        for i in start..start + n {
            res += f(i);
        }
        res
    } else if n <= BLOCK {
        let mut r = [0.0f64; 8];
        for (j, r) in r.iter_mut().enumerate() {
            *r = f(start + j);
        }
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (j, r) in r.iter_mut().enumerate() {
                *r += f(start + i + j);
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for i in whole..n {
            res += f(start + i);
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_by(start, n2, f) + pairwise_by(start + n2, n - n2, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_sum_is_numpys_bit_for_bit() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for n in [0, 1, 7, 8, 9, 127, 128, 129, 300, 1000, 4099, 100_003] {
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Wide magnitudes, so the order of the additions shows in the bits.
                    f64::from_bits(x >> 12 | 0x3FF0_0000_0000_0000)
                        * 10f64.powi((x % 40) as i32 - 20)
                })
                .collect();
            let mut s = StreamSum::new(n);
            v.iter().for_each(|&y| s.push(y));
            assert_eq!(s.finish().to_bits(), numpy_sum(&v).to_bits(), "n = {n}");
            if let Some(n2) = top_split(n) {
                let part = |v: &[f64]| {
                    let mut s = StreamSum::new(v.len());
                    v.iter().for_each(|&y| s.push(y));
                    s.finish_part()
                };
                let halves = 0.0 + (part(&v[..n2]) + part(&v[n2..]));
                assert_eq!(halves.to_bits(), numpy_sum(&v).to_bits(), "halves, n = {n}");
            }
        }
    }

    #[test]
    fn small_sums_are_sequential() {
        assert_eq!(numpy_sum(&[]), 0.0);
        assert_eq!(numpy_sum(&[1.0, 2.0, 3.5]), 6.5);
        // 0.0 + (-0.0) is 0.0, as np.sum([-0.0]) is.
        assert!(numpy_sum(&[-0.0]).is_sign_positive());
    }

    #[test]
    fn blocks_use_eight_accumulators() {
        // With 9 values the ninth is added after the tree of the first eight:
        // ((1e16 + -1e16) + ...) differs from a left-to-right sum.
        let v = [1e16, 1.0, -1e16, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let sequential: f64 = v.iter().fold(0.0, |a, b| a + b);
        let tree = ((1e16 + 1.0) + (-1e16 + 1.0)) + ((1.0 + 1.0) + (1.0 + 1.0)) + 1.0;
        assert_eq!(numpy_sum(&v), tree);
        assert_ne!(tree, sequential);
    }

    #[test]
    fn by_index_matches_slice() {
        let v: Vec<f64> = (0..1000).map(|i| 1.0 / (1.0 + i as f64).powi(2)).collect();
        assert_eq!(numpy_sum(&v), numpy_sum_by(v.len(), |i| v[i]));
    }

    #[test]
    fn long_arrays_split_on_multiples_of_eight() {
        // np.sum(1.0 / np.arange(1.0, 1001.0)) with NumPy 2.4.6; a left-to-right sum gives
        // 7.485470860550343.
        let v: Vec<f64> = (1..=1000).map(|i| 1.0 / i as f64).collect();
        assert_eq!(numpy_sum(&v), 7.485470860550345);
    }
}
