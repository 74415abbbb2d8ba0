//! Windows in time over counters: what a `histogram:` or `categories:` rule keeps for one
//! series (its labels without `le` or the category label). Pure and synchronous; time comes
//! in as Unix milliseconds.
//!
//! Every bin (a bucket's `le`, or a category) is a counter. A sample's increase over the
//! previous sample of the same counter is what the windows count, reset-aware as Prometheus's
//! `increase()`: a value below the previous one means the counter restarted from 0, so the
//! whole new value is the increase. The first sample of a counter is its baseline (nothing is
//! known of what came before it). So a window holds counts per bin, not values, and the same
//! data gives the same counts whether it came by scrape, remote write, query or push.
//!
//! Increases are summed into chunks of time: the current window in chunks of a 32nd of its
//! span (at least a second), older data (a `preceding` or `offset` reference) in chunks of a
//! 32nd of the reference's span, or of a 1024th of how far back it reaches when that is
//! coarser. So a window's edges are exact to one chunk, and memory is bounded by chunks × bins
//! whatever the traffic. A frozen reference (`first`, `range`, `file`) is one vector of
//! counts.
//!
//! Histograms: a bucket's counter is cumulative (`le`), so the counts of a window are turned
//! into counts per bucket by differences between adjacent edges. Only edges both windows saw
//! are used: two bucket layouts are re-binned to the edges they share (merging buckets), so
//! a layout change, or native-histogram buckets that appear later, never compare unlike
//! buckets. A difference that rounding or a half-seen scrape makes negative counts as 0.
//! Categories: the reference's categories in order, then `other`, which pools the categories
//! the reference never saw.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What the bins of a count window are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinKind {
    /// Histogram buckets, named by their upper edge (`le`), cumulative.
    Edges,
    /// Categories, each its own counter.
    Categories,
}

/// The reference of a count window.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeReference {
    /// The series' first span, frozen.
    First(Duration),
    /// The span just before the current window, rolling.
    Preceding(Duration),
    /// The span `duration` long ending `offset` before now.
    Offset {
        offset: Duration,
        duration: Duration,
    },
    /// A fixed period, `[start_ms, end_ms)`.
    Range { start_ms: i64, end_ms: i64 },
    /// Counts from a file: `(bin, count)`, the bin as its label value (`le` or category); for
    /// histograms the counts are cumulative, as `le` buckets are.
    File {
        path: PathBuf,
        counts: Arc<[(String, f64)]>,
    },
}

