//! The machine's rules, case by case: each test drives it as the driver
//! would and checks every decision it takes.

use super::*;

use Decision::*;

/// A `retry_policy` the workflow wrote, of `attempts` in all.
fn policy(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries: attempts,
        declared: true,
        ..RetryPolicy::default()
    }
}

/// A fresh run over `deps` (each node's dependencies by position).
fn machine(deps: &[&[usize]]) -> RunMachine {
    machine_from(deps, vec![Initial::PENDING; deps.len()], RunStatus::Running)
}

fn machine_from(deps: &[&[usize]], initial: Vec<Initial>, phase: RunStatus) -> RunMachine {
    RunMachine::new(
        deps.iter().map(|d| d.to_vec()).collect(),
        vec![policy(1); deps.len()],
        initial,
        phase,
    )
    .expect("a valid graph")
}

fn done(outcome: Outcome) -> Initial {
    Initial {
        state: State::Done(outcome),
        attempts: 1,
        failed: 0,
    }
}

fn attempt(pos: usize, attempt: u32) -> Decision {
    Attempt {
        pos,
        attempt,
        delay: Duration::ZERO,
    }
}

const TRANSIENT: AttemptFailure = AttemptFailure {
    kind: ErrorKind::Transient,
    retry_after: None,
    timed_out: false,
};

const PERMANENT: AttemptFailure = AttemptFailure {
    kind: ErrorKind::Permanent,
    retry_after: None,
    timed_out: false,
};

/// Prepares `pos` as an agent node and checks its first attempt starts.
fn run(m: &mut RunMachine, pos: usize) {
    assert_eq!(m.prepared(pos, Prepared::Agent), [attempt(pos, 1)]);
    assert!(m.attempt_started(pos, 1));
}

#[test]
fn a_diamond_starts_its_branches_together_and_joins_once() {
    //   0
    //  / \
    // 1   2
    //  \ /
    //   3
    let mut m = machine(&[&[], &[0], &[0], &[1, 2]]);
    assert_eq!(m.start(), [Prepare(0)]);
    run(&mut m, 0);
    assert_eq!(m.attempt_succeeded(0), [Prepare(1), Prepare(2)]);
    run(&mut m, 1);
    run(&mut m, 2);
    assert_eq!(m.attempt_succeeded(2), []);
    assert_eq!(m.attempt_succeeded(1), [Prepare(3)]);
    run(&mut m, 3);
    assert_eq!(m.attempt_succeeded(3), [Finish(RunStatus::Completed)]);
    assert!(m.is_finished());
}

#[test]
fn fan_in_with_one_failed_branch_skips_the_join_and_fails_the_run() {
    let mut m = machine(&[&[], &[], &[0, 1], &[2]]);
    assert_eq!(m.start(), [Prepare(0), Prepare(1)]);
    run(&mut m, 0);
    run(&mut m, 1);
    assert_eq!(
        m.attempt_failed(0, PERMANENT),
        [Fail {
            pos: 0,
            not_retried: false
        }]
    );
    // The join waits for the other branch before it is decided.
    assert_eq!(
        m.attempt_succeeded(1),
        [
            Skip {
                pos: 2,
                cause: SkipCause::Failure,
                reason: SkipReason::UpstreamFailed(vec![0]),
            },
            Skip {
                pos: 3,
                cause: SkipCause::Failure,
                reason: SkipReason::UpstreamFailed(vec![2]),
            },
            Finish(RunStatus::Failed),
        ]
    );
}

#[test]
fn a_false_condition_skips_its_branch_but_not_a_join_with_another_branch() {
    // 0 -> 1 (when false) -> 3;  0 -> 2 -> 4 (joins 1 and 2)
    let mut m = machine(&[&[], &[0], &[0], &[1], &[1, 2]]);
    m.start();
    run(&mut m, 0);
    assert_eq!(m.attempt_succeeded(0), [Prepare(1), Prepare(2)]);
    assert_eq!(
        m.prepared(1, Prepared::ConditionFalse("x != y".into())),
        [
            Skip {
                pos: 1,
                cause: SkipCause::Condition,
                reason: SkipReason::ConditionFalse("x != y".into()),
            },
            // Everything 3 depends on was skipped: it is skipped too.
            Skip {
                pos: 3,
                cause: SkipCause::Condition,
                reason: SkipReason::UpstreamSkipped(vec![1]),
            },
        ]
    );
    run(&mut m, 2);
    // 4 has one branch that ran: it runs.
    assert_eq!(m.attempt_succeeded(2), [Prepare(4)]);
    run(&mut m, 4);
    assert_eq!(m.attempt_succeeded(4), [Finish(RunStatus::Completed)]);
}

