//! Raw values kept by the time they arrived, for references in time on raw-value rules
//! (`range: {start, end}` and `{offset, duration}`). Pure and synchronous; times are Unix
//! milliseconds passed in.
//!
//! Values sit in chunks of time, so a reference's edges are exact to one chunk. Memory is
//! bounded by `max_values` whatever the traffic: when the chunks would hold more, every
//! chunk drops every other value it holds and from then on one value in `stride` arriving is
//! kept (the stride doubles each time). The thinning looks at arrival order only, never at
//! the values, so what is kept is still a sample of the period's distribution (smaller, so a
//! test on it is less powerful, never miscalibrated).

use std::collections::VecDeque;

/// What the state store keeps of [`TimedValues`].
#[derive(Debug, Clone, PartialEq)]
pub struct TimedParts {
    /// `(start of the chunk, values in arrival order)`, oldest first.
    pub chunks: Vec<(i64, Vec<f64>)>,
    pub stride: u64,
    pub offered: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimedValues {
    chunk_ms: i64,
    /// Oldest first; `(start of the chunk, values in arrival order)`.
    chunks: VecDeque<(i64, Vec<f64>)>,
    max_values: usize,
    /// One value in `stride` arriving is kept.
    stride: u64,
    /// Values offered since the last change of stride (which of them to keep).
    offered: u64,
    held: usize,
}

impl TimedValues {
    /// Chunks of `chunk_ms` (at least a second), holding `max_values` at most together.
    pub fn new(chunk_ms: i64, max_values: usize) -> Self {
        TimedValues {
            chunk_ms: chunk_ms.max(1000),
            chunks: VecDeque::new(),
            max_values: max_values.max(2),
            stride: 1,
            offered: 0,
            held: 0,
        }
    }

    /// Values held.
    pub fn held(&self) -> usize {
        self.held
    }

    /// One value in this many arriving is kept (1 until the bound was reached).
    pub fn stride(&self) -> u64 {
        self.stride
    }

    /// Takes `values` arriving at `at_ms` (not before the newest chunk's start: earlier
    /// values go to the newest chunk).
    pub fn push(&mut self, values: &[f64], at_ms: i64) {
        let start = at_ms.div_euclid(self.chunk_ms) * self.chunk_ms;
        for &x in values {
            let keep = self.offered.is_multiple_of(self.stride);
            self.offered += 1;
            if !keep {
                continue;
            }
            match self.chunks.back_mut() {
                Some((s, v)) if *s >= start => v.push(x),
                _ => self.chunks.push_back((start, vec![x])),
            }
            self.held += 1;
            if self.held > self.max_values {
                self.thin();
            }
        }
    }

    /// Halves what the chunks hold: every other value in arrival order across all of them
    /// (the first kept), so even chunks of one value each are thinned; doubles the stride.
    fn thin(&mut self) {
        self.held = 0;
        let mut keep = false;
        for (_, v) in &mut self.chunks {
            v.retain(|_| {
                keep = !keep;
                keep
            });
            self.held += v.len();
        }
        self.chunks.retain(|(_, v)| !v.is_empty());
        self.stride = self.stride.saturating_mul(2);
        self.offered = 1;
    }

    /// Drops the chunks that end at or before `ms`.
    pub fn forget_before(&mut self, ms: i64) {
        while let Some((s, v)) = self.chunks.front() {
            if s + self.chunk_ms > ms {
                break;
            }
            self.held -= v.len();
            self.chunks.pop_front();
        }
    }

    /// The length of chunks.
    pub fn chunk_ms(&self) -> i64 {
        self.chunk_ms
    }

    /// How many values [`select`](Self::select) would give.
    pub fn count(&self, from_ms: i64, to_ms: i64) -> usize {
        self.chunks
            .iter()
            .filter(|(s, _)| *s >= from_ms && *s < to_ms)
            .map(|(_, v)| v.len())
            .sum()
    }