impl TimeReference {
    /// How far back from now the data for this reference reaches (0 for a frozen one).
    fn lookback_ms(&self, current_ms: i64) -> i64 {
        match self {
            TimeReference::Preceding(d) => current_ms + ms(*d),
            TimeReference::Offset { offset, duration } => ms(*offset) + ms(*duration),
            _ => 0,
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Bins one series may have, at most: more distinct `le` values or categories than this are
/// not taken (a label gone wild must not grow memory without bound).
pub const MAX_BINS: usize = 1024;

/// Chunks in the span of a window.
const CHUNKS_PER_WINDOW: i64 = 32;
/// Chunks of older data, at most.
const MAX_OLD_CHUNKS: i64 = 1024;

#[derive(Debug, Clone)]
struct Bin {
    /// The label value naming it (shared with every view, not copied).
    label: Arc<str>,
    /// The upper edge, for histograms.
    edge: f64,
    /// The counter's last value.
    last: f64,
    /// When it was first and last seen.
    first_ms: i64,
    last_ms: i64,
}

#[derive(Debug, Clone)]
struct Chunk {
    start_ms: i64,
    /// Increases per bin id.
    counts: Vec<f64>,
}

impl Chunk {
    /// Adds `x` to `bin`; true when the bin held nothing before.
    fn add(&mut self, bin: usize, x: f64) -> bool {
        if self.counts.len() <= bin {
            self.counts.resize(bin + 1, 0.0);
        }
        let was_empty = self.counts[bin] == 0.0;
        self.counts[bin] += x;
        was_empty
    }
}

/// The two windows of counts of one rule+series.
#[derive(Debug, Clone)]
pub struct CountWindows {
    kind: BinKind,
    reference: TimeReference,
    current_ms: i64,
    fine_ms: i64,
    coarse_ms: i64,
    bins: Vec<Bin>,
    /// Bin ids of histogram edges (by the edge's bits, so `1`, `1.0` and `1e0` are one bin)
    /// and of categories (by name): looked up without allocating.
    edge_index: HashMap<u64, usize>,
    name_index: HashMap<String, usize>,
    /// Bin ids in ascending order of their edges (histograms).
    by_edge: Vec<usize>,
    /// The current window's chunks, oldest first.
    fine: VecDeque<Chunk>,
    /// The sum of `fine` per bin id, kept as chunks come and go, so a test does not add up
    /// every chunk; recomputed from the chunks every [`CHUNKS_PER_WINDOW`] evictions, so
    /// rounding (of counts that are not whole) does not build up.
    fine_sum: Vec<f64>,
    /// Per bin id, how many chunks of `fine` hold a count for it: when the last one goes
    /// the bin's sum is exactly 0, whatever rounding the subtractions left.
    fine_live: Vec<u32>,
    evictions: u32,
    /// Older chunks, for a `preceding` or `offset` reference.
    coarse: VecDeque<Chunk>,
    /// A `first` or `range` reference's counts per bin id.
    frozen: Vec<f64>,
    /// When the series was first seen (the start of a `first` reference).
    start_ms: Option<i64>,
    /// Increases taken in since this window was made.
    received: u64,
}

/// A count window as the state store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct CountParts {
    /// `(label, last counter value, first seen, last seen)`.
    pub bins: Vec<(String, f64, i64, i64)>,
    /// `(start, counts per bin)` of the current window's chunks and the older ones.
    pub fine: Vec<(i64, Vec<f64>)>,
    pub coarse: Vec<(i64, Vec<f64>)>,
    pub frozen: Vec<f64>,
    pub start_ms: Option<i64>,
    pub received: u64,
}

/// Two windows of counts over the same bins, ready for a test.
#[derive(Debug, Clone, PartialEq)]
pub struct CountView {
    /// Bin names: `le` values in ascending order, or categories (the last `other` when the
    /// current window saw categories the reference did not). Empty from
    /// [`CountWindows::counts`].
    pub bins: Vec<Arc<str>>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
    /// False while a `first` reference is still filling, or a `range` is not over yet.
    pub reference_complete: bool,
}

/// Parses an `le` label value as Prometheus writes it (`+Inf`, `0.5`, `1e-05`).
pub fn parse_edge(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        t => t.parse::<f64>().ok().filter(|x| !x.is_nan()),
    }
}

impl CountWindows {
    pub fn new(kind: BinKind, reference: &TimeReference, current: Duration) -> Self {
        let current_ms = ms(current).max(1);
        let fine_ms = (current_ms / CHUNKS_PER_WINDOW).max(1000);
        let coarse_ms = match reference {
            TimeReference::Preceding(d) => (ms(*d) / CHUNKS_PER_WINDOW).max(fine_ms),
            TimeReference::Offset { offset, duration } => (ms(*duration) / CHUNKS_PER_WINDOW)
                .max((ms(*offset) + ms(*duration)) / MAX_OLD_CHUNKS)
                .max(fine_ms),
            _ => fine_ms,
        };
        // Whole fine chunks fall into one coarse chunk.
        let coarse_ms = (coarse_ms + fine_ms - 1) / fine_ms * fine_ms;
        let mut w = CountWindows {
            kind,
            reference: reference.clone(),
            current_ms,
            fine_ms,
            coarse_ms,
            bins: Vec::new(),
            edge_index: HashMap::new(),
            name_index: HashMap::new(),
            by_edge: Vec::new(),
            fine: VecDeque::new(),
            fine_sum: Vec::new(),
            fine_live: Vec::new(),
            evictions: 0,
            coarse: VecDeque::new(),
            frozen: Vec::new(),
            start_ms: None,
            received: 0,
        };
        if let TimeReference::File { counts, .. } = reference {
            for (label, count) in counts.iter() {
                if let Some(id) = w.bin(label, i64::MIN) {
                    if w.frozen.len() <= id {
                        w.frozen.resize(id + 1, 0.0);
                    }
                    w.frozen[id] += count;
                    w.bins[id].last_ms = i64::MAX;
                }
            }
        }
        w
    }