#[test]
fn skips_cascade_down_a_long_chain_without_recursion() {
    let deps: Vec<Vec<usize>> = (0..10_000)
        .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
        .collect();
    let n = deps.len();
    let mut m = RunMachine::new(
        deps,
        vec![policy(1); n],
        vec![Initial::PENDING; n],
        RunStatus::Running,
    )
    .unwrap();
    m.start();
    run(&mut m, 0);
    let decisions = m.attempt_failed(0, PERMANENT);
    assert_eq!(decisions.len(), n + 1);
    assert_eq!(decisions.last(), Some(&Finish(RunStatus::Failed)));
}

#[test]
fn transient_failures_are_retried_within_the_budget_then_fail() {
    let mut m = RunMachine::new(
        vec![vec![], vec![0]],
        vec![policy(3), policy(1)],
        vec![Initial::PENDING; 2],
        RunStatus::Running,
    )
    .unwrap();
    m.start();
    run(&mut m, 0);
    let delay_2 = policy(3).delay_before(2);
    assert_eq!(
        m.attempt_failed(0, TRANSIENT),
        [Attempt {
            pos: 0,
            attempt: 2,
            delay: delay_2
        }]
    );
    m.attempt_started(0, 2);
    assert!(matches!(
        m.attempt_failed(0, TRANSIENT).as_slice(),
        [Attempt { attempt: 3, .. }]
    ));
    m.attempt_started(0, 3);
    assert_eq!(
        m.attempt_failed(0, TRANSIENT),
        [
            Fail {
                pos: 0,
                not_retried: false
            },
            Skip {
                pos: 1,
                cause: SkipCause::Failure,
                reason: SkipReason::UpstreamFailed(vec![0]),
            },
            Finish(RunStatus::Failed),
        ]
    );
    assert_eq!(m.attempts(0), 3);
}

#[test]
fn a_retry_waits_at_least_as_long_as_the_agent_asks() {
    let mut m = RunMachine::new(
        vec![vec![]],
        vec![policy(2)],
        vec![Initial::PENDING],
        RunStatus::Running,
    )
    .unwrap();
    m.start();
    run(&mut m, 0);
    let asked = Duration::from_secs(7);
    let failure = AttemptFailure {
        retry_after: Some(asked),
        ..TRANSIENT
    };
    assert_eq!(
        m.attempt_failed(0, failure),
        [Attempt {
            pos: 0,
            attempt: 2,
            delay: asked
        }]
    );
}

#[test]
fn errors_that_would_repeat_are_not_retried() {
    for kind in [ErrorKind::Permanent, ErrorKind::Configuration] {
        let mut m = RunMachine::new(
            vec![vec![]],
            vec![policy(3)],
            vec![Initial::PENDING],
            RunStatus::Running,
        )
        .unwrap();
        m.start();
        run(&mut m, 0);
        let failure = AttemptFailure { kind, ..TRANSIENT };
        assert_eq!(
            m.attempt_failed(0, failure),
            [
                Fail {
                    pos: 0,
                    not_retried: true
                },
                Finish(RunStatus::Failed)
            ]
        );
    }
}

#[test]
fn a_deadline_is_a_transient_failure_the_policy_may_retry() {
    let mut m = RunMachine::new(
        vec![vec![]],
        vec![policy(2)],
        vec![Initial::PENDING],
        RunStatus::Running,
    )
    .unwrap();
    m.start();
    run(&mut m, 0);
    let timed_out = AttemptFailure {
        timed_out: true,
        ..TRANSIENT
    };
    assert!(matches!(
        m.attempt_failed(0, timed_out).as_slice(),
        [Attempt { attempt: 2, .. }]
    ));
    m.attempt_started(0, 2);
    assert!(matches!(
        m.attempt_failed(0, timed_out).as_slice(),
        [Fail { .. }, Finish(RunStatus::Failed)]
    ));
}

