//! Leader election: the elector (lease state machine), the guard every write checks, the
//! terms that scope leader-only work, and the observer that makes leadership visible.
pub mod elector;
pub mod guard;
pub mod observer;
pub mod store;
pub mod term;

pub use elector::{Elector, ElectorHandle, Leadership, LossCause, StopMode};
pub use guard::{LeadershipGuard, NotLeader};
