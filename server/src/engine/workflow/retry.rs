//! When a node's failed attempt is tried again, and after how long.

use crate::engine::agents::{self, ErrorKind};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum Backoff {
    Exponential,
    Fixed,
}

/// When a node's failed attempt is tried again. One budget covers every
/// transient cause: agents do not retry inside an attempt.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RetryPolicy {
    /// Whether the workflow wrote this policy (on the node or in
    /// `defaults`). Not part of the node's definition: an undeclared
    /// policy is described by its values.
    #[serde(skip)]
    pub declared: bool,
    /// Total attempts, the first included (1 means no retry).
    pub max_retries: u32,
    pub backoff: Backoff,
    pub initial_delay_ms: u64,
    pub max_delay_ms: u64,
}

/// The policy of a node whose workflow declares none: it rides out rate
/// limits, overloaded servers and dropped connections with five attempts,
/// 0.5 s apart and doubling, at most 30 s.
impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            declared: false,
            max_retries: 5,
            backoff: Backoff::Exponential,
            initial_delay_ms: 500,
            max_delay_ms: 30_000,
        }
    }
}

impl RetryPolicy {
    /// What a written `retry_policy` starts from: the keys it leaves out
    /// keep these values (docs/workflows.md).
    pub fn declared_base() -> Self {
        Self {
            declared: true,
            max_retries: 1,
            backoff: Backoff::Exponential,
            initial_delay_ms: 100,
            max_delay_ms: 10_000,
        }
    }

    /// Whether to try again after a failed attempt, and after how long.
    ///
    /// `failed_attempts` counts the attempts that failed and count against
    /// the budget, this one included (an attempt interrupted by a server
    /// stop does not count). Only transient errors are retried, and a
    /// passed deadline only under a declared policy: a node without one
    /// fails at its deadline. The delay is the backoff's, raised to the
    /// agent's `retry_after` (at most [`agents::MAX_RETRY_AFTER`]) when
    /// the server asked for a longer wait.
    pub fn after_failure(
        &self,
        failed_attempts: u32,
        kind: ErrorKind,
        retry_after: Option<Duration>,
        timed_out: bool,
    ) -> Option<Duration> {
        if kind != ErrorKind::Transient
            || (timed_out && !self.declared)
            || failed_attempts >= self.max_retries
        {
            return None;
        }
        let backoff = self.delay_before(failed_attempts.saturating_add(1));
        Some(match retry_after {
            Some(wait) => backoff.max(wait.min(agents::MAX_RETRY_AFTER)),
            None => backoff,
        })
    }

