//! The one place time comes from, so tests can move it.

use mcp_events::Timestamp;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(chrono::Utc::now())
    }
}

/// A clock that runs with the system clock plus an offset tests can advance.
#[derive(Debug, Default, Clone)]
pub struct ManualClock {
    offset_micros: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn advance(&self, seconds: i64) {
        self.offset_micros
            .fetch_add(seconds * 1_000_000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let offset = self.offset_micros.load(Ordering::SeqCst);
        Timestamp::from_micros(SystemClock.now().as_micros() + offset)
    }
}
