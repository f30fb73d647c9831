//! Runs that wait for a human: answered with `approve`, `reject` and
//! `input` while `run` follows them, and an embedded run that nobody can
//! answer from here.

mod common;

use common::*;
use retake::v1::{Event, EventKind, WaitKind};
use retake_cli::cli::*;
use retake_cli::commands::{self, RunEnd};
use retake_cli::connect::WaitPolicy;
use retake_cli::follow::{Collect, EventSink, Interrupt};
use retake_cli::render::{Output, Style};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

const APPROVAL: &str = r#"name: approval
nodes:
  draft:
    agent: local://mock
    config: {response: "Quarterly summary"}
    outputs: [text]
  review:
    agent: human://approve
    system_prompt: "Publish this summary?"
    inputs: {summary: "${draft.text}"}
    outputs: [decision, feedback]
    depends_on: [draft]
  publish:
    agent: local://echo
    when: "${review.decision} == approved"
    inputs: {text: "${draft.text}"}
    outputs: [result]
    depends_on: [review]
  revise:
    agent: local://echo
    when: "${review.decision} == rejected"
    inputs: {why: "${review.feedback}"}
    outputs: [result]
    depends_on: [review]
"#;

const INPUT: &str = r#"name: ask
nodes:
  question:
    agent: human://input
    system_prompt: "Which topic?"
    outputs: [value]
  echo:
    agent: local://echo
    inputs: {topic: "${question.value}"}
    outputs: [result]
    depends_on: [question]
"#;

/// Records events and signals when a node starts waiting.
struct OnWait {
    waiting: Arc<Notify>,
    events: Arc<Mutex<Vec<Event>>>,
}

impl EventSink for OnWait {
    fn on_event(&mut self, event: &Event) {
        self.events.lock().unwrap().push(event.clone());
        if event.kind() == EventKind::WaitStarted {
            self.waiting.notify_one();
        }
    }
}

