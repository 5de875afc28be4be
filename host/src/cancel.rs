//! Cancelling a call in flight: an MCP `notifications/cancelled` for it, or its client going
//! away, sets the call's [`Cancel`]. The call stops at its next interruption point (the
//! running component is checked at least every [`CHECK_EVERY`] of its wall clock, and every
//! effect it asks for is refused from then on), its staged effects are rolled back, it is
//! recorded as cancelled, and an escalation it waits on is withdrawn: an approval arriving
//! later applies to nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often a running component looks whether its call was cancelled, at most.
pub const CHECK_EVERY: Duration = Duration::from_millis(50);

/// A call's cancellation flag, shared by whoever may cancel it and the call itself.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Cancels the call; it stops at its next interruption point.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