    /// The id of the bin named `label`, made when new (`None` for an `le` that is not a
    /// number).
    fn bin(&mut self, label: &str, at_ms: i64) -> Option<usize> {
        // Edges are one bin whatever their spelling (`1`, `1.0`, `1e0`).
        let edge = match self.kind {
            BinKind::Edges => {
                let edge = parse_edge(label)?;
                if let Some(&id) = self.edge_index.get(&edge.to_bits()) {
                    return Some(id);
                }
                edge
            }
            BinKind::Categories => {
                if let Some(&id) = self.name_index.get(label) {
                    return Some(id);
                }
                0.0
            }
        };
        if self.bins.len() >= MAX_BINS {
            return None;
        }
        let id = self.bins.len();
        match self.kind {
            BinKind::Edges => {
                self.edge_index.insert(edge.to_bits(), id);
                let at = self
                    .by_edge
                    .partition_point(|&i| self.bins[i].edge.total_cmp(&edge).is_lt());
                self.by_edge.insert(at, id);
            }
            BinKind::Categories => {
                self.name_index.insert(label.to_string(), id);
            }
        }
        self.bins.push(Bin {
            label: Arc::from(label),
            edge,
            last: f64::NAN,
            first_ms: at_ms,
            last_ms: at_ms,
        });
        Some(id)
    }

    /// Increases taken in since this window was made: an evaluation that sees the same count
    /// as at its last test does not test again.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Cells held (chunks × bins, plus the frozen reference): what the memory budget counts.
    pub fn held(&self) -> usize {
        self.fine
            .iter()
            .chain(&self.coarse)
            .map(|c| c.counts.len())
            .sum::<usize>()
            + self.frozen.len()
            + self.bins.len()
    }

    /// Whether [`counts`](Self::counts) at `now_ms` will drop or move chunks (what ageing
    /// does), so that [`held`](Self::held) may change; when false it stays as it is, and
    /// an evaluation need not walk the chunks twice to account for it.
    pub fn ages_at(&self, now_ms: i64) -> bool {
        let current_start = now_ms - self.current_ms;
        let oldest = now_ms - self.reference.lookback_ms(self.current_ms);
        self.fine
            .front()
            .is_some_and(|c| c.start_ms < current_start)
            || self
                .coarse
                .front()
                .is_some_and(|c| c.start_ms + self.coarse_ms <= oldest)
    }

    /// Takes the counter sample `value` of bin `label` at `at_ms`. Returns false for a
    /// bin that cannot be (an `le` that is not a number, or one past [`MAX_BINS`]) or a
    /// value that is not a count.
    pub fn observe(&mut self, label: &str, value: f64, at_ms: i64) -> bool {
        if !value.is_finite() || value < 0.0 {
            return false;
        }
        let Some(id) = self.bin(label, at_ms) else {
            return false;
        };
        let start = *self.start_ms.get_or_insert(at_ms);
        let bin = &mut self.bins[id];
        bin.first_ms = bin.first_ms.min(at_ms);
        bin.last_ms = bin.last_ms.max(at_ms);
        let previous = std::mem::replace(&mut bin.last, value);
        if previous.is_nan() {
            // A counter's first sample is its baseline.
            return true;
        }
        let increase = if value >= previous {
            value - previous
        } else {
            value
        };
        if increase == 0.0 {
            return true;
        }
        self.received += 1;
        match &self.reference {
            TimeReference::First(d) if at_ms < start.saturating_add(ms(*d)) => {
                self.add_frozen(id, increase);
                return true;
            }
            TimeReference::Range { start_ms, end_ms } if (*start_ms..*end_ms).contains(&at_ms) => {
                self.add_frozen(id, increase);
            }
            _ => {}
        }
        self.add_timed(id, increase, at_ms);
        true
    }

    fn add_frozen(&mut self, id: usize, x: f64) {
        if self.frozen.len() <= id {
            self.frozen.resize(id + 1, 0.0);
        }
        self.frozen[id] += x;
    }

    fn keeps_old(&self) -> bool {
        matches!(
            self.reference,
            TimeReference::Preceding(_) | TimeReference::Offset { .. }
        )
    }

