//! Per-series windows, pure and synchronous: what a rule keeps for one series (or one `by`
//! pool) between evaluations. Time is passed in as Unix milliseconds; nothing here reads a clock.
//!
//! The current window is kept sorted incrementally: `sorted` holds it as of the last sync, and
//! a sync (at each evaluation) takes out the values that left it and merges in the ones that
//! came, sorting only those. Values that left every window stay in `recent` until the next
//! sync has taken them out of `sorted`; when more than an eighth of the window arrives between
//! two evaluations, the sorted copy is dropped instead (a merge would cost more than a sort
//! then) and the next evaluation sorts afresh. So a window holds at most its size plus an
//! eighth: about 16 bytes per value (the arrival-order copy and the sorted copy), 8 for a
//! frozen reference.

pub mod counts;
pub mod timed;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::detect::control::{cusum_step, Baseline, CusumSpec, Welford};
use crate::detect::sort::sort_samples;
use timed::{TimedParts, TimedValues};

#[derive(Debug, Clone, PartialEq)]
pub enum ReferenceWindow {
    /// The first N samples a series receives, frozen.
    First(usize),
    /// The N samples just before the current window, rolling.
    Preceding(usize),
    /// A fixed reference loaded from a file (path resolved against the rule file's folder).
    File { path: PathBuf, values: Arc<[f64]> },
    /// The values that arrived in `[start_ms, end_ms)`, frozen once that period is over.
    Range { start_ms: i64, end_ms: i64 },
    /// The values that arrived in the span `duration` long that ended `offset` ago.
    Offset {
        offset: Duration,
        duration: Duration,
    },
}

impl ReferenceWindow {
    /// A reference in time (`range` or `offset`): its values are kept by arrival time.
    fn timed(&self, max_values: usize) -> Option<TimedValues> {
        match self {
            ReferenceWindow::Range { start_ms, end_ms } => Some(TimedValues::new(
                end_ms.saturating_sub(*start_ms) / CHUNKS_PER_SPAN,
                max_values,
            )),
            // Edges exact to a 32nd of the span, or to a 1024th of how far back it reaches.
            ReferenceWindow::Offset { offset, duration } => Some(TimedValues::new(
                (ms(*duration) / CHUNKS_PER_SPAN)
                    .max(ms(*offset).saturating_add(ms(*duration)) / 1024),
                max_values,
            )),
            _ => None,
        }
    }
}

/// Chunks of time in the span of a `range` or `offset` reference.
const CHUNKS_PER_SPAN: i64 = 32;

#[derive(Debug, Clone, PartialEq)]
pub enum CurrentWindow {
    /// The newest N samples.
    Last(usize),
    /// The samples received within this span.
    Duration(Duration),
}

/// Values that may arrive between two syncs of the sorted current window, at least: past
/// this many, or an eighth of the window, the sorted copy is dropped and rebuilt by the next
/// evaluation (a merge would cost more than a sort by then).
const SYNC_MIN: usize = 64;

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
    /// Values in arrival order; `recent[0]` is value number `base` of the stream.
    recent: VecDeque<f64>,
    /// Arrival times of `recent`, as runs of (time, count); only for `duration:` windows.
    times: VecDeque<(i64, u32)>,
    base: u64,
    /// Stream numbers below this are in no window any more.
    live: u64,
    /// The values of stream numbers `sorted_lo..sorted_hi`, sorted.
    sorted: Arc<Vec<f64>>,
    sorted_lo: u64,
    sorted_hi: u64,
    reference: ReferenceWindow,
    current: CurrentWindow,
    max_values: usize,
    /// Values taken in since this window was made (or restored): tells an evaluation whether
    /// anything arrived since the last test.
    received: u64,
    /// The values of a `range` reference while it fills, or what an `offset` reference may
    /// still need, by arrival time.
    timed: Option<TimedValues>,
}

/// The two windows, for a detector to run on outside any lock: both shared, not copied,
/// except a rolling (`preceding`) reference, which is copied out in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowView {
    pub reference: Arc<[f64]>,
    /// True when `reference` is sorted ascending (by `f64::total_cmp`).
    pub reference_sorted: bool,
    /// The current window, sorted ascending (by `f64::total_cmp`).
    pub current: Arc<Vec<f64>>,
}

/// What the state store keeps of a window.
pub struct WindowParts<'a> {
    /// A `first: N` reference (full or filling).
    pub first: &'a [f64],
    /// The values of the rolling windows, in arrival order.
    pub recent: std::collections::vec_deque::Iter<'a, f64>,
    /// Their arrival times (`duration:` windows only, else empty).
    pub times: Vec<i64>,
    /// A `range` reference while it fills, or an `offset` one: `(chunks, stride, offered)`
    /// of its [`TimedValues`].
    pub timed: Option<TimedParts>,
}

