//! Where the KS statistic is found: the merge walk over two sorted samples, and the exact
//! bounds that let large samples be walked only where an extreme can be (segments of sorted
//! input found by galloping; value buckets of unsorted input, so a large sample is never
//! sorted). The contract these keep — the plain walk's result, bit for bit — is in the parent
//! module's docs.

use super::Alternative;
use crate::detect::sort::{from_sort_key, sort_key, sort_samples};

/// The extremes of `diff` over `sorted(a) ++ sorted(b)`, with the value at the first index of
/// each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Extremes {
    pub(super) max_diff: f64,
    pub(super) max_loc: f64,
    pub(super) min_diff: f64,
    pub(super) min_loc: f64,
}

/// Running extremes of `diff` over groups of equal values, kept apart for the groups present
/// in `a` and those present in `b`: tracking the first strict improvement separately and
/// then preferring `a` on ties reproduces numpy's `argmax`/`argmin` over the concatenation
/// `sorted(a) ++ sorted(b)`, where every element of a group has the group's `diff`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tracker {
    pub(super) nf: f64,
    pub(super) mf: f64,
    pub(super) a_max: f64,
    pub(super) a_max_loc: f64,
    pub(super) a_min: f64,
    pub(super) a_min_loc: f64,
    pub(super) b_max: f64,
    pub(super) b_max_loc: f64,
    pub(super) b_min: f64,
    pub(super) b_min_loc: f64,
}

impl Tracker {
    pub(super) fn new(n: usize, m: usize) -> Self {
        Tracker {
            nf: n as f64,
            mf: m as f64,
            a_max: f64::NEG_INFINITY,
            a_max_loc: 0.0,
            a_min: f64::INFINITY,
            a_min_loc: 0.0,
            b_max: f64::NEG_INFINITY,
            b_max_loc: 0.0,
            b_min: f64::INFINITY,
            b_min_loc: 0.0,
        }
    }

    #[inline(always)]
    pub(super) fn see_a(&mut self, d: f64, loc: f64) {
        if d > self.a_max {
            self.a_max = d;
            self.a_max_loc = loc;
        }
        if d < self.a_min {
            self.a_min = d;
            self.a_min_loc = loc;
        }
    }

    #[inline(always)]
    pub(super) fn see_b(&mut self, d: f64, loc: f64) {
        if d > self.b_max {
            self.b_max = d;
            self.b_max_loc = loc;
        }
        if d < self.b_min {
            self.b_min = d;
            self.b_min_loc = loc;
        }
    }

    /// One merge walk over the distinct values of `a` and `b`, both sorted, which must hold
    /// every sample value of one interval of the value axis, `i0` reference values and `j0`
    /// current values lying below it. Intervals must be walked in increasing order. For each
    /// group of equal values (`==`, so `-0.0` and `0.0` together) the counts `i = #a <= v` and
    /// `j = #b <= v` give `diff = i as f64 / n as f64 - j as f64 / m as f64`.
    pub(super) fn walk(&mut self, a: &[f64], b: &[f64], i0: usize, j0: usize) {
        let mut t = *self;
        let (nf, mf) = (t.nf, t.mf);
        let diff = |i: usize, j: usize| (i0 + i) as f64 / nf - (j0 + j) as f64 / mf;
        let (n, m) = (a.len(), b.len());
        let (mut i, mut j) = (0usize, 0usize);
        while i < n && j < m {
            let (x, y) = (a[i], b[j]);
            if x < y {
                // Group only in `a`.
                let i1 = i;
                i += 1;
                while i < n && a[i] <= x {
                    i += 1;
                }
                t.see_a(diff(i, j), a[i1]);
            } else if y < x {
                // Group only in `b`.
                let j1 = j;
                j += 1;
                while j < m && b[j] <= y {
                    j += 1;
                }
                t.see_b(diff(i, j), b[j1]);
            } else {
                // x == y: the group is in both.
                let (i1, j1) = (i, j);
                i += 1;
                while i < n && a[i] <= x {
                    i += 1;
                }
                j += 1;
                while j < m && b[j] <= x {
                    j += 1;
                }
                let d = diff(i, j);
                t.see_a(d, a[i1]);
                t.see_b(d, b[j1]);
            }
        }
        // Tails: only one sample left; the other's count is final.
        while i < n {
            let i1 = i;
            i += 1;
            while i < n && a[i] <= a[i1] {
                i += 1;
            }
            t.see_a(diff(i, j), a[i1]);
        }
        while j < m {
            let j1 = j;
            j += 1;
            while j < m && b[j] <= b[j1] {
                j += 1;
            }
            t.see_b(diff(i, j), b[j1]);
        }
        *self = t;
    }