    /// The backoff delay before attempt `next` (2, 3, …): the initial
    /// delay, doubled for each attempt after the second when exponential,
    /// at most `max_delay_ms`.
    pub fn delay_before(&self, next: u32) -> Duration {
        let ms = match self.backoff {
            Backoff::Fixed => self.initial_delay_ms,
            Backoff::Exponential => self
                .initial_delay_ms
                .saturating_mul(1u64 << next.saturating_sub(2).min(32)),
        };
        Duration::from_millis(ms.min(self.max_delay_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::workflow::load_str;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_undeclared_policy_rides_out_transient_errors_as_the_provider_loop_did() {
        let p = RetryPolicy::default();
        assert!(!p.declared);
        let t = ErrorKind::Transient;
        let delays: Vec<_> = (1..=5)
            .map(|n| p.after_failure(n, t, None, false))
            .collect();
        assert_eq!(
            delays,
            [
                Some(ms(500)),
                Some(ms(1000)),
                Some(ms(2000)),
                Some(ms(4000)),
                None
            ]
        );
        // A deadline with no policy fails at the deadline.
        assert_eq!(p.after_failure(1, t, None, true), None);
        // What the same request would fail again is never retried.
        for kind in [ErrorKind::Permanent, ErrorKind::Configuration] {
            assert_eq!(p.after_failure(1, kind, None, false), None);
            assert_eq!(p.after_failure(1, kind, Some(ms(10)), false), None);
        }
    }

    #[test]
    fn a_declared_policy_is_used_as_written() {
        let p = RetryPolicy {
            max_retries: 3,
            backoff: Backoff::Fixed,
            initial_delay_ms: 7,
            ..RetryPolicy::declared_base()
        };
        assert!(p.declared);
        let t = ErrorKind::Transient;
        assert_eq!(p.after_failure(1, t, None, false), Some(ms(7)));
        assert_eq!(p.after_failure(2, t, None, false), Some(ms(7)));
        assert_eq!(p.after_failure(3, t, None, false), None, "budget spent");
        assert_eq!(p.after_failure(9, t, None, false), None);
        // A passed deadline is retried under a declared policy.
        assert_eq!(p.after_failure(1, t, None, true), Some(ms(7)));
        assert_eq!(p.after_failure(3, t, None, true), None);
        assert_eq!(p.after_failure(1, ErrorKind::Permanent, None, false), None);
        assert_eq!(
            p.after_failure(1, ErrorKind::Configuration, None, true),
            None
        );
        // One attempt written means one attempt, whatever the error.
        let once = RetryPolicy::declared_base();
        assert_eq!(once.max_retries, 1);
        assert_eq!(once.after_failure(1, t, Some(ms(1)), false), None);
    }

    #[test]
    fn exponential_backoff_doubles_up_to_its_cap() {
        let p = RetryPolicy {
            max_retries: 100,
            initial_delay_ms: 100,
            max_delay_ms: 1000,
            ..RetryPolicy::declared_base()
        };
        let t = ErrorKind::Transient;
        let delays: Vec<_> = [1, 2, 3, 4, 5, 99]
            .into_iter()
            .map(|n| p.after_failure(n, t, None, false).unwrap())
            .collect();
        assert_eq!(
            delays,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
    }

    #[test]
    fn the_servers_wait_raises_the_backoff_never_lowers_it() {
        let p = RetryPolicy::default();
        let t = ErrorKind::Transient;
        // Above the backoff: the server's wait.
        assert_eq!(
            p.after_failure(1, t, Some(Duration::from_secs(3)), false),
            Some(Duration::from_secs(3))
        );
        // Below it: the backoff.
        assert_eq!(p.after_failure(3, t, Some(ms(250)), false), Some(ms(2000)));
        assert_eq!(
            p.after_failure(1, t, Some(Duration::ZERO), false),
            Some(ms(500))
        );
        // Above the policy's own cap, up to the cap on a server's wait.
        let quick = RetryPolicy {
            max_retries: 2,
            initial_delay_ms: 1,
            max_delay_ms: 10,
            ..RetryPolicy::declared_base()
        };
        assert_eq!(
            quick.after_failure(1, t, Some(Duration::from_secs(5)), false),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            quick.after_failure(1, t, Some(Duration::from_secs(3600)), false),
            Some(agents::MAX_RETRY_AFTER)
        );
        // The hint never extends the budget.
        assert_eq!(quick.after_failure(2, t, Some(ms(1)), false), None);
    }

    #[test]
    fn declared_is_not_part_of_the_definition() {
        let l = load_str(
            "name: w\nnodes:\n  a: {agent: local://echo, outputs: [r]}\n  b: {agent: local://echo, outputs: [r], retry_policy: {max_retries: 5, initial_delay_ms: 500, max_delay_ms: 30000}}\n",
        );
        let w = l.workflow.unwrap();
        let (a, b) = (w.node("a").unwrap(), w.node("b").unwrap());
        assert!(!a.retry.declared && b.retry.declared);
        assert_eq!(
            a.definition()["retry_policy"],
            b.definition()["retry_policy"]
        );
        let l = load_str(
            "name: w\ndefaults: {retry_policy: {backoff: fixed}}\nnodes:\n  a: {agent: local://echo, outputs: [r]}\n",
        );
        let a = &l.workflow.unwrap().nodes[0];
        assert!(a.retry.declared);
        assert_eq!(a.retry.max_retries, 1);
    }
}
