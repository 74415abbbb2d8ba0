//! The per rule+series state machine: stable / warning / drifted, with `for` and
//! `keep_firing_for`. Pure: `now` (Unix ms) is an argument.

use std::time::Duration;

use crate::detect::Verdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Stable,
    Warning,
    Drifted,
}

impl Status {
    /// The `driftgauge_drift_status` value: ordinal, so `max` is the worst.
    pub fn gauge(self) -> f64 {
        match self {
            Status::Stable => 0.0,
            Status::Warning => 1.0,
            Status::Drifted => 2.0,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stable => "stable",
            Status::Warning => "warning",
            Status::Drifted => "drifted",
        }
    }
}

/// How many evaluations a series' [`History`] remembers.
pub const HISTORY: usize = 32;

/// The statuses of a series' last [`HISTORY`] evaluations, a fixed ring (no allocation):
/// the status page's history strip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct History {
    states: [Status; HISTORY],
    len: u8,
    next: u8,
}

impl History {
    /// Remembers one evaluation's status, forgetting the oldest when full.
    pub fn push(&mut self, status: Status) {
        self.states[usize::from(self.next)] = status;
        self.next = ((usize::from(self.next) + 1) % HISTORY) as u8;
        self.len = (usize::from(self.len) + 1).min(HISTORY) as u8;
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = Status> + '_ {
        let len = usize::from(self.len);
        let start = (usize::from(self.next) + HISTORY - len) % HISTORY;
        (0..len).map(move |i| self.states[(start + i) % HISTORY])
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A change of status, reported once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: Status,
    pub to: Status,
    /// When the new status began (Unix ms).
    pub at_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Machine {
    pub status: Status,
    /// Since when the drifted condition has held without a break (the `for` clock).
    pub pending_since_ms: Option<i64>,
    /// When the status last changed (`drifted since`, `stable since`, ...).
    pub since_ms: Option<i64>,
    /// The last evaluation at which the drifted condition held (the `keep_firing_for` clock).
    pub last_drifted_condition_ms: Option<i64>,
}

impl Machine {
    /// Advances on one evaluation. `None` (no verdict: too few samples) changes nothing.
    ///
    /// While a drifted condition waits out `for`, the status shows `warning`: the evidence is
    /// there but has not held long enough.
    pub fn step(
        &mut self,
        verdict: Option<Verdict>,
        now_ms: i64,
        for_: Duration,
        keep_firing_for: Duration,
    ) -> Option<Transition> {
        let verdict = verdict?;
        let next = match verdict {
            Verdict::Drifted => {
                let since = *self.pending_since_ms.get_or_insert(now_ms);
                self.last_drifted_condition_ms = Some(now_ms);
                if now_ms - since >= for_.as_millis() as i64 || self.status == Status::Drifted {
                    Status::Drifted
                } else {
                    Status::Warning
                }
            }
            other => {
                self.pending_since_ms = None;
                let keep = self.status == Status::Drifted
                    && self
                        .last_drifted_condition_ms
                        .is_some_and(|t| now_ms - t < keep_firing_for.as_millis() as i64);
                if keep {
                    Status::Drifted
                } else if other == Verdict::Warning {
                    Status::Warning
                } else {
                    Status::Stable
                }
            }
        };
        if next == self.status {
            return None;
        }
        let t = Transition {
            from: self.status,
            to: next,
            at_ms: now_ms,
        };
        self.status = next;
        self.since_ms = Some(now_ms);
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn history_keeps_the_last_evaluations_oldest_first() {
        let mut h = History::default();
        assert!(h.is_empty());
        h.push(Status::Stable);
        h.push(Status::Drifted);
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [Status::Stable, Status::Drifted]
        );
        for i in 0..HISTORY + 5 {
            h.push(if i % 2 == 0 {
                Status::Warning
            } else {
                Status::Stable
            });
        }
        assert_eq!(h.len(), HISTORY);
        let all: Vec<Status> = h.iter().collect();
        assert_eq!(all.len(), HISTORY);
        // The newest is the last pushed (i = HISTORY + 4, even).
        assert_eq!(all[HISTORY - 1], Status::Warning);
        assert_eq!(all[HISTORY - 2], Status::Stable);
    }

    use super::*;
    use Verdict::*;

    const S: Duration = Duration::from_secs(1);

    fn run(steps: &[(Option<Verdict>, i64)], for_: Duration, keep: Duration) -> Vec<(i64, Status)> {
        let mut m = Machine::default();
        steps
            .iter()
            .map(|&(v, t)| {
                m.step(v, t, for_, keep);
                (t, m.status)
            })
            .collect()
    }

    #[test]
    fn drifted_at_once_without_for() {
        let mut m = Machine::default();
        let t = m.step(Some(Drifted), 1000, Duration::ZERO, Duration::ZERO);
        assert_eq!(
            t,
            Some(Transition {
                from: Status::Stable,
                to: Status::Drifted,
                at_ms: 1000
            })
        );
        assert_eq!(
            m.step(Some(Drifted), 2000, Duration::ZERO, Duration::ZERO),
            None
        );
        let t = m.step(Some(Stable), 3000, Duration::ZERO, Duration::ZERO);
        assert_eq!(t.map(|t| t.to), Some(Status::Stable));
    }

    #[test]
    fn for_holds_in_warning_then_drifts() {
        let got = run(
            &[
                (Some(Drifted), 0),
                (Some(Drifted), 1000),
                (Some(Drifted), 2000),
            ],
            2 * S,
            Duration::ZERO,
        );
        assert_eq!(
            got,
            vec![
                (0, Status::Warning),
                (1000, Status::Warning),
                (2000, Status::Drifted)
            ]
        );
    }

    #[test]
    fn a_break_restarts_the_for_clock() {
        let got = run(
            &[
                (Some(Drifted), 0),
                (Some(Stable), 1000),
                (Some(Drifted), 2000),
                (Some(Drifted), 3000),
                (Some(Drifted), 4000),
            ],
            2 * S,
            Duration::ZERO,
        );
        let st: Vec<_> = got.iter().map(|x| x.1).collect();
        assert_eq!(
            st,
            vec![
                Status::Warning,
                Status::Stable,
                Status::Warning,
                Status::Warning,
                Status::Drifted
            ]
        );
    }

    #[test]
    fn keep_firing_for_holds_drifted() {
        let got = run(
            &[
                (Some(Drifted), 0),
                (Some(Stable), 1000),
                (Some(Stable), 2500),
                (Some(Stable), 3000),
            ],
            Duration::ZERO,
            3 * S,
        );
        let st: Vec<_> = got.iter().map(|x| x.1).collect();
        assert_eq!(
            st,
            vec![
                Status::Drifted,
                Status::Drifted,
                Status::Drifted,
                Status::Stable
            ]
        );
    }

    #[test]
    fn no_verdict_changes_nothing() {
        let got = run(
            &[(Some(Warning), 0), (None, 1000)],
            Duration::ZERO,
            Duration::ZERO,
        );
        assert_eq!(got[1].1, Status::Warning);
    }
}
