//! A bound on the memory that request bodies take while they are read, decoded and parsed:
//! every route that reads a body reserves an estimate of what it will hold (its body, and for
//! remote write the decompressed message) from one process-wide budget before it reads, and
//! gives it back when it is done. A request that cannot get its reservation within
//! [`BUDGET_WAIT`] is refused with 503 and `Retry-After`, before its body is read. A request
//! larger than the whole budget runs alone.
//!
//! Without it, 16 concurrent 16 MiB pushes peaked at 3.6 GB although each was refused.

use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::ApiError;

/// The budget: estimated bytes held by bodies being read and parsed at once.
pub const PARSE_BUDGET_BYTES: usize = 256 << 20;

/// How long a request waits for its reservation.
pub const BUDGET_WAIT: Duration = Duration::from_secs(10);

/// Bytes a push body takes while parsed, per byte of body: the body, the JSON values (32
/// bytes for a number as short as `1,`) and the parsed floats; measured at ~17.
pub const PUSH_FACTOR: usize = 18;
/// The same for `/api/v1/evaluate` (the body, the two arrays, and the sorted copies).
pub const EVALUATE_FACTOR: usize = 6;
/// Bytes a remote write takes per byte of decompressed message (the message and the decoded
/// series).
pub const DECOMPRESSED_FACTOR: usize = 2;

/// Reservations are counted in KiB (a semaphore holds at most `u32::MAX` permits at once).
const UNIT: usize = 1024;

pub struct ParseBudget {
    sem: Semaphore,
    units: u32,
}

impl Default for ParseBudget {
    fn default() -> Self {
        ParseBudget::new(PARSE_BUDGET_BYTES)
    }
}

impl ParseBudget {
    pub fn new(bytes: usize) -> ParseBudget {
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .max(1);
        ParseBudget {
            sem: Semaphore::new(units as usize),
            units,
        }
    }

    /// Reserves `bytes` (at most the whole budget), waiting up to [`BUDGET_WAIT`].
    pub async fn reserve(&self, bytes: usize) -> Result<SemaphorePermit<'_>, ApiError> {
        self.reserve_within(bytes, BUDGET_WAIT).await
    }

    async fn reserve_within(
        &self,
        bytes: usize,
        wait: Duration,
    ) -> Result<SemaphorePermit<'_>, ApiError> {
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.units);
        match tokio::time::timeout(wait, self.sem.acquire_many(units)).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; timing out is the only way to fail.
            _ => Err(ApiError::Busy),
        }
    }

    /// Bytes not reserved now.
    pub fn available(&self) -> usize {
        self.sem.available_permits() * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_room_and_give_it_back() {
        let budget = ParseBudget::new(10 * UNIT);
        let a = budget.reserve(6 * UNIT).await.unwrap();
        assert_eq!(budget.available(), 4 * UNIT);
        // More than is left: waits, and is refused when the wait is over.
        let short = Duration::from_millis(20);
        assert!(matches!(
            budget.reserve_within(6 * UNIT, short).await,
            Err(ApiError::Busy)
        ));
        // It gets in once room is given back while it waits.
        let (waiting, ()) = tokio::join!(
            budget.reserve_within(6 * UNIT, Duration::from_secs(5)),
            async {
                tokio::time::sleep(short).await;
                drop(a);
            }
        );
        drop(waiting.unwrap());
        // Larger than the whole budget: clamped, runs alone.
        let all = budget.reserve(100 * UNIT).await.unwrap();
        assert_eq!(budget.available(), 0);
        drop(all);
        assert_eq!(budget.available(), 10 * UNIT);
    }
}