fn status_of(events: &[Event], node: &str) -> Vec<EventKind> {
    node_kinds(events, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_while_run_follows_on_a_server() {
    let server = served(None).await;
    let clients = server.clients(None).await;
    let wf = write(server.dir.path(), "approval.yaml", APPROVAL);
    let waiting = Arc::new(Notify::new());
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut sink = OnWait {
        waiting: waiting.clone(),
        events: events.clone(),
    };
    let answerer = {
        let clients = clients.clone();
        tokio::spawn(async move {
            waiting.notified().await;
            commands::waits::approve(
                &clients,
                &ApproveArgs {
                    run_id: "latest".into(),
                    node: None,
                    feedback: Some("ship it".into()),
                },
            )
            .await
        })
    };
    let args = RunArgs {
        file: wf,
        ..Default::default()
    };
    let out = commands::run::run(&clients, &args, &mut sink, &Interrupt::Never)
        .await
        .unwrap();
    let resolved = answerer.await.unwrap().unwrap();
    assert_eq!(resolved.wait.node_id, "review");
    assert_eq!(
        resolved.text(Style::PLAIN).lines().next().unwrap(),
        format!("Node 'review' of run {} approved", out.summary.run_id)
    );
    assert_eq!(resolved.json()["answer"], "approved");

    assert_eq!(out.summary.status, "completed");
    let events = events.lock().unwrap();
    assert!(status_of(&events, "publish").contains(&EventKind::NodeCompleted));
    assert_eq!(status_of(&events, "revise"), [EventKind::NodeSkipped]);
    assert!(status_of(&events, "review").contains(&EventKind::WaitResolved));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_answers_the_only_pending_wait() {
    let env = embedded().await;
    let wf = write(env.dir.path(), "ask.yaml", INPUT);
    // Not interactive (as under a pipe): the run stops at the wait and says how to answer it.
    let out = commands::run::run(
        &env.clients,
        &RunArgs {
            file: wf,
            ..Default::default()
        },
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .unwrap();
    assert_eq!(
        out.end,
        RunEnd::Waiting {
            node_id: "question".into(),
            kind: WaitKind::Input,
            several: false,
            embedded: true,
        }
    );
    assert_eq!(out.summary.status, "waiting");
    assert_eq!(out.exit_code(), 1);
    let id = &out.summary.run_id;
    assert_eq!(
        out.hint().unwrap(),
        format!(
            "Run {id} waits for a human at node 'question', and without a terminal nobody can answer here.\n\
             It stays waiting in the database; answer with 'retake input {id} --value TEXT'"
        )
    );

    let waits = commands::waits::pending(&env.clients, &out.summary.run_id)
        .await
        .unwrap();
    assert_eq!(waits.len(), 1);
    assert_eq!(waits[0].prompt, "Which topic?");

    let resolved = commands::waits::input(
        &env.clients,
        &InputArgs {
            run_id: out.summary.run_id.clone(),
            node: None,
            value: Some("durable execution".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(resolved.wait.node_id, "question");
    // The engine in this process carries the run on.
    let watched = commands::watch::watch(
        &env.clients,
        &WatchArgs {
            run_id: out.summary.run_id.clone(),
            ..Default::default()
        },
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .unwrap();
    assert_eq!(watched.summary.status, "completed");
    let node = commands::trace::node(&env.clients, &out.summary.run_id, "echo")
        .await
        .unwrap();
    let content = node.report.outputs[0].text.clone().unwrap();
    assert!(content.contains("durable execution"), "{content}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_a_run_without_waits_is_refused() {
    let env = embedded().await;
    let wf = write(env.dir.path(), "pipeline.yaml", PIPELINE);
    let out = commands::run::run(
        &env.clients,
        &RunArgs {
            file: wf,
            vars: vec!["topic=t".into()],
            ..Default::default()
        },
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .unwrap();
    let err = commands::waits::approve(
        &env.clients,
        &ApproveArgs {
            run_id: out.summary.run_id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, 1, "{}", err.message);
    assert!(err.message.contains(&out.summary.run_id), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_run_without_a_terminal_stops_at_an_approval() {
    let server = served(None).await;
    let mut clients = server.clients(None).await;
    // What `retake run` does when stdout is not a terminal (`retake run … | cat`).
    clients.waits = WaitPolicy::Stop;
    let wf = write(server.dir.path(), "approval.yaml", APPROVAL);
    let mut events = Collect::default();
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        commands::run::run(
            &clients,
            &RunArgs {
                file: wf,
                ..Default::default()
            },
            &mut events,
            &Interrupt::Never,
        ),
    )
    .await
    .expect("the run stops at the wait instead of following it")
    .unwrap();
    assert_eq!(
        out.end,
        RunEnd::Waiting {
            node_id: "review".into(),
            kind: WaitKind::Approval,
            several: false,
            embedded: false,
        }
    );
    assert_eq!(out.summary.status, "waiting");
    assert_eq!(out.exit_code(), 1);
    assert_eq!(out.json()["status"], "waiting");
    let id = &out.summary.run_id;
    let hint = out.hint().unwrap();
    assert_eq!(
        hint,
        format!(
            "Run {id} waits for a human at node 'review'; answer with 'retake approve {id}' or \
             'retake reject {id} --feedback TEXT', then follow it with 'retake watch {id}'"
        )
    );
    assert!(!hint.contains("retake input"), "{hint}");

    // The run goes on on the server once someone answers.
    commands::waits::reject(
        &clients,
        &RejectArgs {
            run_id: id.clone(),
            node: None,
            feedback: Some("too long".into()),
        },
    )
    .await
    .unwrap();
    let watched = commands::watch::watch(
        &clients,
        &WatchArgs {
            run_id: id.clone(),
            ..Default::default()
        },
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .unwrap();
    assert_eq!(watched.summary.status, "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_a_server_run_hints_the_command_for_its_wait_kind() {
    let server = served(None).await;
    let clients = server.clients(None).await;
    let wf = write(server.dir.path(), "approval.yaml", APPROVAL);
    let lines = Arc::new(Mutex::new(Vec::<u8>::new()));
    struct Lines(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    /// The text view, approving as soon as the hint is shown.
    struct ApproveOnHint {
        text: retake_cli::follow::TextProgress,
        hinted: Arc<Notify>,
    }
    impl EventSink for ApproveOnHint {
        fn on_event(&mut self, event: &Event) {
            self.text.on_event(event);
        }
        fn wants_waits(&self) -> bool {
            self.text.wants_waits()
        }
        fn on_wait(&mut self, wait: &retake::v1::Wait, pending: usize) {
            self.text.on_wait(wait, pending);
            self.hinted.notify_one();
        }
    }
    let hinted = Arc::new(Notify::new());
    let mut sink = ApproveOnHint {
        text: retake_cli::follow::TextProgress::new(Style::PLAIN, false, false)
            .with_wait_hints(true)
            .to_writer(Box::new(Lines(lines.clone()))),
        hinted: hinted.clone(),
    };
    let answerer = {
        let clients = clients.clone();
        tokio::spawn(async move {
            hinted.notified().await;
            commands::waits::approve(
                &clients,
                &ApproveArgs {
                    run_id: "latest".into(),
                    ..Default::default()
                },
            )
            .await
        })
    };
    let out = commands::run::run(
        &clients,
        &RunArgs {
            file: wf,
            ..Default::default()
        },
        &mut sink,
        &Interrupt::Never,
    )
    .await
    .unwrap();
    answerer.await.unwrap().unwrap();
    assert_eq!(out.summary.status, "completed");
    let text = String::from_utf8(lines.lock().unwrap().clone()).unwrap();
    let id = &out.summary.run_id;
    assert!(
        text.contains(&format!(
            "  ⏸ review waiting: Publish this summary?\n    answer with 'retake approve {id}' or 'retake reject {id} --feedback TEXT'\n"
        )),
        "{text}"
    );
    assert!(!text.contains("retake input"), "{text}");
}