    fn add_timed(&mut self, id: usize, x: f64, at_ms: i64) {
        let start = at_ms.div_euclid(self.fine_ms) * self.fine_ms;
        let oldest_fine = self.fine.front().map(|c| c.start_ms);
        match oldest_fine {
            Some(oldest) if start < oldest => {
                // Older than the current window's chunks: into the old data, if kept.
                if self.keeps_old() {
                    self.add_coarse(id, x, at_ms);
                }
            }
            _ => {
                let pos = self.fine.iter().rposition(|c| c.start_ms <= start);
                let fresh = match pos {
                    Some(i) if self.fine[i].start_ms == start => self.fine[i].add(id, x),
                    Some(i) => {
                        let mut c = Chunk {
                            start_ms: start,
                            counts: Vec::new(),
                        };
                        c.add(id, x);
                        self.fine.insert(i + 1, c);
                        true
                    }
                    None => {
                        let mut c = Chunk {
                            start_ms: start,
                            counts: Vec::new(),
                        };
                        c.add(id, x);
                        self.fine.push_front(c);
                        true
                    }
                };
                if self.fine_sum.len() <= id {
                    self.fine_sum.resize(id + 1, 0.0);
                    self.fine_live.resize(id + 1, 0);
                }
                self.fine_sum[id] += x;
                if fresh {
                    self.fine_live[id] += 1;
                }
            }
        }
        self.age(at_ms);
    }

    fn add_coarse(&mut self, id: usize, x: f64, at_ms: i64) {
        let start = at_ms.div_euclid(self.coarse_ms) * self.coarse_ms;
        match self.coarse.iter().rposition(|c| c.start_ms <= start) {
            Some(i) if self.coarse[i].start_ms == start => {
                self.coarse[i].add(id, x);
            }
            found => {
                let mut c = Chunk {
                    start_ms: start,
                    counts: Vec::new(),
                };
                c.add(id, x);
                self.coarse.insert(found.map_or(0, |i| i + 1), c);
            }
        }
    }

    /// Moves chunks that left the current window at `now_ms` to the old data (or drops
    /// them), and drops old data no reference reaches any more.
    fn age(&mut self, now_ms: i64) {
        let current_start = now_ms - self.current_ms;
        while let Some(c) = self.fine.front() {
            if c.start_ms >= current_start {
                break;
            }
            let c = self.fine.pop_front().expect("front exists");
            self.evictions += 1;
            if self.fine.is_empty() || self.evictions.is_multiple_of(CHUNKS_PER_WINDOW as u32) {
                self.resum_fine();
            } else {
                let kept = self.fine_sum.iter_mut().zip(&mut self.fine_live);
                for ((s, live), &x) in kept.zip(&c.counts) {
                    if x != 0.0 {
                        *live = live.saturating_sub(1);
                        *s = if *live == 0 { 0.0 } else { (*s - x).max(0.0) };
                    }
                }
            }
            if self.keeps_old() {
                for (id, &x) in c.counts.iter().enumerate() {
                    if x != 0.0 {
                        self.add_coarse(id, x, c.start_ms);
                    }
                }
            }
        }
        let oldest = now_ms - self.reference.lookback_ms(self.current_ms);
        while let Some(c) = self.coarse.front() {
            if c.start_ms + self.coarse_ms > oldest {
                break;
            }
            self.coarse.pop_front();
        }
    }

    /// Sums the current window's chunks afresh.
    fn resum_fine(&mut self) {
        self.fine_sum.iter_mut().for_each(|s| *s = 0.0);
        self.fine_live.iter_mut().for_each(|l| *l = 0);
        for c in &self.fine {
            if self.fine_sum.len() < c.counts.len() {
                self.fine_sum.resize(c.counts.len(), 0.0);
                self.fine_live.resize(c.counts.len(), 0);
            }
            let kept = self.fine_sum.iter_mut().zip(&mut self.fine_live);
            for ((s, live), &x) in kept.zip(&c.counts) {
                *s += x;
                *live += u32::from(x != 0.0);
            }
        }
    }

    /// The two windows at `now_ms`, over the bins both share (see the module notes), with
    /// the bins' names (for a plot).
    pub fn view(&mut self, now_ms: i64) -> CountView {
        self.select(now_ms, true)
    }

    /// The two windows at `now_ms` as [`view`](Self::view) has them, without the bins'
    /// names (`bins` is empty): what a test needs.
    pub fn counts(&mut self, now_ms: i64) -> CountView {
        self.select(now_ms, false)
    }