    /// A group of equal values ending where `i` reference and `j` current values are at or
    /// below it, with the first value of its reference part (`None` when it has none) and of
    /// its current part. The same `diff` and choices as [`Tracker::walk`] over that group.
    #[inline]
    pub(super) fn see_group(&mut self, i: usize, j: usize, loc_a: Option<f64>, loc_b: Option<f64>) {
        let d = i as f64 / self.nf - j as f64 / self.mf;
        if let Some(loc) = loc_a {
            self.see_a(d, loc);
        }
        if let Some(loc) = loc_b {
            self.see_b(d, loc);
        }
    }

    pub(super) fn finish(&self) -> Extremes {
        // The reference part comes first in the concatenation, so it wins ties.
        let (max_diff, max_loc) = if self.a_max >= self.b_max {
            (self.a_max, self.a_max_loc)
        } else {
            (self.b_max, self.b_max_loc)
        };
        let (min_diff, min_loc) = if self.a_min <= self.b_min {
            (self.a_min, self.a_min_loc)
        } else {
            (self.b_min, self.b_min_loc)
        };
        Extremes {
            max_diff,
            max_loc,
            min_diff,
            min_loc,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Walking only where an extreme can be
// ---------------------------------------------------------------------------------------------
//
// Cut the value axis into segments that never split a group of equal values, and count the
// reference (`ca`) and current (`cb`) values in each. With `q(i, j) = i*m - j*n`, the exact
// `diff` at a group end is `q / (n*m)`. At the end of a non-empty segment `q` is known from
// the counts alone, and it is the `q` of a real group end (the segment's last group); inside
// a segment starting at `q0`, every group end has `q0 - cb*n <= q <= q0 + ca*m`. So a segment
// whose upper bound is below the largest end-of-segment `q`, and whose lower bound is above
// the smallest, holds no group end reaching either extreme, and needs no walk.
//
// That argument is about exact values; the statistic is the float `diff`. Each `diff` is
// within `3 * 2^-53` of its exact value (three roundings of numbers in [-1, 1]), and exact
// values that differ differ by at least `1 / (n*m)`. With `n*m <= 2^49` that is more than
// twice the rounding error, so a smaller exact value always gives a strictly smaller float:
// the float maximum (and the first group reaching it, which the walk picks among the float
// ties) is among the groups with the largest exact `q`, which the kept segments hold. The
// kept segments are walked in increasing order, so "first" keeps its meaning.

/// `n * m` up to which pruning is exact (see above).
pub(super) const MAX_PRUNE_NM: u128 = 1 << 49;
/// Below this many values in all, a plain walk (and sort) is as fast.
pub(super) const PRUNE_MIN_LEN: usize = 4096;
/// Reference and current values per segment of the sorted walk, at most (ties aside).
pub(super) const BLOCK: usize = 64;
/// From this many values in all, the unsorted path runs the two samples' passes with
/// `rayon::join`.
pub(super) const PARALLEL_MIN_LEN: usize = 1 << 17;

pub(super) fn prunable(n: usize, m: usize) -> bool {
    n <= u32::MAX as usize && m <= u32::MAX as usize && (n as u128) * (m as u128) <= MAX_PRUNE_NM
}

/// Consecutive segments `first..=last` that must be walked, with the counts below them
/// (`i0`, `j0`) and in them (`na`, `nb`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Run {
    pub(super) first: usize,
    pub(super) last: usize,
    pub(super) i0: usize,
    pub(super) j0: usize,
    pub(super) na: usize,
    pub(super) nb: usize,
}

/// The runs of segments that may hold a group end deciding the result for `alternative`, in
/// increasing order, given the per-segment counts (see above). `greater` needs the maximum of
/// `diff` and `less` the minimum. `two-sided` needs both unless the counts already settle
/// which one wins: when even the lowest bound inside any segment, negated, is below the
/// largest `q` at a segment end, the minimum cannot win, and likewise the other way round.
/// (Exact values one apart give strictly ordered floats, as above, so the float comparison
/// SciPy makes, `minS > maxS`, comes out the same.) The side that is not needed is then
/// tracked only over the walked segments, which leaves it no better than the exact one, so
/// it still loses.
pub(super) fn candidate_runs(
    ca: &[u32],
    cb: &[u32],
    n: usize,
    m: usize,
    alternative: Alternative,
) -> Vec<Run> {
    candidate_runs_with::<false>(ca, cb, &[], n, m, alternative)
}

/// [`candidate_runs`] where `one[s]` says that segment `s` holds a single
/// group of equal values: its only group end is its end, so its bounds are that end's `q`.
pub(super) fn candidate_runs_known(
    ca: &[u32],
    cb: &[u32],
    one: &[bool],
    n: usize,
    m: usize,
    alternative: Alternative,
) -> Vec<Run> {
    candidate_runs_with::<true>(ca, cb, one, n, m, alternative)
}

/// [`candidate_runs`] (`KNOWN` false: `one` is not read) or [`candidate_runs_known`].
fn candidate_runs_with<const KNOWN: bool>(
    ca: &[u32],
    cb: &[u32],
    one: &[bool],
    n: usize,
    m: usize,
    alternative: Alternative,
) -> Vec<Run> {
    let (ni, mi) = (n as i64, m as i64);
    let single = |s: usize| KNOWN && one.get(s).copied().unwrap_or(false);
    // The bounds of the group ends inside segment `s` starting at `q`, holding `x` and `y`.
    let bounds = |s: usize, q: i64, x: u32, y: u32| -> (i64, i64) {
        if single(s) {
            let end = q + i64::from(x) * mi - i64::from(y) * ni;
            (end, end)
        } else {
            (q + i64::from(x) * mi, q - i64::from(y) * ni)
        }
    };
    let mut q = 0i64;
    let (mut qmax, mut qmin) = (i64::MIN, i64::MAX);
    let (mut upper, mut lower) = (i64::MIN, i64::MAX);
    for (s, (&x, &y)) in ca.iter().zip(cb).enumerate() {
        if x == 0 && y == 0 {
            continue;
        }
        let (up, lo) = bounds(s, q, x, y);
        upper = upper.max(up);
        lower = lower.min(lo);
        q += i64::from(x) * mi - i64::from(y) * ni;
        qmax = qmax.max(q);
        qmin = qmin.min(q);
    }
    let (want_max, want_min) = match alternative {
        Alternative::Greater => (true, false),
        Alternative::Less => (false, true),
        // `-lower < qmax`: every minimum is beaten; `upper < -qmin`: every maximum is.
        Alternative::TwoSided => (upper >= -qmin, -lower >= qmax),
    };
    let mut runs: Vec<Run> = Vec::new();
    let (mut q, mut i0, mut j0) = (0i64, 0usize, 0usize);
    let mut extend = false;
    for (s, (&x, &y)) in ca.iter().zip(cb).enumerate() {
        if x == 0 && y == 0 {
            continue;
        }
        let (xa, yb) = (x as usize, y as usize);
        let (up, lo) = bounds(s, q, x, y);
        let wanted = (want_max && up >= qmax) || (want_min && lo <= qmin);
        if wanted {
            match runs.last_mut() {
                Some(run) if extend => {
                    run.last = s;
                    run.na += xa;
                    run.nb += yb;
                }
                _ => runs.push(Run {
                    first: s,
                    last: s,
                    i0,
                    j0,
                    na: xa,
                    nb: yb,
                }),
            }
        }
        extend = wanted;
        q += i64::from(x) * mi - i64::from(y) * ni;
        i0 += xa;
        j0 += yb;
    }
    runs
}

/// Extremes of two sorted samples for `alternative`: a plain walk, or for large samples,
/// segments of about [`BLOCK`] values of each sample found by galloping, and a walk of the
/// candidate segments.
pub(super) fn extremes(a: &[f64], b: &[f64], alternative: Alternative) -> Extremes {
    let (n, m) = (a.len(), b.len());
    if n + m < PRUNE_MIN_LEN || !prunable(n, m) {
        let mut tracker = Tracker::new(n, m);
        tracker.walk(a, b, 0, 0);
        return tracker.finish();
    }
    blocked_extremes(a, b, alternative)
}

/// [`extremes`] by segments; `n * m` must be at most [`MAX_PRUNE_NM`].
pub(super) fn blocked_extremes(a: &[f64], b: &[f64], alternative: Alternative) -> Extremes {
    let (n, m) = (a.len(), b.len());
    let mut tracker = Tracker::new(n, m);
    let mut ca: Vec<u32> = Vec::with_capacity((n + m) / BLOCK + 2);
    let mut cb: Vec<u32> = Vec::with_capacity((n + m) / BLOCK + 2);
    let (mut i, mut j) = (0usize, 0usize);
    while i < n || j < m {
        // The segment ends at the smaller of the BLOCK-th next values (with all its ties).
        let end = match (a.get(i + BLOCK - 1), b.get(j + BLOCK - 1)) {
            (Some(&x), Some(&y)) => Some(if x <= y { x } else { y }),
            (Some(&x), None) => Some(x),
            (None, Some(&y)) => Some(y),
            (None, None) => None,
        };
        let (i1, j1) = match end {
            Some(v) => (upper_bound_from(a, i, v), upper_bound_from(b, j, v)),
            None => (n, m),
        };
        ca.push((i1 - i) as u32);
        cb.push((j1 - j) as u32);
        (i, j) = (i1, j1);
    }
    for run in candidate_runs(&ca, &cb, n, m, alternative) {
        let ra = a.get(run.i0..run.i0 + run.na).unwrap_or(&[]);
        let rb = b.get(run.j0..run.j0 + run.nb).unwrap_or(&[]);
        tracker.walk(ra, rb, run.i0, run.j0);
    }
    tracker.finish()
}

/// The first index `>= from` whose value is `> x`, in a sorted slice whose values before
/// `from` are `<= x`: a galloping search, O(log(answer - from)).
pub(super) fn upper_bound_from(v: &[f64], from: usize, x: f64) -> usize {
    let rest = v.get(from..).unwrap_or(&[]);
    let mut hi = 1usize;
    while hi <= rest.len() && rest[hi - 1] <= x {
        hi *= 2;
    }
    let lo = hi / 2;
    let hi = hi.min(rest.len());
    from + lo + rest[lo..hi].partition_point(|&y| y <= x)
}

/// A monotone map from values to `buckets` buckets, linear between `lo` and `hi` and clamped
/// outside: `x <= y` implies `bucket(x) <= bucket(y)`, and equal values (`-0.0` and `0.0`
/// included) share a bucket, so buckets are segments that never split a group. Halving
/// first keeps `x - lo` finite for any finite `x`, `lo`; every step (halving, subtracting,
/// scaling, clamping to `[0, buckets - 1]`, rounding to an integer by adding 1.5 * 2^52) is
/// monotone. Any `lo`, `hi` give a correct map; a good range only makes the buckets even.
#[derive(Debug, Clone, Copy)]
pub(super) struct BucketMap {
    pub(super) half_lo: f64,
    pub(super) scale: f64,
    pub(super) last: f64,
    pub(super) buckets: usize,
}

/// Values handled together by the bucket passes (the compiler vectorises the arithmetic).
pub(super) const LANES: usize = 8;
/// "No value" in [`BucketMap::groups`]: a NaN's bits, which no finite value has.
pub(super) const NO_VALUE: u64 = u64::MAX;
/// "More than one value" in [`BucketMap::groups`]: another NaN's bits.
pub(super) const MIXED: u64 = u64::MAX - 1;

/// One value `x` into a bucket's state of [`BucketMap::groups`].
#[inline(always)]
fn see_group_value(r: &mut u64, x: f64) {
    let b = x.to_bits();
    if *r == b || *r == MIXED {
        return;
    }
    if *r == NO_VALUE {
        *r = b;
    } else if f64::from_bits(*r) == x {
        // 0.0 and -0.0: one group, first -0.0.
        if x.is_sign_negative() {
            *r = b;
        }
    } else {
        *r = MIXED;
    }
}
/// `1.5 * 2^52`: adding it to a value in `[0, 2^51)` rounds that value to an integer and
/// leaves the integer in the low bits of the sum, a conversion that vectorises (Rust's
/// saturating `as` does not).
pub(super) const ROUNDER: f64 = 6_755_399_441_055_744.0;

impl BucketMap {
    pub(super) fn new(lo: f64, hi: f64, buckets: usize) -> Self {
        let half_lo = lo * 0.5;
        let span = hi * 0.5 - half_lo;
        // A span so small that the scale overflows is held at f64::MAX, so that positions
        // are never 0 * inf = NaN for finite values.
        let scale = if span > 0.0 {
            (buckets as f64 / span).min(f64::MAX)
        } else {
            0.0
        };
        BucketMap {
            half_lo,
            scale,
            last: (buckets - 1) as f64,
            buckets,
        }
    }

    /// `ROUNDER + bucket(x)`, exactly.
    #[inline(always)]
    pub(super) fn rounded(&self, x: f64) -> f64 {
        let y = (x * 0.5 - self.half_lo) * self.scale;
        // NaN (only for non-finite x) goes to 0 with the negatives; overflows clamp.
        let y = if y > 0.0 { y } else { 0.0 };
        let y = if y < self.last { y } else { self.last };
        y + ROUNDER
    }

    #[inline(always)]
    pub(super) fn bucket(&self, x: f64) -> usize {
        self.rounded(x).to_bits() as u32 as usize
    }

    #[inline(always)]
    pub(super) fn buckets8(&self, c: &[f64]) -> [u32; LANES] {
        let mut z = [0.0f64; LANES];
        for (z, &x) in z.iter_mut().zip(c) {
            *z = self.rounded(x);
        }
        let mut out = [0u32; LANES];
        for (o, z) in out.iter_mut().zip(z) {
            *o = z.to_bits() as u32;
        }
        out
    }

    /// Values per bucket, or `None` if a value is NaN or infinite.
    pub(super) fn histogram(&self, values: &[f64]) -> Option<Vec<u32>> {
        let mut counts = vec![0u32; self.buckets];
        // x * 0 is NaN exactly for NaN and infinities.
        let mut poison = [0.0f64; LANES];
        let mut chunks = values.chunks_exact(LANES);
        for c in &mut chunks {
            for (p, &x) in poison.iter_mut().zip(c) {
                *p += x * 0.0;
            }
            for k in self.buckets8(c) {
                // Buckets are below `buckets`, so the slot always exists.
                if let Some(n) = counts.get_mut(k as usize) {
                    *n += 1;
                }
            }
        }
        for &x in chunks.remainder() {
            poison[0] += x * 0.0;
            if let Some(n) = counts.get_mut(self.bucket(x)) {
                *n += 1;
            }
        }
        poison.iter().all(|&p| p == 0.0).then_some(counts)
    }

    /// The smallest finite value whose bucket is at least `k`, by bisection over the
    /// order-preserving keys of the finite doubles (exact: `bucket` is monotone).
    pub(super) fn first_value_from(&self, k: usize) -> f64 {
        let (mut lo, mut hi) = (sort_key(-f64::MAX), sort_key(f64::MAX));
        if self.bucket(-f64::MAX) >= k {
            return -f64::MAX;
        }
        if self.bucket(f64::MAX) < k {
            return f64::INFINITY;
        }
        // bucket(lo) < k <= bucket(hi)
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.bucket(from_sort_key(mid)) >= k {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        from_sort_key(hi)
    }

    /// The largest finite value whose bucket is at most `k`.
    pub(super) fn last_value_to(&self, k: usize) -> f64 {
        let (mut lo, mut hi) = (sort_key(-f64::MAX), sort_key(f64::MAX));
        if self.bucket(f64::MAX) <= k {
            return f64::MAX;
        }
        if self.bucket(-f64::MAX) > k {
            return f64::NEG_INFINITY;
        }
        // bucket(lo) <= k < bucket(hi)
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.bucket(from_sort_key(mid)) <= k {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        from_sort_key(lo)
    }

    /// The values whose bucket's bit is set in `bits`, in their order.
    /// For each bucket, what values of `values` it holds: [`NO_VALUE`] when none,
    /// [`MIXED`] when two of them differ (`!=`), else the bits of the first of them in
    /// sorted order (`-0.0` when the bucket holds both zeros, as `f64::total_cmp` sorts).
    pub(super) fn groups(&self, values: &[f64]) -> Vec<u64> {
        let mut state = vec![NO_VALUE; self.buckets];
        let mut see = |k: usize, x: f64| {
            if let Some(r) = state.get_mut(k) {
                see_group_value(r, x);
            }
        };
        let mut chunks = values.chunks_exact(LANES);
        for c in &mut chunks {
            for (k, &x) in self.buckets8(c).into_iter().zip(c) {
                see(k as usize, x);
            }
        }
        for &x in chunks.remainder() {
            see(self.bucket(x), x);
        }
        state
    }

    /// [`BucketMap::histogram`] and [`BucketMap::groups`] in one pass; `None` when a value
    /// is not finite.
    pub(super) fn histogram_groups(&self, values: &[f64]) -> Option<(Vec<u32>, Vec<u64>)> {
        let mut counts = vec![0u32; self.buckets];
        let mut state = vec![NO_VALUE; self.buckets];
        let mut poison = [0.0f64; LANES];
        let mut see = |k: usize, x: f64| {
            if let (Some(n), Some(r)) = (counts.get_mut(k), state.get_mut(k)) {
                *n += 1;
                see_group_value(r, x);
            }
        };
        let mut chunks = values.chunks_exact(LANES);
        for c in &mut chunks {
            for (p, &x) in poison.iter_mut().zip(c) {
                *p += x * 0.0;
            }
            for (k, &x) in self.buckets8(c).into_iter().zip(c) {
                see(k as usize, x);
            }
        }
        for &x in chunks.remainder() {
            poison[0] += x * 0.0;
            see(self.bucket(x), x);
        }
        poison.iter().all(|&p| p == 0.0).then_some((counts, state))
    }

    pub(super) fn gather_bits(&self, values: &[f64], bits: &[u64], count: usize) -> Vec<f64> {
        let bit = |k: usize| bits.get(k >> 6).is_some_and(|w| (w >> (k & 63)) & 1 == 1);
        let mut out = Vec::with_capacity(count);
        let mut chunks = values.chunks_exact(LANES);
        for c in &mut chunks {
            for (k, &x) in self.buckets8(c).into_iter().zip(c) {
                if bit(k as usize) {
                    out.push(x);
                }
            }
        }
        for &x in chunks.remainder() {
            if bit(self.bucket(x)) {
                out.push(x);
            }
        }
        out
    }
}

/// The values lying in one of the `R` closed intervals `lo[r]..=hi[r]`, in their order.
///
/// `x` is in `[lo, hi]` iff `min(x - lo, hi - x) >= 0` (a rounded difference keeps the exact
/// difference's sign, overflow included, and is zero only for equal values), so `x` is in
/// one of them iff the largest of those minima is `>= 0`: a handful of vectorised float
/// operations per value, and one branch per eight values, which keeps this pass as fast as
/// reading the memory.
pub(super) fn gather_intervals<const R: usize>(
    values: &[f64],
    lo: &[f64; R],
    hi: &[f64; R],
    count: usize,
) -> Vec<f64> {
    #[inline(always)]
    pub(super) fn score<const R: usize>(x: f64, lo: &[f64; R], hi: &[f64; R]) -> f64 {
        let mut s = f64::NEG_INFINITY;
        for (&l, &h) in lo.iter().zip(hi) {
            let (a, b) = (x - l, h - x);
            let inside = if a < b { a } else { b };
            s = if inside > s { inside } else { s };
        }
        s
    }
    #[inline(always)]
    pub(super) fn larger(a: f64, b: f64) -> f64 {
        if a > b {
            a
        } else {
            b
        }
    }
    let mut out = Vec::with_capacity(count);
    let mut chunks = values.chunks_exact(LANES);
    for c in &mut chunks {
        let mut s = [0.0f64; LANES];
        for (s, &x) in s.iter_mut().zip(c) {
            *s = score(x, lo, hi);
        }
        // A balanced reduction: a chain of maxima would be latency-bound.
        let best = larger(
            larger(larger(s[0], s[1]), larger(s[2], s[3])),
            larger(larger(s[4], s[5]), larger(s[6], s[7])),
        );
        if best >= 0.0 {
            for (&s, &x) in s.iter().zip(c) {
                if s >= 0.0 {
                    out.push(x);
                }
            }
        }
    }
    for &x in chunks.remainder() {
        if score(x, lo, hi) >= 0.0 {
            out.push(x);
        }
    }
    out
}

/// [`gather_intervals`] over `hulls` (closed value intervals, at most [`GATHER_HULLS`]),
/// specialised to their number.
pub(super) fn gather_hulls(values: &[f64], hulls: &[(f64, f64)], count: usize) -> Vec<f64> {
    pub(super) fn fixed<const R: usize>(hulls: &[(f64, f64)]) -> ([f64; R], [f64; R]) {
        // Unused slots are empty intervals.
        let mut lo = [f64::INFINITY; R];
        let mut hi = [f64::NEG_INFINITY; R];
        for ((l, h), &(a, b)) in lo.iter_mut().zip(hi.iter_mut()).zip(hulls) {
            (*l, *h) = (a, b);
        }
        (lo, hi)
    }
    match hulls.len() {
        0 | 1 => {
            let (lo, hi) = fixed::<1>(hulls);
            gather_intervals(values, &lo, &hi, count)
        }
        2 => {
            let (lo, hi) = fixed::<2>(hulls);
            gather_intervals(values, &lo, &hi, count)
        }
        _ => {
            let (lo, hi) = fixed::<GATHER_HULLS>(hulls);
            gather_intervals(values, &lo, &hi, count)
        }
    }
}

/// Bucket ranges the gather pass tests each value against; more candidate runs are covered
/// by fewer, wider hulls, or by a bitmap of buckets.
pub(super) const GATHER_HULLS: usize = 4;

/// Bucket ranges covering every run, at most `max` of them, made by joining neighbouring
/// runs across the gaps that hold the fewest values; `None` when covering the runs that way
/// would take in more than `slack` values besides theirs.
pub(super) fn hulls(
    runs: &[Run],
    ca: &[u32],
    cb: &[u32],
    max: usize,
    slack: usize,
) -> Option<Vec<(usize, usize)>> {
    let mut hulls: Vec<(usize, usize)> = runs.iter().map(|r| (r.first, r.last)).collect();
    let between = |a: usize, b: usize| -> usize {
        ca[a..b].iter().chain(&cb[a..b]).map(|&c| c as usize).sum()
    };
    let mut gaps: Vec<usize> = hulls
        .windows(2)
        .map(|w| between(w[0].1 + 1, w[1].0))
        .collect();
    let mut extra = 0;
    while hulls.len() > max.max(1) {
        let (k, &cost) = gaps.iter().enumerate().min_by_key(|&(_, &c)| c)?;
        extra += cost;
        if extra > slack {
            return None;
        }
        hulls[k].1 = hulls[k + 1].1;
        hulls.remove(k + 1);
        gaps.remove(k);
    }
    Some(hulls)
}

/// Keeps the values whose bucket's bit is set in `bits` (the runs), in their order.
pub(super) fn keep_runs(map: &BucketMap, values: &mut Vec<f64>, bits: &[u64]) {
    values.retain(|&x| {
        let k = map.bucket(x);
        bits.get(k >> 6).is_some_and(|w| (w >> (k & 63)) & 1 == 1)
    });
}

/// A range holding all but about 1/4096 of the values at each end (the extremes of a strided
/// sample of about 4096 values of both samples; any range is correct, this one keeps a few
/// outliers from stretching the buckets, and keeps the clamped end buckets small, so that
/// they are rarely candidates), and whether the samples look tied (many equal values in the
/// strided sample; only from [`TIED_GUESS_MIN_LEN`] values in all). Non-finite values,
/// which the histogram pass rejects afterwards, are kept out of it.
pub(super) fn sample_range(a: &[f64], b: &[f64]) -> (f64, f64, bool) {
    const SAMPLE: usize = 1 << 12;
    let stride = ((a.len() + b.len()) / SAMPLE).max(1);
    let mut s: Vec<f64> = a
        .iter()
        .step_by(stride)
        .chain(b.iter().step_by(stride))
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if s.is_empty() {
        return (0.0, 0.0, false);
    }
    let tied = a.len() + b.len() >= TIED_GUESS_MIN_LEN && {
        // A quarter of (a part of) the sample equal to a neighbour in sorted order: few distinct
        // values (an hour's rounding, a category coded as numbers), worth the fused pass.
        let mut t = s[..s.len().min(1024)].to_vec();
        t.sort_unstable_by(f64::total_cmp);
        let equal = t.windows(2).filter(|w| w[0] == w[1]).count();
        equal * 4 >= t.len()
    };
    let k = s.len() / 8192;
    let last = s.len() - 1 - k;
    let (_, &mut lo, _) = s.select_nth_unstable_by(k, f64::total_cmp);
    let (_, &mut hi, _) = s.select_nth_unstable_by(last, f64::total_cmp);
    (lo, hi, tied)
}

/// From this many values in all, [`sample_range`] guesses from its sample whether the data
/// are tied.
pub(super) const TIED_GUESS_MIN_LEN: usize = 1 << 17;

/// Runs `f` and `g` with `rayon::join` when `parallel` (in parallel when a thread of rayon's
/// pool is free), else both here in turn. A panic in either is resumed here.
pub(super) fn both<A, B, F, G>(parallel: bool, f: F, g: G) -> (A, B)
where
    A: Send,
    B: Send,
    F: FnOnce() -> A + Send,
    G: FnOnce() -> B + Send,
{
    if parallel {
        rayon::join(f, g)
    } else {
        (f(), g())
    }
}

/// Extremes of two unsorted samples without sorting them: a strided sample for the range,
/// one pass to count the values per bucket (and check they are finite), one to collect the
/// values of the candidate buckets, which alone are sorted and walked. `None` when a value is not finite,
/// or when the samples are small or too large for exact pruning (the caller sorts then).
pub(super) fn unsorted_extremes(
    a: &[f64],
    b: &[f64],
    alternative: Alternative,
) -> Option<Extremes> {
    let (n, m) = (a.len(), b.len());
    if n + m < PRUNE_MIN_LEN || !prunable(n, m) {
        return None;
    }
    bucketed_extremes(a, b, alternative, n + m >= PARALLEL_MIN_LEN)
}

/// [`unsorted_extremes`] without the size limits; `n * m` must be at most [`MAX_PRUNE_NM`].
pub(super) fn bucketed_extremes(
    a: &[f64],
    b: &[f64],
    alternative: Alternative,
    parallel: bool,
) -> Option<Extremes> {
    // Up to 1/16 of the values taken in and dropped again: far cheaper than a bitmap pass.
    let slack = ((a.len() + b.len()) / 16).max(4096);
    bucketed_extremes_with(a, b, alternative, parallel, slack, false)
}

/// [`bucketed_extremes`], gathering through value intervals when a few of them hold the
/// candidate buckets with at most `slack` other values, else through a bitmap of buckets.
pub(super) fn bucketed_extremes_with(
    a: &[f64],
    b: &[f64],
    alternative: Alternative,
    parallel: bool,
    slack: usize,
    always_tied: bool,
) -> Option<Extremes> {
    let (n, m) = (a.len(), b.len());
    let (lo, hi, tied) = sample_range(a, b);
    let buckets = ((n + m) / 8).next_power_of_two().clamp(1 << 10, 1 << 16);
    let map = BucketMap::new(lo, hi, buckets);
    if tied {
        // Counts and groups in one pass over each sample (large samples: memory-bound).
        let (ha, hb) = both(
            parallel,
            || map.histogram_groups(a),
            || map.histogram_groups(b),
        );
        let ((ca, ga), (cb, gb)) = (ha?, hb?);
        return Some(tied_extremes(
            a,
            b,
            alternative,
            parallel,
            &map,
            &ca,
            &cb,
            Some((ga, gb)),
        ));
    }
    let (ca, cb) = both(parallel, || map.histogram(a), || map.histogram(b));
    let (ca, cb) = (ca?, cb?);
    let runs = candidate_runs(&ca, &cb, n, m, alternative);
    let bits = run_bits(&runs, buckets);
    let na: usize = runs.iter().map(|r| r.na).sum();
    let nb: usize = runs.iter().map(|r| r.nb).sum();
    if always_tied || (n + m >= TIED_GUESS_MIN_LEN && na + nb > (n + m) / TIED_FRACTION) {
        // Many candidates: the buckets are full of ties (few distinct values), where the
        // bounds are loose. Buckets of one value have exact bounds and need no sort.
        return Some(tied_extremes(
            a,
            b,
            alternative,
            parallel,
            &map,
            &ca,
            &cb,
            None,
        ));
    }
    // Up to 1/16 of the values taken in and dropped again: far cheaper than a bitmap pass.
    let hull_buckets = [1, 2, GATHER_HULLS]
        .into_iter()
        .find_map(|max| hulls(&runs, &ca, &cb, max, slack));
    let (mut ga, mut gb) = match hull_buckets {
        Some(h) => {
            let values: Vec<(f64, f64)> = h
                .iter()
                .map(|&(first, last)| (map.first_value_from(first), map.last_value_to(last)))
                .collect();
            let (mut ga, mut gb) = both(
                parallel,
                || gather_hulls(a, &values, na),
                || gather_hulls(b, &values, nb),
            );
            keep_runs(&map, &mut ga, &bits);
            keep_runs(&map, &mut gb, &bits);
            (ga, gb)
        }
        None => both(
            parallel,
            || map.gather_bits(a, &bits, na),
            || map.gather_bits(b, &bits, nb),
        ),
    };
    debug_assert_eq!((ga.len(), gb.len()), (na, nb), "gathered what was counted");
    sort_samples(&mut ga);
    sort_samples(&mut gb);
    let mut tracker = Tracker::new(n, m);
    let (mut pa, mut pb) = (0, 0);
    for run in &runs {
        let ra = ga.get(pa..pa + run.na).unwrap_or(&[]);
        let rb = gb.get(pb..pb + run.nb).unwrap_or(&[]);
        tracker.walk(ra, rb, run.i0, run.j0);
        pa += run.na;
        pb += run.nb;
    }
    Some(tracker.finish())
}

/// Candidates above `1 / TIED_FRACTION` of all values send [`bucketed_extremes_with`] to
/// [`tied_extremes`] (samples of [`TIED_GUESS_MIN_LEN`] or more in all; smaller ones stay in
/// cache, where gathering and sorting them costs less than one more pass).
pub(super) const TIED_FRACTION: usize = 16;

/// The bitmap of the buckets of `runs`.
fn run_bits(runs: &[Run], buckets: usize) -> Vec<u64> {
    let mut bits = vec![0u64; buckets.div_ceil(64)];
    for run in runs {
        for k in run.first..=run.last {
            if let Some(w) = bits.get_mut(k >> 6) {
                *w |= 1 << (k & 63);
            }
        }
    }
    bits
}

/// The second half of [`bucketed_extremes_with`] for tied data: one more pass finds the
/// buckets that hold a single value (`==`, in both samples); those have exact bounds (see
/// [`candidate_runs_known`]) and, when they are candidates still, are taken from their
/// counts as one group each, located at the first value of each sample's part. Only the
/// values of the other candidate buckets are gathered, sorted and walked. Same result as
/// walking everything: such a bucket is one group of the walk, at the same place in the
/// order.
#[allow(clippy::too_many_arguments)]
fn tied_extremes(
    a: &[f64],
    b: &[f64],
    alternative: Alternative,
    parallel: bool,
    map: &BucketMap,
    ca: &[u32],
    cb: &[u32],
    groups: Option<(Vec<u64>, Vec<u64>)>,
) -> Extremes {
    let (n, m) = (a.len(), b.len());
    let (ga, gb) = groups.unwrap_or_else(|| both(parallel, || map.groups(a), || map.groups(b)));
    // One group: neither sample mixed, and the same value (`==`) in both when in both.
    let one: Vec<bool> = ga
        .iter()
        .zip(&gb)
        .map(|(&ra, &rb)| {
            ra != MIXED
                && rb != MIXED
                && (ra != NO_VALUE || rb != NO_VALUE)
                && (ra == NO_VALUE || rb == NO_VALUE || f64::from_bits(ra) == f64::from_bits(rb))
        })
        .collect();
    let buckets = ca.len();
    let runs = candidate_runs_known(ca, cb, &one, n, m, alternative);
    // Gather only the candidate buckets of more than one value.
    let mut walk_bits = vec![0u64; buckets.div_ceil(64)];
    let (mut na, mut nb) = (0usize, 0usize);
    for run in &runs {
        for k in run.first..=run.last {
            if !one[k] {
                walk_bits[k >> 6] |= 1 << (k & 63);
                na += ca[k] as usize;
                nb += cb[k] as usize;
            }
        }
    }
    let (mut wa, mut wb) = if na + nb == 0 {
        (Vec::new(), Vec::new())
    } else {
        both(
            parallel,
            || map.gather_bits(a, &walk_bits, na),
            || map.gather_bits(b, &walk_bits, nb),
        )
    };
    debug_assert_eq!((wa.len(), wb.len()), (na, nb), "gathered what was counted");
    sort_samples(&mut wa);
    sort_samples(&mut wb);
    let mut tracker = Tracker::new(n, m);
    let (mut pa, mut pb) = (0, 0);
    for run in &runs {
        let (mut i, mut j) = (run.i0, run.j0);
        for k in run.first..=run.last {
            let (x, y) = (ca[k] as usize, cb[k] as usize);
            if x == 0 && y == 0 {
                continue;
            }
            if one[k] {
                let (ra, rb) = (f64::from_bits(ga[k]), f64::from_bits(gb[k]));
                tracker.see_group(i + x, j + y, (x > 0).then_some(ra), (y > 0).then_some(rb));
            } else {
                let ra = wa.get(pa..pa + x).unwrap_or(&[]);
                let rb = wb.get(pb..pb + y).unwrap_or(&[]);
                tracker.walk(ra, rb, i, j);
                pa += x;
                pb += y;
            }
            i += x;
            j += y;
        }
    }
    tracker.finish()
}