#[test]
fn cancel_cancels_every_node_not_done_and_ends_the_run() {
    let mut m = machine(&[&[], &[0], &[]]);
    m.start();
    run(&mut m, 0);
    run(&mut m, 2);
    assert_eq!(m.attempt_succeeded(2), []);
    assert_eq!(
        m.cancel(),
        [Cancel(0), Cancel(1), Finish(RunStatus::Cancelled)]
    );
    // Whatever the cancelled attempts report afterwards changes nothing.
    assert_eq!(m.attempt_succeeded(0), []);
    assert_eq!(m.cancel(), []);
    assert_eq!(m.state(1), State::Done(Outcome::Cancelled));
}

#[test]
fn a_run_waits_while_only_people_can_move_it_on() {
    // 0 asks a person; 1 runs beside it; 2 needs both.
    let mut m = machine(&[&[], &[], &[0, 1]]);
    assert_eq!(m.start(), [Prepare(0), Prepare(1)]);
    assert_eq!(m.prepared(0, Prepared::Wait), [Wait(0)]);
    run(&mut m, 1);
    assert_eq!(m.attempt_succeeded(1), [SetStatus(RunStatus::Waiting)]);
    assert!(m.is_waiting(0));
    assert_eq!(m.answered(0), [SetStatus(RunStatus::Running), Prepare(2)]);
    // An answer to a node that no longer waits changes nothing.
    assert_eq!(m.answered(0), []);
    run(&mut m, 2);
    assert_eq!(m.attempt_succeeded(2), [Finish(RunStatus::Completed)]);
}

#[test]
fn a_node_that_cannot_be_prepared_fails_without_an_attempt() {
    let mut m = machine(&[&[], &[0]]);
    m.start();
    assert_eq!(
        m.prepared(0, Prepared::Invalid),
        [
            Fail {
                pos: 0,
                not_retried: false
            },
            Skip {
                pos: 1,
                cause: SkipCause::Failure,
                reason: SkipReason::UpstreamFailed(vec![0]),
            },
            Finish(RunStatus::Failed),
        ]
    );
    assert_eq!(m.attempts(0), 0);
}

#[test]
fn a_resumed_run_runs_again_only_what_did_not_finish() {
    // Chain 0 -> 1 -> 2 -> 3: 0 and 1 completed before the crash, 2 was
    // running (its attempt was lost to the restart), 3 never started.
    let interrupted = Initial {
        state: State::Pending,
        attempts: 1,
        failed: 0,
    };
    let initial = vec![
        done(Outcome::Completed),
        done(Outcome::Completed),
        interrupted,
        Initial::PENDING,
    ];
    let mut m = machine_from(&[&[], &[0], &[1], &[2]], initial, RunStatus::Running);
    assert_eq!(m.start(), [Prepare(2)]);
    // The lost attempt was the first; this is the second, and the budget
    // of one failure is still whole.
    assert_eq!(m.prepared(2, Prepared::Agent), [attempt(2, 2)]);
    m.attempt_started(2, 2);
    assert_eq!(m.attempt_succeeded(2), [Prepare(3)]);
}

#[test]
fn a_resumed_run_that_waited_goes_on_waiting() {
    let waiting = Initial {
        state: State::Waiting,
        attempts: 1,
        failed: 0,
    };
    let initial = vec![done(Outcome::Completed), waiting, Initial::PENDING];
    let mut m = machine_from(&[&[], &[0], &[1]], initial, RunStatus::Waiting);
    assert_eq!(m.start(), []);
    assert_eq!(m.answered(1), [SetStatus(RunStatus::Running), Prepare(2)]);
}

#[test]
fn a_resumed_run_with_nothing_left_finishes_at_once() {
    let initial = vec![done(Outcome::Completed), done(Outcome::Failed)];
    let mut m = machine_from(&[&[], &[]], initial, RunStatus::Running);
    assert_eq!(m.start(), [Finish(RunStatus::Failed)]);
}

#[test]
fn a_replay_that_reuses_most_nodes_runs_only_its_replay_set() {
    // A 1,000-node chain replayed from node 998: 0..998 are reused.
    let n = 1_000;
    let deps: Vec<Vec<usize>> = (0..n)
        .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
        .collect();
    let initial = (0..n)
        .map(|i| {
            if i < 998 {
                done(Outcome::Reused)
            } else {
                Initial::PENDING
            }
        })
        .collect();
    let mut m = RunMachine::new(deps, vec![policy(1); n], initial, RunStatus::Running).unwrap();
    assert_eq!(m.start(), [Prepare(998)]);
    run(&mut m, 998);
    assert_eq!(m.attempt_succeeded(998), [Prepare(999)]);
    run(&mut m, 999);
    assert_eq!(m.attempt_succeeded(999), [Finish(RunStatus::Completed)]);
}

