//! Sorting samples fast: an LSD radix sort on the bit patterns of `f64`.
//!
//! [`sort_key`] maps a double to a `u64` whose unsigned order is `f64::total_cmp`'s order
//! (flip every bit of a negative number, only the sign bit of a positive one), so sorting the
//! keys sorts the values. [`sort_samples`] sorts by those keys in 11-bit digits (six passes,
//! one counting pass for all of them, passes whose digit is the same for every value
//! skipped), moving the values themselves between the slice and one scratch buffer. The
//! result is bit for bit `values.sort_unstable_by(f64::total_cmp)`: `-0.0` before `0.0`, and
//! NaNs (which the detectors never pass in) at the ends where `total_cmp` puts them.
//!
//! Short slices go to the standard library's sort, which is faster there.

use std::borrow::Cow;

/// Below this length the standard library's pattern-defeating quicksort wins.
const RADIX_MIN_LEN: usize = 2048;
/// Bits per radix digit: 2^11 counters of 4 bytes per pass stay in L1 while counting.
const DIGIT_BITS: u32 = 11;
const BUCKETS: usize = 1 << DIGIT_BITS;
const PASSES: usize = 64_usize.div_ceil(DIGIT_BITS as usize);

/// The order-preserving key of `x`: `sort_key(a) < sort_key(b)` iff
/// `a.total_cmp(&b) == Less`. `-0.0` maps just below `0.0`.
#[inline]
pub fn sort_key(x: f64) -> u64 {
    let bits = x.to_bits();
    // Negative: flip everything (larger magnitude sorts lower). Positive: set the sign bit.
    let mask = (((bits as i64) >> 63) as u64) | (1 << 63);
    bits ^ mask
}

/// Below this many values each, [`sort_both`] sorts on the calling thread: a hand-off to
/// rayon costs more than it saves.
pub const PARALLEL_MIN_LEN: usize = 1 << 16;

/// Sorts two samples as [`sort_samples`] does, side by side on rayon's pool when both are
/// large.
pub fn sort_both(a: &mut [f64], b: &mut [f64]) {
    if a.len().min(b.len()) >= PARALLEL_MIN_LEN {
        rayon::join(|| sort_samples(a), || sort_samples(b));
    } else {
        sort_samples(a);
        sort_samples(b);
    }
}

/// Two samples sorted (see [`sort_samples`]): one the caller gave away in place, a borrowed
/// one into a copy; side by side on rayon's pool when both are large. A caller that owns its
/// arrays saves a copy of each (and the page faults of writing it).
pub fn sorted_cows<'a, 'b>(
    a: Cow<'a, [f64]>,
    b: Cow<'b, [f64]>,
) -> (Cow<'a, [f64]>, Cow<'b, [f64]>) {
    if a.len().min(b.len()) >= PARALLEL_MIN_LEN {
        rayon::join(|| sorted_cow(a), || sorted_cow(b))
    } else {
        (sorted_cow(a), sorted_cow(b))
    }
}