    fn select(&mut self, now_ms: i64, named: bool) -> CountView {
        self.age(now_ms);
        let current_start = now_ms - self.current_ms;
        let n = self.bins.len();
        let sum = |chunks: &mut dyn Iterator<Item = &Chunk>| {
            let mut out = vec![0.0; n];
            for c in chunks {
                for (o, x) in out.iter_mut().zip(&c.counts) {
                    *o += x;
                }
            }
            out
        };
        let mut current = Vec::with_capacity(n);
        current.extend_from_slice(&self.fine_sum[..self.fine_sum.len().min(n)]);
        current.resize(n, 0.0);
        let (reference, span, complete) = match &self.reference {
            TimeReference::First(d) => {
                let start = self.start_ms.unwrap_or(now_ms);
                let end = start.saturating_add(ms(*d));
                (self.frozen_counts(), (start, end), now_ms >= end)
            }
            TimeReference::Range { start_ms, end_ms } => (
                self.frozen_counts(),
                (*start_ms, *end_ms),
                now_ms >= *end_ms,
            ),
            TimeReference::File { .. } => (self.frozen_counts(), (i64::MIN, i64::MAX), true),
            TimeReference::Preceding(d) => {
                let from = current_start - ms(*d);
                let r = sum(&mut self
                    .coarse
                    .iter()
                    .filter(|c| c.start_ms >= from && c.start_ms < current_start));
                (r, (from, current_start), true)
            }
            TimeReference::Offset { offset, duration } => {
                let to = now_ms - ms(*offset);
                let from = to - ms(*duration);
                let r = sum(&mut self
                    .coarse
                    .iter()
                    .chain(&self.fine)
                    .filter(|c| c.start_ms >= from && c.start_ms < to));
                (r, (from, to), true)
            }
        };
        let seen = |b: &Bin, (from, to): (i64, i64)| b.first_ms < to && b.last_ms >= from;
        // What the current window spans: after a `first` reference, never into it.
        let current_span = match (&self.reference, self.start_ms) {
            (TimeReference::First(d), Some(start)) => {
                (current_start.max(start.saturating_add(ms(*d))), now_ms + 1)
            }
            _ => (current_start, now_ms + 1),
        };
        match self.kind {
            BinKind::Edges => {
                let mut ids = Vec::with_capacity(n);
                ids.extend(
                    self.by_edge.iter().copied().filter(|&i| {
                        seen(&self.bins[i], span) && seen(&self.bins[i], current_span)
                    }),
                );
                let per_bucket = |cum: &[f64]| -> Vec<f64> {
                    let mut prev = 0.0;
                    ids.iter()
                        .map(|&i| {
                            let c = cum[i];
                            let x = (c - prev).max(0.0);
                            prev = prev.max(c);
                            x
                        })
                        .collect()
                };
                CountView {
                    bins: if named {
                        ids.iter()
                            .map(|&i| Arc::clone(&self.bins[i].label))
                            .collect()
                    } else {
                        Vec::new()
                    },
                    reference: per_bucket(&reference),
                    current: per_bucket(&current),
                    reference_complete: complete,
                }
            }
            BinKind::Categories => {
                let (mut bins, mut r, mut c) = (
                    Vec::new(),
                    Vec::with_capacity(n + 1),
                    Vec::with_capacity(n + 1),
                );
                let mut other = 0.0;
                for i in 0..n {
                    if seen(&self.bins[i], span) && reference[i] > 0.0 {
                        if named {
                            bins.push(Arc::clone(&self.bins[i].label));
                        }
                        r.push(reference[i]);
                        c.push(current[i]);
                    } else {
                        other += current[i];
                    }
                }
                if other > 0.0 {
                    if named {
                        bins.push(Arc::from("other"));
                    }
                    r.push(0.0);
                    c.push(other);
                }
                CountView {
                    bins,
                    reference: r,
                    current: c,
                    reference_complete: complete,
                }
            }
        }
    }

    /// What the state store keeps.
    pub fn parts(&self) -> CountParts {
        let chunks =
            |q: &VecDeque<Chunk>| q.iter().map(|c| (c.start_ms, c.counts.clone())).collect();
        CountParts {
            bins: self
                .bins
                .iter()
                .map(|b| (b.label.to_string(), b.last, b.first_ms, b.last_ms))
                .collect(),
            fine: chunks(&self.fine),
            coarse: chunks(&self.coarse),
            frozen: self.frozen.clone(),
            start_ms: self.start_ms,
            received: self.received,
        }
    }