#[test]
fn a_replay_carries_a_skip_over_like_the_run_it_replays() {
    // 0 was skipped by its condition in the source run and is not in the
    // replay set; 1 depends on it only: it skips as it did there.
    let initial = vec![
        done(Outcome::Skipped(SkipCause::Condition)),
        Initial::PENDING,
        Initial::PENDING,
    ];
    let mut m = machine_from(&[&[], &[0], &[]], initial, RunStatus::Running);
    assert_eq!(
        m.start(),
        [
            Skip {
                pos: 1,
                cause: SkipCause::Condition,
                reason: SkipReason::UpstreamSkipped(vec![0]),
            },
            Prepare(2),
        ]
    );
}

#[test]
fn an_overridden_node_counts_as_completed_for_its_consumers() {
    let initial = vec![
        done(Outcome::Reused),
        done(Outcome::Completed),
        Initial::PENDING,
    ];
    let mut m = machine_from(&[&[], &[0], &[1]], initial, RunStatus::Running);
    assert_eq!(m.start(), [Prepare(2)]);
}

#[test]
fn graphs_that_cannot_be_are_refused() {
    let err = RunMachine::new(
        vec![vec![1], vec![5]],
        vec![policy(1); 2],
        vec![Initial::PENDING; 2],
        RunStatus::Running,
    )
    .unwrap_err();
    assert!(err.contains("node 1 depends on node 5"), "{err}");
}

#[test]
fn a_node_without_a_policy_rides_out_rate_limits_but_not_its_deadline() {
    let budget = RetryPolicy::default();
    assert!(!budget.declared);
    let mut m = RunMachine::new(
        vec![vec![], vec![]],
        vec![budget.clone(), budget.clone()],
        vec![Initial::PENDING; 2],
        RunStatus::Running,
    )
    .unwrap();
    m.start();
    run(&mut m, 0);
    run(&mut m, 1);
    let rate_limited = AttemptFailure {
        retry_after: Some(Duration::from_secs(2)),
        ..TRANSIENT
    };
    for attempt in 2..=budget.max_retries {
        let decisions = m.attempt_failed(0, rate_limited);
        assert!(
            matches!(decisions.as_slice(), [Attempt { pos: 0, attempt: a, delay }] if *a == attempt && *delay >= Duration::from_secs(2)),
            "{decisions:?}"
        );
        assert!(m.attempt_started(0, attempt));
    }
    assert!(matches!(
        m.attempt_failed(0, rate_limited).as_slice(),
        [Fail { pos: 0, .. }]
    ));
    // A deadline with no policy fails at once.
    let timed_out = AttemptFailure {
        timed_out: true,
        ..TRANSIENT
    };
    assert!(matches!(
        m.attempt_failed(1, timed_out).as_slice(),
        [
            Fail {
                pos: 1,
                not_retried: false
            },
            Finish(RunStatus::Failed)
        ]
    ));
}

/// An attempt lost with its worker is made again at once and costs the
/// budget nothing: with a budget of one attempt, the node still gets a
/// second chance after losing the first, and fails on its first real
/// failure.
#[test]
fn attempts_lost_with_a_worker_do_not_count_against_the_budget() {
    let mut m = machine(&[&[]]);
    m.start();
    run(&mut m, 0);
    assert_eq!(m.attempt_lost(0), [attempt(0, 2)]);
    assert!(m.attempt_started(0, 2));
    assert_eq!(m.attempt_lost(0), [attempt(0, 3)]);
    assert!(m.attempt_started(0, 3));
    assert_eq!(m.attempts(0), 3);
    assert_eq!(
        m.attempt_failed(0, TRANSIENT),
        [
            Fail {
                pos: 0,
                not_retried: false
            },
            Finish(RunStatus::Failed)
        ]
    );
    // A lost attempt of a node that is no longer running decides nothing.
    assert!(m.attempt_lost(0).is_empty());
}