/// Sorts ascending by `f64::total_cmp`, the order the KS walk expects.
pub fn sort_values(v: &mut [f64]) {
    sort_samples(v);
}

fn sorted_arc(values: &[f64]) -> Arc<[f64]> {
    let mut v = values.to_vec();
    sort_values(&mut v);
    v.into()
}

/// `old` without `removed` (a sorted sub-multiset of it) and with `added` (sorted) merged in.
fn merge_update(old: &[f64], removed: &[f64], added: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(old.len() - removed.len().min(old.len()) + added.len());
    let (mut r, mut a) = (0, 0);
    for &x in old {
        if removed.get(r).is_some_and(|y| y.to_bits() == x.to_bits()) {
            r += 1;
            continue;
        }
        while let Some(&y) = added.get(a) {
            if y.total_cmp(&x).is_lt() {
                out.push(y);
                a += 1;
            } else {
                break;
            }
        }
        out.push(x);
    }
    out.extend_from_slice(added.get(a..).unwrap_or(&[]));
    debug_assert_eq!(r, removed.len(), "removed values were all in the window");
    out
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
            base: 0,
            live: 0,
            sorted: Arc::new(Vec::new()),
            sorted_lo: 0,
            sorted_hi: 0,
            reference: reference.clone(),
            current: current.clone(),
            max_values: max_values.max(1),
            received: 0,
            timed: reference.timed(max_values.max(1)),
        }
    }

    /// Values taken in since this window was made or restored; a test of a window whose count
    /// has not moved would only repeat the last one.
    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn push(&mut self, value: f64, now_ms: i64) {
        self.extend(&[value], now_ms);
    }

    /// Takes in `values` stamped `times` (one each, not decreasing, and none before what the
    /// window already holds: the engine checks), in order.
    pub fn extend_timed(&mut self, values: &[f64], times: &[i64]) {
        let mut start = 0;
        while start < values.len().min(times.len()) {
            let t = times[start];
            let end = start + times[start..].iter().take_while(|&&x| x == t).count();
            self.extend(&values[start..end], t);
            start = end;
        }
    }

    /// Takes in `values`, all arriving at `now_ms`, in order.
    pub fn extend(&mut self, mut values: &[f64], now_ms: i64) {
        self.received = self.received.saturating_add(values.len() as u64);
        if let ReferenceWindow::First(n) = self.reference {
            if self.frozen.is_none() {
                let take = (n - self.first.len().min(n)).min(values.len());
                self.first.extend_from_slice(&values[..take]);
                values = &values[take..];
                if self.first.len() >= n {
                    let mut full = std::mem::take(&mut self.first);
                    sort_values(&mut full);
                    self.frozen = Some(full.into());
                }
            }
        }
        self.feed_timed(values, now_ms);
        if values.is_empty() {
            return;
        }
        self.reserve(values.len());
        self.recent.extend(values.iter().copied());
        if matches!(self.current, CurrentWindow::Duration(_)) {
            let mut left = values.len();
            while left > 0 {
                let chunk = left.min(u32::MAX as usize) as u32;
                match self.times.back_mut() {
                    Some((t, c)) if *t == now_ms && *c <= u32::MAX - chunk => *c += chunk,
                    _ => self.times.push_back((now_ms, chunk)),
                }
                left -= chunk as usize;
            }
        }
        self.trim(now_ms);
        if self.end() - self.sorted_hi > self.sync_after() as u64 {
            // More has come than a merge is worth: let the sorted window go (and with it the
            // values it still needed to take out); the next evaluation sorts afresh.
            self.drop_sorted();
        }
    }

    /// Gives a `range` or `offset` reference what it takes of `values`, arriving at `now_ms`.
    fn feed_timed(&mut self, values: &[f64], now_ms: i64) {
        match (&self.reference, &mut self.timed) {
            (ReferenceWindow::Range { start_ms, end_ms }, Some(t))
                if (*start_ms..*end_ms).contains(&now_ms) =>
            {
                t.push(values, now_ms);
            }
            (ReferenceWindow::Offset { offset, duration }, Some(t)) => {
                t.push(values, now_ms);
                t.forget_before(now_ms.saturating_sub(ms(*offset).saturating_add(ms(*duration))));
            }
            _ => {}
        }
        self.freeze_range(now_ms);
    }

    /// Freezes a `range` reference once a value arrives after its period (sorted once, like
    /// `first`): samples come in time order, so nothing more can fall inside it.
    fn freeze_range(&mut self, now_ms: i64) {
        if let ReferenceWindow::Range { end_ms, .. } = self.reference {
            if now_ms >= end_ms && self.frozen.is_none() {
                let t = self.timed.take();
                let mut v = t.map_or_else(Vec::new, |t| t.select(i64::MIN, i64::MAX));
                sort_values(&mut v);
                self.frozen = Some(v.into());
            }
        }
    }

    /// Forgets the sorted current window; the next sync rebuilds it.
    fn drop_sorted(&mut self) {
        self.sorted = Arc::new(Vec::new());
        self.sorted_lo = self.end();
        self.sorted_hi = self.end();
        self.release();
    }

    /// Grows `recent` for `more` values without overshooting what the windows can hold.
    fn reserve(&mut self, more: usize) {
        let need = self.recent.len() + more;
        if need <= self.recent.capacity() {
            return;
        }
        let most = self.max_cap() + self.sync_after();
        let want = (self.recent.capacity() * 2).max(16).min(most).max(need);
        self.recent.reserve_exact(want - self.recent.len());
    }

    /// Values that may arrive before the sorted window is brought up to date.
    fn sync_after(&self) -> usize {
        SYNC_MIN.max(self.sorted.len() / 8)
    }

    fn preceding(&self) -> usize {
        match self.reference {
            ReferenceWindow::Preceding(p) => p.min(self.max_values),
            _ => 0,
        }
    }

    /// Values `recent` keeps when the current window holds `current`.
    fn cap_for(&self, current: usize) -> usize {
        current.min(self.max_values) + self.preceding()
    }

    /// The most values `recent` keeps live.
    fn max_cap(&self) -> usize {
        match self.current {
            CurrentWindow::Last(n) => self.cap_for(n),
            CurrentWindow::Duration(_) => self.cap_for(self.max_values),
        }
    }

    /// Stream number one past the newest value.
    fn end(&self) -> u64 {
        self.base + self.recent.len() as u64
    }

    /// Number of live values that arrived at or after `now_ms - d`, newest first.
    fn arrived_since(&self, cutoff: i64) -> usize {
        let live = (self.end() - self.live) as usize;
        let mut n = 0usize;
        for &(t, c) in self.times.iter().rev() {
            if t < cutoff || n >= live {
                break;
            }
            n += c as usize;
        }
        n.min(live)
    }

    /// Number of values in the current window at `now_ms`.
    fn current_len(&self, now_ms: i64) -> usize {
        let live = (self.end() - self.live) as usize;
        let n = match self.current {
            CurrentWindow::Last(n) => n,
            CurrentWindow::Duration(d) => {
                self.arrived_since(now_ms.saturating_sub(d.as_millis() as i64))
            }
        };
        n.min(self.max_values).min(live)
    }

    /// Drops what no window can need any more.
    pub fn trim(&mut self, now_ms: i64) {
        let keep = self.cap_for(self.current_len(now_ms)) as u64;
        self.live = self.live.max(self.end().saturating_sub(keep));
        self.release();
    }

    /// Frees the values below both the live ones and the sorted window.
    fn release(&mut self) {
        let upto = self.live.min(self.sorted_lo);
        while self.base < upto {
            let drop = ((upto - self.base) as usize).min(self.recent.len());
            self.recent.drain(..drop);
            self.base += drop as u64;
            let mut left = drop;
            while left > 0 {
                let Some(front) = self.times.front_mut() else {
                    break;
                };
                let c = front.1 as usize;
                if c <= left {
                    left -= c;
                    self.times.pop_front();
                } else {
                    front.1 -= left as u32;
                    left = 0;
                }
            }
            if drop == 0 {
                break;
            }
        }
    }

    /// The values of stream numbers `lo..hi` (all still in `recent`).
    fn range(&self, lo: u64, hi: u64) -> std::collections::vec_deque::Iter<'_, f64> {
        self.recent
            .range((lo - self.base) as usize..(hi - self.base) as usize)
    }

    /// Brings the sorted current window up to `now_ms`.
    fn sync(&mut self, now_ms: i64) {
        self.trim(now_ms);
        let hi = self.end();
        let lo = hi - self.current_len(now_ms) as u64;
        if (lo, hi) == (self.sorted_lo, self.sorted_hi) {
            return;
        }
        let (old_lo, old_hi) = (self.sorted_lo, self.sorted_hi);
        let changed = lo.saturating_sub(old_lo) + (hi - old_hi.min(hi));
        let next = if lo < old_lo || lo >= old_hi || changed >= hi - lo {
            // Moved back (a clock going backwards), replaced or mostly replaced: sort afresh.
            let mut v: Vec<f64> = self.range(lo, hi).copied().collect();
            sort_values(&mut v);
            v
        } else {
            let mut removed: Vec<f64> = self.range(old_lo, lo).copied().collect();
            let mut added: Vec<f64> = self.range(old_hi, hi).copied().collect();
            sort_values(&mut removed);
            sort_values(&mut added);
            merge_update(&self.sorted, &removed, &added)
        };
        self.sorted = Arc::new(next);
        (self.sorted_lo, self.sorted_hi) = (lo, hi);
        self.release();
    }

    /// The raw parts, for the state store.
    pub fn parts(&self) -> WindowParts<'_> {
        let first: &[f64] = match (&self.reference, &self.frozen) {
            (ReferenceWindow::First(_) | ReferenceWindow::Range { .. }, Some(frozen)) => frozen,
            _ => &self.first,
        };
        let skip = (self.live - self.base) as usize;
        let mut times = Vec::new();
        if matches!(self.current, CurrentWindow::Duration(_)) {
            times.reserve_exact(self.recent.len() - skip);
            let mut skipped = 0usize;
            for &(t, c) in &self.times {
                let c = c as usize;
                let drop = (skip - skipped).min(c);
                skipped += drop;
                times.extend(std::iter::repeat_n(t, c - drop));
            }
        }
        WindowParts {
            first,
            recent: self.recent.range(skip..),
            times,
            timed: self.timed.as_ref().map(TimedValues::parts),
        }
    }

    /// The frozen `first: N` reference, once it is full, or a `range` one once its period
    /// is over.
    pub fn frozen_first(&self) -> Option<&[f64]> {
        match (&self.reference, &self.frozen) {
            (ReferenceWindow::First(_) | ReferenceWindow::Range { .. }, Some(frozen)) => {
                Some(frozen)
            }
            _ => None,
        }
    }

    /// Rebuilds windows from stored parts. `None` when the parts cannot belong to this spec
    /// (times missing for a `duration` window, or present for a `last` one; a reference in
    /// time without its values, or values for one that is not).
    pub fn from_parts(
        reference: &ReferenceWindow,
        current: &CurrentWindow,
        max_values: usize,
        first: Vec<f64>,
        recent: Vec<f64>,
        times: Vec<i64>,
        timed_parts: Option<TimedParts>,
    ) -> Option<Self> {
        let timed = matches!(current, CurrentWindow::Duration(_));
        if (timed && times.len() != recent.len()) || (!timed && !times.is_empty()) {
            return None;
        }
        let mut w = SampleWindows::new(reference, current, max_values);
        match (reference, timed_parts) {
            (ReferenceWindow::First(n), None) => {
                if first.len() > *n || (first.len() < *n && !recent.is_empty()) {
                    return None;
                }
            }
            // A range is stored as its frozen values once over, as its chunks before.
            (ReferenceWindow::Range { .. }, None) => w.timed = None,
            (ReferenceWindow::Range { .. }, Some(_))
            | (ReferenceWindow::Offset { .. }, Some(_))
                if !first.is_empty() =>
            {
                return None
            }
            (ReferenceWindow::Range { .. } | ReferenceWindow::Offset { .. }, Some(parts)) => {
                let chunk_ms = w.timed.as_ref().map_or(1000, TimedValues::chunk_ms);
                w.timed = Some(TimedValues::from_parts(chunk_ms, w.max_values, parts)?);
            }
            (_, Some(_)) => return None,
            (_, None) if !first.is_empty() => return None,
            (_, None) => {}
        }
        match reference {
            ReferenceWindow::First(n) if first.len() == *n => w.frozen = Some(sorted_arc(&first)),
            ReferenceWindow::Range { .. } if w.timed.is_none() => {
                w.frozen = Some(sorted_arc(&first))
            }
            _ => w.first = first,
        }
        for &t in &times {
            match w.times.back_mut() {
                Some((last, c)) if *last == t && *c < u32::MAX => *c += 1,
                _ => w.times.push_back((t, 1)),
            }
        }
        w.recent = recent.into();
        w.base = 0;
        w.live = 0;
        Some(w)
    }

    /// Number of values in the (reference, current) windows at `now_ms`.
    pub fn counts(&self, now_ms: i64) -> (usize, usize) {
        let cur = self.current_len(now_ms);
        let reference = match &self.reference {
            ReferenceWindow::First(_) => self.frozen.as_ref().map_or(self.first.len(), |f| f.len()),
            // What a trim keeps: `preceding: N`, within `max_values`.
            ReferenceWindow::Preceding(_) => {
                ((self.end() - self.live) as usize - cur).min(self.preceding())
            }
            ReferenceWindow::File { values, .. } => values.len(),
            ReferenceWindow::Range { end_ms, .. } => match (&self.frozen, &self.timed) {
                (Some(f), _) => f.len(),
                (None, Some(t)) if now_ms >= *end_ms => t.held(),
                _ => 0,
            },
            ReferenceWindow::Offset { offset, duration } => {
                let (from, to) = offset_span(now_ms, *offset, *duration);
                self.timed.as_ref().map_or(0, |t| t.count(from, to))
            }
        };
        (reference, cur)
    }

    /// Values this window holds (a `file:` reference, shared by the rule, not counted).
    pub fn held(&self) -> usize {
        let first = match (&self.reference, &self.frozen) {
            (ReferenceWindow::First(_) | ReferenceWindow::Range { .. }, Some(f)) => f.len(),
            _ => self.first.len(),
        };
        first + (self.end() - self.live) as usize + self.timed.as_ref().map_or(0, |t| t.held())
    }

    /// What [`held`](Self::held) would be after `k` more values, at most.
    pub fn held_after(&self, k: usize) -> usize {
        let (first, rest) = match (&self.reference, &self.frozen) {
            (ReferenceWindow::First(n), None) => {
                let take = (n - self.first.len().min(*n)).min(k);
                (self.first.len() + take, k - take)
            }
            (ReferenceWindow::First(_), Some(f)) => (f.len(), k),
            (ReferenceWindow::Range { .. }, Some(f)) => (f.len(), k),
            // A reference in time may take every value of the batch too, up to `max_values`.
            _ => match &self.timed {
                Some(t) => ((t.held() + k).min(self.max_values.max(t.held())), k),
                None => (0, k),
            },
        };
        let cap = self.max_cap();
        let recent = (self.end() - self.live) as usize + rest;
        first + recent.min(cap.max((self.end() - self.live) as usize))
    }

    /// The newest `k` values of the current window at `now_ms` (all of it when it holds
    /// fewer), in arrival order: the smaller windows of `current: {last: [..]}`, which hold
    /// nothing of their own.
    pub fn newest(&self, k: usize, now_ms: i64) -> Vec<f64> {
        let n = self.current_len(now_ms).min(k) as u64;
        let end = self.end();
        // The current window's values are live, hence still in `recent`.
        self.range(end - n, end).copied().collect()
    }

    /// The windows as they stand at `now_ms`; brings the sorted current window up to date.
    pub fn view(&mut self, now_ms: i64) -> WindowView {
        self.sync(now_ms);
        let (nref, ncur) = self.counts(now_ms);
        let (reference, reference_sorted) = match (&self.reference, &self.frozen) {
            (_, Some(frozen)) => (Arc::clone(frozen), true),
            // Not over yet: no reference to test against. Over, but frozen only by the first
            // value that arrives after it (values stamped inside it may still be coming, as a
            // query source's warm-up reads the period batch by batch): what it holds so far.
            (ReferenceWindow::Range { end_ms, .. }, None) => match &self.timed {
                Some(t) if now_ms >= *end_ms => (t.select(i64::MIN, i64::MAX).into(), false),
                _ => (Arc::from([]), true),
            },
            (ReferenceWindow::Offset { offset, duration }, None) => {
                let (from, to) = offset_span(now_ms, *offset, *duration);
                let v = self
                    .timed
                    .as_ref()
                    .map_or_else(Vec::new, |t| t.select(from, to));
                (v.into(), false)
            }
            (ReferenceWindow::Preceding(_), None) => {
                let end = self.end() - ncur as u64;
                (self.range(end - nref as u64, end).copied().collect(), false)
            }
            (_, None) => (self.first.as_slice().into(), false),
        };
        WindowView {
            reference,
            reference_sorted,
            current: Arc::clone(&self.sorted),
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `[from, to)`: the span `duration` long that ended `offset` before `now_ms`.
fn offset_span(now_ms: i64, offset: Duration, duration: Duration) -> (i64, i64) {
    let to = now_ms.saturating_sub(ms(offset));
    (to.saturating_sub(ms(duration)), to)
}

/// The running EMA (or CUSUM) of one rule+series: advanced once per sample, in arrival order.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EmaState {
    pub value: Option<f64>,
    pub samples: u64,
    /// The baseline of a control chart, while it is learned and after.
    pub baseline: Welford,
    /// CUSUM's upper and lower sums.
    pub hi: f64,
    pub lo: f64,
}

impl EmaState {
    /// An EMA with control limits: the first `baseline` samples make the baseline (the EMA
    /// runs over them as usual), then the EMA restarts at the baseline's mean, as an EWMA
    /// chart starts at the in-control mean.
    pub fn push_charted(&mut self, x: f64, smoothing: f64, baseline: u64) {
        if self.baseline.n < baseline {
            self.baseline.push(x);
            self.push(x, smoothing);
            if self.baseline.n == baseline {
                self.value = Some(self.baseline.mean);
            }
            return;
        }
        self.push(x, smoothing);
    }

    /// One CUSUM step: learns the baseline first (when the rule learns it), then sums the
    /// standardised values. `value` holds the last value.
    pub fn push_cusum(&mut self, x: f64, spec: &CusumSpec) {
        self.value = Some(x);
        self.samples = self.samples.saturating_add(1);
        let (mean, sd) = match spec.baseline {
            Baseline::Learn(n) if self.baseline.n < n => {
                self.baseline.push(x);
                return;
            }
            Baseline::Learn(_) => (self.baseline.mean, self.baseline.sd()),
            Baseline::Given { mean, sd } => (mean, sd),
        };
        if sd > 0.0 && x.is_finite() {
            (self.hi, self.lo) = cusum_step(self.hi, self.lo, (x - mean) / sd, spec.k);
        }
    }

    /// Has the CUSUM's baseline been learned (or was it given)?
    pub fn cusum_ready(&self, spec: &CusumSpec) -> bool {
        match spec.baseline {
            Baseline::Learn(n) => self.baseline.n >= n && self.baseline.sd() > 0.0,
            Baseline::Given { .. } => true,
        }
    }

    pub fn push(&mut self, x: f64, smoothing: f64) {
        self.value = Some(crate::detect::ema::step(self.value, x, smoothing));
        // A count restored from the store may be anything: never overflow.
        self.samples = self.samples.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn plain(v: WindowView) -> (Vec<f64>, Vec<f64>) {
        (v.reference.to_vec(), v.current.to_vec())
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
    fn newest_gives_the_end_of_the_current_window() {
        let mut w =
            SampleWindows::new(&ReferenceWindow::Preceding(3), &CurrentWindow::Last(4), 100);
        feed(&mut w, 1..=10, 0);
        assert_eq!(w.newest(2, 0), [9.0, 10.0]);
        assert_eq!(w.newest(4, 0), [7.0, 8.0, 9.0, 10.0]);
        // Never more than the current window: the reference is not in it.
        assert_eq!(w.newest(9, 0), [7.0, 8.0, 9.0, 10.0]);
        // The windows hold the largest size and the reference, nothing for the smaller ones.
        assert_eq!(w.held(), 7);
        let mut fresh =
            SampleWindows::new(&ReferenceWindow::First(3), &CurrentWindow::Last(4), 100);
        feed(&mut fresh, 1..=4, 0);
        assert_eq!(fresh.newest(2, 0), [4.0]);
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
    fn duration_window_by_sample_timestamps() {
        let cur = CurrentWindow::Duration(Duration::from_secs(10));
        let mut w = SampleWindows::new(&ReferenceWindow::Preceding(2), &cur, 100);
        // One batch at t=20s carrying stamps of 0s, 0s, 8s, 12s and 15s.
        w.extend_timed(&[1.0, 2.0, 3.0, 4.0, 5.0], &[0, 0, 8_000, 12_000, 15_000]);
        assert_eq!(plain(w.view(20_000)), (vec![2.0, 3.0], vec![4.0, 5.0]));
        assert_eq!(w.parts().times, [0, 8_000, 12_000, 15_000]);
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

    /// A plain model of the windows: every value with its time, windows cut by scanning;
    /// values before `live` were dropped (by a trim at a later time than now, say).
    struct Model {
        values: Vec<(f64, i64)>,
        live: usize,
        preceding: usize,
    }

    impl Model {
        fn current_len(&self, cur: &CurrentWindow, max_values: usize, now: i64) -> usize {
            let n = match cur {
                CurrentWindow::Last(n) => *n,
                CurrentWindow::Duration(d) => {
                    let cutoff = now - d.as_millis() as i64;
                    self.values
                        .iter()
                        .rev()
                        .take_while(|&&(_, t)| t >= cutoff)
                        .count()
                }
            };
            n.min(max_values).min(self.values.len() - self.live)
        }

        fn trim(&mut self, cur: &CurrentWindow, max_values: usize, now: i64) {
            let keep = self.current_len(cur, max_values, now) + self.preceding.min(max_values);
            self.live = self.live.max(self.values.len().saturating_sub(keep));
        }

        fn current(&mut self, cur: &CurrentWindow, max_values: usize, now: i64) -> Vec<f64> {
            self.trim(cur, max_values, now);
            let n = self.current_len(cur, max_values, now);
            let mut v: Vec<f64> = self.values[self.values.len() - n..]
                .iter()
                .map(|&(x, _)| x)
                .collect();
            v.sort_unstable_by(f64::total_cmp);
            v
        }
    }

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        fn value(&mut self) -> f64 {
            // Few distinct values, so ties, plus signed zeros.
            match self.below(10) {
                0 => 0.0,
                1 => -0.0,
                _ => self.below(50) as f64 - 25.0,
            }
        }
    }

    #[test]
    fn the_sorted_current_window_is_the_sorted_arrival_window() {
        let mut rng = Lcg(7);
        for case in 0..300 {
            let max_values = 1 + rng.below(300) as usize;
            let cur = if rng.below(2) == 0 {
                CurrentWindow::Last(1 + rng.below(200) as usize)
            } else {
                CurrentWindow::Duration(Duration::from_millis(1 + rng.below(5_000)))
            };
            let reference = match rng.below(3) {
                0 => ReferenceWindow::Preceding(1 + rng.below(100) as usize),
                1 => ReferenceWindow::First(rng.below(50) as usize + 1),
                _ => ReferenceWindow::File {
                    path: "x".into(),
                    values: vec![1.0].into(),
                },
            };
            let mut w = SampleWindows::new(&reference, &cur, max_values);
            let mut model = Model {
                values: vec![],
                live: 0,
                preceding: match reference {
                    ReferenceWindow::Preceding(p) => p,
                    _ => 0,
                },
            };
            let mut first_left = match reference {
                ReferenceWindow::First(n) => n,
                _ => 0,
            };
            let mut now = 1_000_000i64;
            for step in 0..60 {
                // Time mostly moves forward, sometimes stands still, rarely goes back.
                now += match rng.below(10) {
                    0 => -(rng.below(2_000) as i64),
                    1 => 0,
                    _ => rng.below(1_500) as i64,
                };
                let batch: Vec<f64> = (0..rng.below(120)).map(|_| rng.value()).collect();
                let bound = w.held_after(batch.len());
                w.extend(&batch, now);
                assert!(
                    w.held() <= bound,
                    "case {case} step {step}: held_after bounds held"
                );
                let to_window = batch.len() - first_left.min(batch.len());
                first_left -= batch.len() - to_window;
                model
                    .values
                    .extend(batch[batch.len() - to_window..].iter().map(|&x| (x, now)));
                if to_window > 0 {
                    model.trim(&cur, max_values, now);
                }
                let physical = w.recent.len();
                let live = (w.end() - w.live) as usize;
                assert!(
                    physical <= live + w.sorted.len() + w.sync_after() + batch.len(),
                    "case {case} step {step}: {physical} held for {live} live"
                );
                if rng.below(3) == 0 {
                    let want = model.current(&cur, max_values, now);
                    let got = w.view(now).current;
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "case {case} step {step} {cur:?}");
                }
            }
        }
    }

    #[test]
    fn restored_windows_larger_than_their_caps_count_what_a_view_gives() {
        // Found by the store_codec fuzz target: a stored `preceding` reference longer than
        // `max_values` allows (a store written under other limits).
        let reference = ReferenceWindow::Preceding(10);
        let cur = CurrentWindow::Last(1);
        let recent: Vec<f64> = (0..5).map(f64::from).collect();
        let mut w = SampleWindows::from_parts(&reference, &cur, 1, vec![], recent, vec![], None)
            .unwrap_or_else(|| panic!("parts fit"));
        let counts = w.counts(0);
        let view = w.view(0);
        assert_eq!(counts, (view.reference.len(), view.current.len()));
        assert_eq!(plain(view), (vec![3.0], vec![4.0]));
    }

    #[test]
    fn parts_round_trip_keeps_the_windows() {
        let cur = CurrentWindow::Duration(Duration::from_secs(10));
        let reference = ReferenceWindow::Preceding(3);
        let mut w = SampleWindows::new(&reference, &cur, 100);
        feed(&mut w, 1..=4, 0);
        feed(&mut w, 5..=6, 5_000);
        feed(&mut w, 7..=9, 12_000);
        let view = plain(w.view(12_000));
        let parts = w.parts();
        let (first, recent, times) = (
            parts.first.to_vec(),
            parts.recent.copied().collect::<Vec<_>>(),
            parts.times.clone(),
        );
        assert_eq!(recent.len(), times.len());
        let mut back = SampleWindows::from_parts(&reference, &cur, 100, first, recent, times, None)
            .unwrap_or_else(|| panic!("parts fit"));
        assert_eq!(plain(back.view(12_000)), view);
        assert_eq!(view, (vec![2.0, 3.0, 4.0], vec![5.0, 6.0, 7.0, 8.0, 9.0]));
    }

    /// Stores and restores `w` as the state store does.
    fn round_trip(
        w: &SampleWindows,
        reference: &ReferenceWindow,
        cur: &CurrentWindow,
    ) -> SampleWindows {
        let parts = w.parts();
        SampleWindows::from_parts(
            reference,
            cur,
            1000,
            parts.first.to_vec(),
            parts.recent.copied().collect(),
            parts.times.clone(),
            parts.timed.clone(),
        )
        .unwrap_or_else(|| panic!("parts fit"))
    }

    #[test]
    fn a_range_reference_is_what_arrived_in_the_period_frozen_after_it() {
        const S: i64 = 1000;
        let reference = ReferenceWindow::Range {
            start_ms: 100 * S,
            end_ms: 200 * S,
        };
        let cur = CurrentWindow::Last(3);
        let mut w = SampleWindows::new(&reference, &cur, 1000);
        feed(&mut w, [1, 2], 50 * S); // before the period
        feed(&mut w, [30, 10, 20], 100 * S);
        feed(&mut w, [40], 199 * S);
        // While the period lasts there is no reference to test against.
        let v = w.view(150 * S);
        assert!(v.reference.is_empty());
        let mut back = round_trip(&w, &reference, &cur);
        feed(&mut w, [7, 8, 9], 200 * S); // after it
        feed(&mut back, [7, 8, 9], 200 * S);
        for w in [&mut w, &mut back] {
            let v = w.view(201 * S);
            assert_eq!(
                plain(v.clone()),
                (vec![10.0, 20.0, 30.0, 40.0], vec![7.0, 8.0, 9.0])
            );
            assert!(v.reference_sorted);
            assert_eq!(w.frozen_first(), Some(&[10.0, 20.0, 30.0, 40.0][..]));
        }
        let mut again = round_trip(&w, &reference, &cur);
        assert_eq!(plain(again.view(300 * S)).0, vec![10.0, 20.0, 30.0, 40.0]);
    }

    #[test]
    fn a_view_after_the_range_does_not_freeze_it_before_its_last_values_came() {
        // Regression: a view at a wall-clock time past the period froze what had come so far,
        // and values stamped inside it that came later (a warm-up's next batch) were lost.
        const S: i64 = 1000;
        let reference = ReferenceWindow::Range {
            start_ms: 100 * S,
            end_ms: 200 * S,
        };
        let cur = CurrentWindow::Last(3);
        let mut w = SampleWindows::new(&reference, &cur, 1000);
        feed(&mut w, [1, 2], 100 * S);
        let mut partial = plain(w.view(1000 * S)).0;
        partial.sort_by(f64::total_cmp);
        assert_eq!(partial, [1.0, 2.0], "what the period holds so far");
        assert_eq!(w.counts(1000 * S).0, 2);
        assert_eq!(w.frozen_first(), None);
        feed(&mut w, [4, 3], 150 * S);
        feed(&mut w, [5], 250 * S);
        assert_eq!(plain(w.view(1000 * S)).0, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(w.frozen_first(), Some(&[1.0, 2.0, 3.0, 4.0][..]));
    }

    #[test]
    fn an_offset_reference_is_the_same_span_earlier_and_old_values_go() {
        const MIN: i64 = 60_000;
        let reference = ReferenceWindow::Offset {
            offset: Duration::from_secs(3600),
            duration: Duration::from_secs(600),
        };
        let cur = CurrentWindow::Duration(Duration::from_secs(600));
        let mut w = SampleWindows::new(&reference, &cur, 1000);
        // One value a minute for two hours: the value is the minute.
        for m in 0..120 {
            feed(&mut w, [m], m as i64 * MIN);
        }
        // At minute 120 the reference is minutes 50..60, the current window 110..=119.
        let now = 120 * MIN;
        let (r, c) = plain(w.view(now));
        let mut r = r;
        r.sort_by(f64::total_cmp);
        assert_eq!(r, (50..60).map(f64::from).collect::<Vec<_>>());
        assert_eq!(c, (110..120).map(f64::from).collect::<Vec<_>>());
        assert_eq!(w.counts(now).0, 10);
        // What no reference can need any more (before minute 49, to a chunk) is gone.
        assert!(w.held() <= 70 + 10 + 2, "{}", w.held());
        let mut back = round_trip(&w, &reference, &cur);
        assert_eq!(plain(back.view(now)).0.len(), 10);
        // Restored parts of another kind do not fit.
        let parts = w.parts();
        let other = SampleWindows::from_parts(
            &ReferenceWindow::Preceding(10),
            &cur,
            1000,
            Vec::new(),
            parts.recent.copied().collect(),
            parts.times.clone(),
            parts.timed.clone(),
        );
        assert!(other.is_none());
    }

    #[test]
    fn ema_sample_count_saturates() {
        // Found by the store_codec fuzz target: a stored count at u64::MAX.
        let mut e = EmaState {
            value: Some(1.0),
            samples: u64::MAX,
            ..EmaState::default()
        };
        e.push(1.0, 0.5);
        assert_eq!(e.samples, u64::MAX);
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
                samples: 2,
                ..EmaState::default()
            }
        );
    }
}
