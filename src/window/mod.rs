//! Per-series windows, pure and synchronous: what a rule keeps for one series (or one `by`
//! pool) between evaluations. Time is passed in as Unix milliseconds; nothing here reads a clock.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::rules::model::{CurrentWindow, ReferenceWindow};

/// Reference and current windows of one KS rule+series.
///
/// Samples go to `first` until a `first: N` reference is full (then it is frozen); after that,
/// and for `preceding`/`file` references, to `recent`, which holds the current window and, for
/// `preceding: N`, the N samples before it.
#[derive(Debug, Clone)]
pub struct SampleWindows {
    /// A `first: N` reference while it fills, in arrival order.
    first: Vec<f64>,
    /// The fixed reference, sorted once: a full `first: N` reference, or a `file:` reference.
    /// Shared with every evaluation without a copy.
    frozen: Option<Arc<[f64]>>,
    recent: VecDeque<f64>,
    /// Arrival time of each value in `recent`, kept only for `duration:` current windows.
    times: VecDeque<i64>,
    reference: ReferenceWindow,
    current: CurrentWindow,
    max_values: usize,
}

/// The two windows, for a detector to run on outside any lock: the current window (and a
/// rolling reference) copied, a fixed reference shared already sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowView {
    pub reference: Arc<[f64]>,
    /// True when `reference` is sorted ascending (by `f64::total_cmp`).
    pub reference_sorted: bool,
    pub current: Vec<f64>,
}

/// Sorts ascending by `f64::total_cmp`, the order the KS walk expects.
pub fn sort_values(v: &mut [f64]) {
    v.sort_unstable_by(f64::total_cmp);
}

fn sorted_arc(values: &[f64]) -> Arc<[f64]> {
    let mut v = values.to_vec();
    sort_values(&mut v);
    v.into()
}

impl SampleWindows {
    /// `max_values` bounds what the current window (and a `preceding` reference) may hold.
    pub fn new(reference: &ReferenceWindow, current: &CurrentWindow, max_values: usize) -> Self {
        let frozen = match reference {
            ReferenceWindow::File { values, .. } => {
                if values.is_sorted_by(|a, b| a.total_cmp(b).is_le()) {
                    Some(Arc::clone(values))
                } else {
                    Some(sorted_arc(values))
                }
            }
            _ => None,
        };
        SampleWindows {
            first: Vec::new(),
            frozen,
            recent: VecDeque::new(),
            times: VecDeque::new(),
            reference: reference.clone(),
            current: current.clone(),
            max_values: max_values.max(1),
        }
    }

    pub fn push(&mut self, value: f64, now_ms: i64) {
        if let ReferenceWindow::First(n) = self.reference {
            if self.frozen.is_none() {
                self.first.push(value);
                if self.first.len() >= n {
                    let mut full = std::mem::take(&mut self.first);
                    sort_values(&mut full);
                    self.frozen = Some(full.into());
                }
                return;
            }
        }
        self.recent.push_back(value);
        if matches!(self.current, CurrentWindow::Duration(_)) {
            self.times.push_back(now_ms);
        }
        self.trim(now_ms);
    }

    /// Drops what no window can need any more.
    pub fn trim(&mut self, now_ms: i64) {
        let preceding = match self.reference {
            ReferenceWindow::Preceding(p) => p,
            _ => 0,
        };
        let keep_current = match self.current {
            CurrentWindow::Last(n) => n.min(self.max_values),
            CurrentWindow::Duration(d) => {
                let cutoff = now_ms.saturating_sub(d.as_millis() as i64);
                let in_window = self
                    .times
                    .iter()
                    .rev()
                    .take_while(|&&t| t >= cutoff)
                    .count();
                in_window.min(self.max_values)
            }
        };
        let cap = keep_current + preceding.min(self.max_values);
        while self.recent.len() > cap {
            self.recent.pop_front();
            self.times.pop_front();
        }
    }

    /// The raw parts, for the state store: (first-N reference, recent values, their arrival times).
    pub fn parts(&self) -> (&[f64], &VecDeque<f64>, &VecDeque<i64>) {
        let first: &[f64] = match (&self.reference, &self.frozen) {
            (ReferenceWindow::First(_), Some(frozen)) => frozen,
            _ => &self.first,
        };
        (first, &self.recent, &self.times)
    }

    /// Rebuilds windows from stored parts. `None` when the parts cannot belong to this spec
    /// (times missing for a `duration` window, or present for a `last` one).
    pub fn from_parts(
        reference: &ReferenceWindow,
        current: &CurrentWindow,
        max_values: usize,
        first: Vec<f64>,
        recent: Vec<f64>,
        times: Vec<i64>,
    ) -> Option<Self> {
        let timed = matches!(current, CurrentWindow::Duration(_));
        if (timed && times.len() != recent.len()) || (!timed && !times.is_empty()) {
            return None;
        }
        if let ReferenceWindow::First(n) = reference {
            if first.len() > *n || (first.len() < *n && !recent.is_empty()) {
                return None;
            }
        } else if !first.is_empty() {
            return None;
        }
        let mut w = SampleWindows::new(reference, current, max_values);
        match reference {
            ReferenceWindow::First(n) if first.len() == *n => w.frozen = Some(sorted_arc(&first)),
            _ => w.first = first,
        }
        w.recent = recent.into();
        w.times = times.into();
        Some(w)
    }