/// `c` sorted: in place when owned, into a copy when borrowed.
pub fn sorted_cow(c: Cow<'_, [f64]>) -> Cow<'_, [f64]> {
    match c {
        Cow::Owned(mut v) => {
            sort_samples(&mut v);
            Cow::Owned(v)
        }
        Cow::Borrowed(s) => Cow::Owned(sorted_copy(s)),
    }
}

/// Whether `v` is ascending (`-0.0` and `0.0` in either order): what the `*_sorted` entry
/// points of the detectors `debug_assert`.
pub fn ascending(v: &[f64]) -> bool {
    v.is_sorted_by(|a, b| a <= b)
}

/// The two ascending (`total_cmp`) slices merged into one, in order: what sorting their
/// concatenation gives, bit for bit.
pub fn merge_sorted(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if b[j].total_cmp(&a[i]).is_lt() {
            out.push(b[j]);
            j += 1;
        } else {
            out.push(a[i]);
            i += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// The inverse of [`sort_key`].
#[inline]
pub fn from_sort_key(key: u64) -> f64 {
    // A key with the top bit set came from a positive number.
    let mask = if key >> 63 == 1 { 1 << 63 } else { u64::MAX };
    f64::from_bits(key ^ mask)
}

/// Sorts `values` ascending in `f64::total_cmp` order, bit-identical to
/// `values.sort_unstable_by(f64::total_cmp)`; O(n) with one scratch buffer of `n` values.
pub fn sort_samples(values: &mut [f64]) {
    if values.len() < RADIX_MIN_LEN || values.len() > u32::MAX as usize {
        values.sort_unstable_by(f64::total_cmp);
        return;
    }
    radix_sort(values);
}

/// Returns a sorted copy of `values` (see [`sort_samples`]).
pub fn sorted_copy(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    sort_samples(&mut v);
    v
}

#[inline]
fn digit(x: f64, pass: usize) -> usize {
    ((sort_key(x) >> (pass as u32 * DIGIT_BITS)) as usize) & (BUCKETS - 1)
}

fn radix_sort(values: &mut [f64]) {
    let n = values.len();
    // One read for the histograms of every digit.
    let mut counts = vec![[0u32; BUCKETS]; PASSES];
    for &x in values.iter() {
        let key = sort_key(x);
        for (pass, c) in counts.iter_mut().enumerate() {
            c[((key >> (pass as u32 * DIGIT_BITS)) as usize) & (BUCKETS - 1)] += 1;
        }
    }
    let mut scratch = vec![0.0f64; n];
    let mut in_values = true;
    for (pass, c) in counts.iter_mut().enumerate() {
        if c.iter().any(|&k| k as usize == n) {
            // Every value has the same digit here: this pass would not move anything.
            continue;
        }
        let mut sum = 0u32;
        for k in c.iter_mut() {
            let here = *k;
            *k = sum;
            sum += here;
        }
        let (src, dst) = if in_values {
            (&*values, &mut scratch[..])
        } else {
            (&scratch[..], &mut *values)
        };
        scatter(src, dst, c, pass);
        in_values = !in_values;
    }
    if !in_values {
        values.copy_from_slice(&scratch);
    }
}

/// One stable counting-sort pass from `src` into `dst` by digit `pass`; `offsets` holds the
/// first slot of each digit.
fn scatter(src: &[f64], dst: &mut [f64], offsets: &mut [u32; BUCKETS], pass: usize) {
    for &x in src {
        let d = digit(x, pass);
        let slot = offsets[d] as usize;
        // Offsets are prefix sums of the counts of `src`, so every slot is in range.
        if let Some(out) = dst.get_mut(slot) {
            *out = x;
        }
        offsets[d] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_two_sorted_samples_is_sorting_their_concatenation() {
        let mut a = vec![3.0, -0.0, 1.0, f64::MIN, 2.5, 2.5];
        let mut b = vec![0.0, 2.5, -1.0, 7.0];
        sort_both(&mut a, &mut b);
        let merged = merge_sorted(&a, &b);
        let mut all: Vec<f64> = a.iter().chain(&b).copied().collect();
        all.sort_unstable_by(f64::total_cmp);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&merged), bits(&all));
        assert_eq!(merge_sorted(&[], &b), b);
    }

    fn check(values: &[f64]) {
        let mut want = values.to_vec();
        want.sort_unstable_by(f64::total_cmp);
        let got = sorted_copy(values);
        let got_bits: Vec<u64> = got.iter().map(|x| x.to_bits()).collect();
        let want_bits: Vec<u64> = want.iter().map(|x| x.to_bits()).collect();
        assert_eq!(got_bits, want_bits, "len {}", values.len());
        // And the radix path itself, whatever the length.
        let mut r = values.to_vec();
        radix_sort(&mut r);
        let r_bits: Vec<u64> = r.iter().map(|x| x.to_bits()).collect();
        assert_eq!(r_bits, want_bits, "radix, len {}", values.len());
    }

    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0
        }
        fn f64_any_finite(&mut self) -> f64 {
            loop {
                let x = f64::from_bits(self.next());
                if x.is_finite() {
                    return x;
                }
            }
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn keys_order_like_total_cmp() {
        let xs = [
            f64::MIN,
            -1.0,
            -f64::MIN_POSITIVE,
            -5e-324,
            -0.0,
            0.0,
            5e-324,
            f64::MIN_POSITIVE,
            1.0,
            f64::MAX,
        ];
        for w in xs.windows(2) {
            assert!(sort_key(w[0]) < sort_key(w[1]), "{} {}", w[0], w[1]);
        }
        for &x in &xs {
            assert_eq!(from_sort_key(sort_key(x)).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn adversarial_inputs_match_std_sort() {
        let mut rng = Lcg(42);
        let specials = [
            0.0,
            -0.0,
            5e-324,
            -5e-324,
            2.2250738585072014e-308,
            -2.2250738585072014e-308,
            1.7e308,
            -1.7e308,
            f64::MAX,
            f64::MIN,
            1.0,
            -1.0,
        ];
        for len in [0usize, 1, 2, 3, 100, 2047, 2048, 2049, 5000, 70_000] {
            // Signed zeros only, mixed.
            let zeros: Vec<f64> = (0..len)
                .map(|_| {
                    if rng.next().is_multiple_of(2) {
                        0.0
                    } else {
                        -0.0
                    }
                })
                .collect();
            check(&zeros);
            // Specials with duplicates.
            let sp: Vec<f64> = (0..len)
                .map(|_| specials[(rng.next() % specials.len() as u64) as usize])
                .collect();
            check(&sp);
            // Any finite bit pattern (subnormals, huge magnitudes, both signs).
            let any: Vec<f64> = (0..len).map(|_| rng.f64_any_finite()).collect();
            check(&any);
            // Few distinct values.
            let few: Vec<f64> = (0..len).map(|_| (rng.next() % 7) as f64 - 3.0).collect();
            check(&few);
            // Sorted, reversed, and uniform in [0, 1).
            let mut sorted: Vec<f64> = (0..len).map(|_| rng.unit()).collect();
            check(&sorted);
            sorted.sort_unstable_by(f64::total_cmp);
            check(&sorted);
            sorted.reverse();
            check(&sorted);
            // Subnormals only.
            let sub: Vec<f64> = (0..len)
                .map(|_| {
                    f64::from_bits(rng.next() % (1 << 52))
                        * if rng.next().is_multiple_of(2) {
                            1.0
                        } else {
                            -1.0
                        }
                })
                .collect();
            check(&sub);
        }
    }

    #[test]
    fn nan_goes_where_total_cmp_puts_it() {
        let mut v: Vec<f64> = (0..3000).map(|i| (i % 17) as f64 - 8.0).collect();
        v[10] = f64::NAN;
        v[20] = -f64::NAN;
        v[30] = f64::INFINITY;
        v[40] = f64::NEG_INFINITY;
        check(&v);
    }
}