    /// Windows restored from [`parts`](Self::parts) for the same rule; `None` when they do
    /// not fit it (a bin that is not one, or counts for bins that do not exist).
    pub fn from_parts(
        kind: BinKind,
        reference: &TimeReference,
        current: Duration,
        parts: CountParts,
    ) -> Option<Self> {
        let mut w = CountWindows::new(kind, reference, current);
        if !matches!(reference, TimeReference::File { .. }) {
            w.bins.clear();
            w.edge_index.clear();
            w.name_index.clear();
            w.by_edge.clear();
        }
        for (label, last, first_ms, last_ms) in parts.bins {
            let id = w.bin(&label, first_ms)?;
            let b = &mut w.bins[id];
            b.last = last;
            b.first_ms = b.first_ms.min(first_ms);
            b.last_ms = b.last_ms.max(last_ms);
        }
        let n = w.bins.len();
        let fits = |c: &[f64]| c.len() <= n;
        let chunks = |v: Vec<(i64, Vec<f64>)>| -> Option<VecDeque<Chunk>> {
            v.into_iter()
                .map(|(start_ms, counts)| fits(&counts).then_some(Chunk { start_ms, counts }))
                .collect()
        };
        w.fine = chunks(parts.fine)?;
        w.coarse = chunks(parts.coarse)?;
        w.resum_fine();
        if !matches!(reference, TimeReference::File { .. }) {
            if !fits(&parts.frozen) {
                return None;
            }
            w.frozen = parts.frozen;
        }
        w.start_ms = parts.start_ms;
        w.received = parts.received;
        Some(w)
    }