    /// Number of values in the (reference, current) windows at `now_ms`.
    pub fn counts(&self, now_ms: i64) -> (usize, usize) {
        let cur = self.current_len(now_ms);
        let reference = match &self.reference {
            ReferenceWindow::First(_) => self.frozen.as_ref().map_or(self.first.len(), |f| f.len()),
            ReferenceWindow::Preceding(p) => (self.recent.len() - cur).min(*p),
            ReferenceWindow::File { values, .. } => values.len(),
        };
        (reference, cur)
    }

    fn current_len(&self, now_ms: i64) -> usize {
        match self.current {
            CurrentWindow::Last(n) => self.recent.len().min(n),
            CurrentWindow::Duration(d) => {
                let cutoff = now_ms.saturating_sub(d.as_millis() as i64);
                self.times
                    .iter()
                    .rev()
                    .take_while(|&&t| t >= cutoff)
                    .count()
            }
        }
    }

    /// The windows as they stand at `now_ms`.
    pub fn view(&self, now_ms: i64) -> WindowView {
        let (nref, ncur) = self.counts(now_ms);
        let len = self.recent.len();
        let current: Vec<f64> = self.recent.range(len - ncur..).copied().collect();
        let (reference, reference_sorted) = match (&self.reference, &self.frozen) {
            (_, Some(frozen)) => (Arc::clone(frozen), true),
            (ReferenceWindow::Preceding(_), None) => {
                let end = len - ncur;
                (self.recent.range(end - nref..end).copied().collect(), false)
            }
            (_, None) => (self.first.as_slice().into(), false),
        };
        WindowView {
            reference,
            reference_sorted,
            current,
        }
    }
}

/// The running EMA of one rule+series: advanced once per sample, in arrival order.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EmaState {
    pub value: Option<f64>,
    pub samples: u64,
}

impl EmaState {
    pub fn push(&mut self, x: f64, smoothing: f64) {
        self.value = Some(crate::detect::ema::step(self.value, x, smoothing));
        self.samples += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn plain(v: WindowView) -> (Vec<f64>, Vec<f64>) {
        (v.reference.to_vec(), v.current)
    }

    fn feed(w: &mut SampleWindows, xs: impl IntoIterator<Item = i32>, t: i64) {
        for x in xs {
            w.push(x as f64, t);
        }
    }

    #[test]
    fn first_freezes_then_last_rolls() {
        let mut w = SampleWindows::new(&ReferenceWindow::First(3), &CurrentWindow::Last(2), 100);
        feed(&mut w, 1..=2, 0);
        assert_eq!(plain(w.view(0)), (vec![1.0, 2.0], vec![]));
        feed(&mut w, 3..=7, 0);
        assert_eq!(plain(w.view(0)), (vec![1.0, 2.0, 3.0], vec![6.0, 7.0]));
        assert_eq!(w.counts(0), (3, 2));
        assert!(
            w.view(0).reference_sorted,
            "a full first-N reference is frozen sorted"
        );
    }

    #[test]
    fn preceding_rolls_before_current() {
        let mut w =
            SampleWindows::new(&ReferenceWindow::Preceding(3), &CurrentWindow::Last(2), 100);
        feed(&mut w, 1..=4, 0);
        assert_eq!(plain(w.view(0)), (vec![1.0, 2.0], vec![3.0, 4.0]));
        feed(&mut w, 5..=10, 0);
        assert_eq!(plain(w.view(0)), (vec![6.0, 7.0, 8.0], vec![9.0, 10.0]));
    }

    #[test]
    fn duration_window_by_arrival_time() {
        let cur = CurrentWindow::Duration(Duration::from_secs(10));
        let mut w = SampleWindows::new(&ReferenceWindow::Preceding(2), &cur, 100);
        feed(&mut w, 1..=3, 0);
        feed(&mut w, 4..=5, 8_000);
        assert_eq!(
            plain(w.view(9_000)),
            (vec![], vec![1.0, 2.0, 3.0, 4.0, 5.0])
        );
        // At t=15s the first three are older than 10s: they become the preceding reference (last 2 of them).
        assert_eq!(plain(w.view(15_000)), (vec![2.0, 3.0], vec![4.0, 5.0]));
        w.trim(15_000);
        assert_eq!(w.recent.len(), 4);
        assert_eq!(plain(w.view(30_000)), (vec![4.0, 5.0], vec![]));
    }

    #[test]
    fn file_reference_is_fixed_and_max_values_bounds() {
        let values: Arc<[f64]> = vec![9.0, 8.0].into();
        let r = ReferenceWindow::File {
            path: "x".into(),
            values,
        };
        let mut w = SampleWindows::new(&r, &CurrentWindow::Last(1000), 3);
        feed(&mut w, 1..=10, 0);
        // The file reference is shared sorted.
        assert_eq!(plain(w.view(0)), (vec![8.0, 9.0], vec![8.0, 9.0, 10.0]));
        assert!(w.view(0).reference_sorted);
    }

    #[test]
    fn ema_advances_per_sample() {
        let mut e = EmaState::default();
        e.push(1.0, 0.5);
        e.push(0.0, 0.5);
        assert_eq!(
            e,
            EmaState {
                value: Some(0.5),
                samples: 2
            }
        );
    }
}