    /// The values of the chunks that start in `[from_ms, to_ms)`, in arrival order.
    pub fn select(&self, from_ms: i64, to_ms: i64) -> Vec<f64> {
        let mut out = Vec::new();
        for (s, v) in &self.chunks {
            if *s >= from_ms && *s < to_ms {
                out.extend_from_slice(v);
            }
        }
        out
    }

    /// What the state store keeps: the chunks and the thinning state.
    pub fn parts(&self) -> TimedParts {
        TimedParts {
            chunks: self.chunks.iter().cloned().collect(),
            stride: self.stride,
            offered: self.offered,
        }
    }

    /// Restores [`parts`](Self::parts); `None` when they do not fit (a stride that is not a
    /// power of two, or chunks out of order). More values than the bound (a lowered
    /// `max_window_values`) are thinned until they fit, as arrivals would have been.
    pub fn from_parts(chunk_ms: i64, max_values: usize, parts: TimedParts) -> Option<Self> {
        let TimedParts {
            chunks,
            stride,
            offered,
        } = parts;
        let mut t = TimedValues::new(chunk_ms, max_values);
        let held: usize = chunks.iter().map(|(_, v)| v.len()).sum();
        let ordered = chunks.windows(2).all(|w| w[0].0 < w[1].0);
        if !stride.is_power_of_two() || !ordered {
            return None;
        }
        t.chunks = chunks.into();
        t.held = held;
        t.stride = stride;
        t.offered = offered;
        while t.held > t.max_values {
            t.thin();
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_select_by_time_and_old_ones_go() {
        let mut t = TimedValues::new(10_000, 1000);
        for s in 0..60 {
            t.push(&[s as f64], s * 1000);
        }
        // Chunks [0,10s), [10s,20s), ...: from 20 s to 40 s are values 20..40.
        let v = t.select(20_000, 40_000);
        assert_eq!(v, (20..40).map(f64::from).collect::<Vec<_>>());
        t.forget_before(30_000);
        assert_eq!(t.held(), 30);
        assert_eq!(
            t.select(0, 40_000),
            (30..40).map(f64::from).collect::<Vec<_>>()
        );
    }

    #[test]
    fn chunks_of_one_value_are_thinned_too_and_the_bound_holds() {
        // Regression: thinning kept the first value of every chunk, so chunks of one value
        // each were never thinned, the stride ran away and restore refused the state.
        let mut t = TimedValues::new(1000, 100);
        for s in 0..300i64 {
            t.push(&[s as f64], s * 1000);
            assert!(t.held() <= 100, "{} at {s}", t.held());
        }
        assert!(t.held() > 50, "{}", t.held());
        assert!(t.stride() <= 4, "{}", t.stride());
        assert!(TimedValues::from_parts(1000, 100, t.parts()).is_some());
        // A lowered bound on restore thins instead of refusing.
        let smaller = TimedValues::from_parts(1000, 30, t.parts()).expect("thinned to fit");
        assert!(
            smaller.held() <= 30 && smaller.held() > 15,
            "{}",
            smaller.held()
        );
    }

    #[test]
    fn the_bound_thins_by_arrival_order_never_by_value() {
        let mut t = TimedValues::new(1000, 100);
        // 1,024 values, descending, so a thinning that looked at values would show; 16 a
        // chunk, so every chunk starts at a multiple of the stride.
        let values: Vec<f64> = (0..1024).rev().map(f64::from).collect();
        for (i, chunk) in values.chunks(16).enumerate() {
            t.push(chunk, i as i64 * 1000);
        }
        assert!(t.held() <= 100, "{}", t.held());
        assert!(t.held() > 50, "{}", t.held());
        assert_eq!(t.stride(), 16);
        let kept = t.select(i64::MIN, i64::MAX);
        // Every 16th value arriving, whatever it was.
        let want: Vec<f64> = values.iter().step_by(16).copied().collect();
        assert_eq!(kept, want);
        let back = TimedValues::from_parts(1000, 100, t.parts()).expect("fits");
        assert_eq!(back, t);
        let odd = TimedParts {
            chunks: vec![],
            stride: 3,
            offered: 0,
        };
        assert!(TimedValues::from_parts(1000, 100, odd).is_none());
    }
}