    fn frozen_counts(&self) -> Vec<f64> {
        let n = self.bins.len();
        let mut v = Vec::with_capacity(n);
        v.extend_from_slice(&self.frozen[..self.frozen.len().min(n)]);
        v.resize(n, 0.0);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;
    const MIN: i64 = 60 * S;

    fn names(v: &CountView) -> Vec<&str> {
        v.bins.iter().map(|b| &**b).collect()
    }

    /// Feeds a classic histogram's cumulative buckets at `t`.
    fn feed(w: &mut CountWindows, t: i64, buckets: &[(&str, f64)]) {
        for (le, v) in buckets {
            assert!(w.observe(le, *v, t));
        }
    }

    #[test]
    fn a_first_reference_freezes_and_buckets_are_differences() {
        let mut w = CountWindows::new(
            BinKind::Edges,
            &TimeReference::First(Duration::from_secs(600)),
            Duration::from_secs(300),
        );
        // Baseline, then +10 observations: 4 at or below 0.5, 6 above.
        feed(&mut w, 0, &[("0.5", 100.0), ("1", 150.0), ("+Inf", 150.0)]);
        feed(
            &mut w,
            MIN,
            &[("0.5", 104.0), ("1", 160.0), ("+Inf", 160.0)],
        );
        let v = w.view(2 * MIN);
        assert!(!v.reference_complete);
        assert!(v.current.iter().all(|&x| x == 0.0));
        // After the first 10 minutes, increases go to the current window.
        feed(
            &mut w,
            11 * MIN,
            &[("0.5", 114.0), ("1", 170.0), ("+Inf", 171.0)],
        );
        let v = w.view(12 * MIN);
        assert!(v.reference_complete);
        assert_eq!(names(&v), ["0.5", "1", "+Inf"]);
        assert_eq!(v.reference, [4.0, 6.0, 0.0]);
        assert_eq!(v.current, [10.0, 0.0, 1.0]);
        // Five minutes later nothing new is in the current window.
        let v = w.view(17 * MIN);
        assert!(v.current.iter().all(|&x| x == 0.0), "{v:?}");
    }

    #[test]
    fn the_kept_sum_of_the_current_window_is_the_sum_of_its_chunks() {
        let mut w = CountWindows::new(
            BinKind::Categories,
            &TimeReference::Preceding(Duration::from_secs(600)),
            Duration::from_secs(320),
        );
        let mut totals = [0.0f64; 3];
        // Fractional increases over 40 minutes, a sample every 7 s: chunks come and go
        // (10 s each) many times over.
        for step in 0..350i64 {
            let t = step * 7 * S;
            for (i, name) in ["a", "b", "c"].iter().enumerate() {
                totals[i] += 0.1 * (1 + (step as usize * (i + 1)) % 5) as f64;
                assert!(w.observe(name, totals[i], t));
            }
            if step % 13 == 0 {
                let fresh: Vec<f64> = (0..3)
                    .map(|i| w.fine.iter().filter_map(|c| c.counts.get(i)).sum())
                    .collect();
                let v = w.counts(t);
                for (kept, fresh) in w.fine_sum.iter().zip(&fresh) {
                    assert!((kept - fresh).abs() < 1e-9, "{kept} vs {fresh}");
                }
                assert_eq!(
                    v,
                    CountView {
                        bins: Vec::new(),
                        ..w.view(t)
                    }
                );
            }
        }
        assert!(w.evictions > 2 * CHUNKS_PER_WINDOW as u32);
    }

    #[test]
    fn what_the_windows_hold_changes_at_a_view_only_when_they_age() {
        let references = [
            TimeReference::First(Duration::from_secs(600)),
            TimeReference::Preceding(Duration::from_secs(600)),
            TimeReference::Offset {
                offset: Duration::from_secs(900),
                duration: Duration::from_secs(300),
            },
        ];
        for reference in references {
            let mut w = CountWindows::new(BinKind::Edges, &reference, Duration::from_secs(300));
            let (mut aged, mut total) = (0, 0.0);
            // A scrape every 25 s, viewed at uneven times in between, for an hour.
            for step in 0..144i64 {
                let t = step * 25 * S;
                total += (step % 4) as f64;
                feed(&mut w, t, &[("0.5", total), ("+Inf", 2.0 * total)]);
                for later in [t + 3 * S, t + 11 * S, t + 24 * S] {
                    let ages = w.ages_at(later);
                    let before = w.held();
                    w.counts(later);
                    if !ages {
                        assert_eq!(w.held(), before, "{reference:?} at {later}");
                    } else {
                        aged += 1;
                    }
                    assert!(!w.ages_at(later), "aged once, nothing more to age");
                }
            }
            assert!(aged > 10, "{reference:?}: aged {aged} times");
        }
    }

    #[test]
    fn a_bin_whose_counts_all_left_the_window_counts_exactly_zero() {
        // Regression: fractional increases subtracted from the kept sum left -2.8e-17 (a
        // negative count the tests refuse) or +2.8e-17 (a spurious `other` bin).
        let mut w = CountWindows::new(
            BinKind::Categories,
            &TimeReference::Preceding(Duration::from_secs(600)),
            Duration::from_secs(320),
        );
        assert!(w.observe("a", 5.0, 0));
        assert!(w.observe("a", 0.7, 10 * S)); // reset: +0.7
        assert!(w.observe("a", 0.1, 20 * S)); // reset: +0.1
        assert!(w.observe("b", 5.0, 0));
        assert!(w.observe("b", 6.0, 340 * S));
        let v = w.counts(345 * S);
        assert_eq!(v.current, [0.0, 1.0]);
        let mut w = CountWindows::new(
            BinKind::Categories,
            &TimeReference::First(Duration::from_secs(60)),
            Duration::from_secs(320),
        );
        for (name, value, t) in [
            ("a", 0.0, 0),
            ("a", 5.0, 10),
            ("z", 0.0, 70),
            ("z", 0.1, 80),
        ] {
            assert!(w.observe(name, value, t * S));
        }
        assert!(w.observe("z", 0.3, 90 * S));
        assert!(w.observe("a", 15.0, 440 * S));
        let v = w.view(445 * S);
        assert_eq!(names(&v), ["a"], "{v:?}");
        assert_eq!(v.current, [10.0]);
    }

    #[test]
    fn counter_resets_count_the_new_value() {
        let mut w = CountWindows::new(
            BinKind::Categories,
            &TimeReference::First(Duration::from_secs(60)),
            Duration::from_secs(600),
        );
        assert!(w.observe("a", 5.0, 0));
        assert!(w.observe("a", 8.0, S));
        assert!(w.observe("a", 2.0, 2 * S)); // restarted
        let v = w.view(3 * S);
        assert_eq!(v.reference, [5.0]);
        assert_eq!(w.received(), 2);
    }

    #[test]
    fn categories_unseen_in_the_reference_go_to_other() {
        let mut w = CountWindows::new(
            BinKind::Categories,
            &TimeReference::First(Duration::from_secs(60)),
            Duration::from_secs(600),
        );
        for (c, v) in [("a", 0.0), ("b", 0.0)] {
            w.observe(c, v, 0);
        }
        w.observe("a", 30.0, 10 * S);
        w.observe("b", 10.0, 10 * S);
        // After the reference: a new category c, and b stops.
        w.observe("a", 50.0, 2 * MIN);
        w.observe("c", 0.0, 2 * MIN);
        w.observe("c", 7.0, 3 * MIN);
        let v = w.view(4 * MIN);
        assert_eq!(names(&v), ["a", "b", "other"]);
        assert_eq!(v.reference, [30.0, 10.0, 0.0]);
        assert_eq!(v.current, [20.0, 0.0, 7.0]);
    }

    #[test]
    fn a_preceding_reference_rolls_behind_the_current_window() {
        let mut w = CountWindows::new(
            BinKind::Categories,
            &TimeReference::Preceding(Duration::from_secs(3600)),
            Duration::from_secs(600),
        );
        // One observation of "a" a minute, for two hours.
        for m in 0..=120 {
            w.observe("a", m as f64, m * MIN);
        }
        // What the store keeps gives the same windows back.
        let mut back = CountWindows::from_parts(
            BinKind::Categories,
            &TimeReference::Preceding(Duration::from_secs(3600)),
            Duration::from_secs(600),
            w.parts(),
        )
        .unwrap();
        assert_eq!(back.view(120 * MIN + 1), w.clone().view(120 * MIN + 1));
        let v = w.view(120 * MIN + 1);
        // Current: minutes 111..=120 (10); reference: the hour before, to chunk precision.
        assert_eq!(v.current, [10.0]);
        let r = v.reference[0];
        assert!((57.0..=63.0).contains(&r), "reference held {r}");
        assert!(w.held() < 200, "held {}", w.held());
    }

    #[test]
    fn layouts_are_rebinned_to_the_edges_both_windows_saw() {
        let mut w = CountWindows::new(
            BinKind::Edges,
            &TimeReference::First(Duration::from_secs(60)),
            Duration::from_secs(600),
        );
        feed(&mut w, 0, &[("1", 0.0), ("2", 0.0), ("+Inf", 0.0)]);
        feed(&mut w, 30 * S, &[("1", 10.0), ("2", 20.0), ("+Inf", 30.0)]);
        // The exporter restarts with edge 2 gone and 1.5 added.
        feed(&mut w, 2 * MIN, &[("1", 0.0), ("1.5", 0.0), ("+Inf", 0.0)]);
        feed(&mut w, 3 * MIN, &[("1", 5.0), ("1.5", 8.0), ("+Inf", 9.0)]);
        let v = w.view(4 * MIN);
        assert_eq!(names(&v), ["1", "+Inf"]);
        assert_eq!(v.reference, [10.0, 20.0]);
        assert_eq!(v.current, [5.0, 4.0]);
    }

    #[test]
    fn an_offset_reference_is_the_same_span_earlier() {
        let mut w = CountWindows::new(
            BinKind::Categories,
            &TimeReference::Offset {
                offset: Duration::from_secs(3600),
                duration: Duration::from_secs(600),
            },
            Duration::from_secs(600),
        );
        // Two an minute for the first 15 minutes, then one a minute.
        let mut total = 0.0;
        for m in 0..=70 {
            total += if m <= 15 { 2.0 } else { 1.0 };
            w.observe("a", total, m * MIN);
        }
        let v = w.view(70 * MIN + 1);
        // Minutes 1..=10 an hour ago: 2 each.
        assert!((v.reference[0] - 20.0).abs() <= 4.0, "{:?}", v.reference);
        assert_eq!(v.current, [10.0]);
    }

    #[test]
    fn file_references_and_bad_input() {
        let counts: Arc<[(String, f64)]> =
            vec![("0.5".to_string(), 40.0), ("+Inf".to_string(), 100.0)].into();
        let mut w = CountWindows::new(
            BinKind::Edges,
            &TimeReference::File {
                path: "ref.txt".into(),
                counts,
            },
            Duration::from_secs(60),
        );
        assert!(!w.observe("abc", 1.0, 0), "an le that is not a number");
        assert!(!w.observe("0.5", f64::NAN, 0));
        assert!(!w.observe("0.5", -1.0, 0));
        feed(&mut w, 0, &[("0.5", 0.0), ("+Inf", 0.0)]);
        feed(&mut w, S, &[("0.5", 1.0), ("+Inf", 5.0)]);
        let v = w.view(2 * S);
        assert_eq!(v.reference, [40.0, 60.0]);
        assert_eq!(v.current, [1.0, 4.0]);
        // `0.50` is the bucket `0.5`.
        feed(&mut w, 2 * S, &[("0.50", 3.0), ("+Inf", 7.0)]);
        assert_eq!(w.view(3 * S).current, [3.0, 4.0]);
        assert_eq!(parse_edge("1e-05"), Some(1e-5));
        assert_eq!(parse_edge("+Inf"), Some(f64::INFINITY));
    }
}
