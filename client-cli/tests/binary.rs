//! The `retake` binary as a user runs it: exit codes, stdout and stderr,
//! with the embedded engine on a database in a temporary directory.

mod common;

use common::{FAILING, PIPELINE, SLOW, write};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn retake(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_retake"));
    cmd.current_dir(dir)
        .env_remove("RETAKE_SERVER")
        .env_remove("RETAKE_TOKEN")
        .env_remove("RETAKE_TOKEN_FILE")
        .env_remove("RETAKE_DB")
        .env_remove("RETAKE_PROFILE")
        // No config file unless a test writes this one.
        .env("RETAKE_CONFIG", dir.join("config.toml"))
        .env("NO_COLOR", "1");
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    retake(dir).args(args).output().expect("retake runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_then_list_with_the_default_database() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "pipeline.yaml", PIPELINE);
    let out = run(
        dir.path(),
        &["run", "pipeline.yaml", "--var", "topic=binary"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("  ✓ fetch completed ("), "{text}");
    assert!(
        text.contains("\nWorkflow: report-pipeline\nStatus: completed\nNodes: 4/4 completed\n"),
        "{text}"
    );
    assert!(
        dir.path().join(".retake/retake.db").exists(),
        "default database in the working directory"
    );

    let out = run(dir.path(), &["runs", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["status"], "completed");
}

#[test]
fn json_output_is_only_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "failing.yaml", FAILING);
    let out = run(
        dir.path(),
        &["--db", "x/r.db", "run", "failing.yaml", "--json-output"],
    );
    assert_eq!(out.status.code(), Some(1));
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(summary["status"], "failed");
    assert_eq!(summary["failed_nodes"], 1);
    assert!(summary["forked_from"].is_null());
    let run_id = summary["run_id"].as_str().unwrap();
    assert_eq!(
        stderr(&out),
        format!("Tip: run 'retake debug {run_id} --errors'\n")
    );
    assert!(dir.path().join("x/r.db").exists());
}

#[test]
fn usage_errors_exit_2_with_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "pipeline.yaml", PIPELINE);
    let cases: [(&[&str], &str); 4] = [
        (
            &["run", "pipeline.yaml", "--var", "topic"],
            "Error: Invalid variable format: topic (expected key=value)\n",
        ),
        (
            &["run", "pipeline.yaml", "--detach"],
            "Error: --detach needs a server (--server or RETAKE_SERVER); without one the run lives in this process\n",
        ),
        (
            &[
                "replay",
                "run_x",
                "--from",
                "summarize",
                "--agent",
                "summarize llm://openai/gpt-4o",
            ],
            "Error: Invalid agent swap format: summarize llm://openai/gpt-4o (expected node=agent)\n",
        ),
        (
            &["replay", "run_x", "--override", "summarize"],
            "Error: Invalid override format: summarize (expected node=value, node.output=value or node=@file)\n",
        ),
    ];
    for (args, expected) in cases {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(stderr(&out), expected, "{args:?}");
        assert!(out.stdout.is_empty());
    }
    // Nothing was opened for those.
    assert!(!dir.path().join(".retake").exists());
    let out = run(dir.path(), &["runs", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn refusals_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["watch", "run_nonexistent"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "Error: Run 'run_nonexistent' not found\n");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let out = run(dir.path(), &["--server", &url, "runs"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(&format!("Error: cannot reach retake server at {url}: ")),
        "{}",
        stderr(&out)
    );
}

/// The engine in the CLI's process runs on SQLite: a PostgreSQL URL in
/// --db (as RETAKE_DB may hold for a server) is refused, naming what to do,
/// and creates nothing; `sqlite://PATH` is a path.
#[test]
fn a_postgres_db_without_a_server_is_refused_and_sqlite_urls_are_paths() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["--db", "postgres://u:p@127.0.0.1:1/db", "runs"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("PostgreSQL") && err.contains("--server"),
        "{err}"
    );
    assert!(!err.contains("u:p@"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let out = run(dir.path(), &["--db", "sqlite://mine/retake.db", "runs"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(dir.path().join("mine/retake.db").is_file());
}

/// `--version` names the contract; `completions` prints a script each
/// shell loads, naming the commands and flags, without opening anything.
#[test]
fn version_names_the_contract_and_completions_cover_every_shell() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--version"]);
    assert_eq!(
        stdout(&out),
        format!(
            "retake {} (contract retake.v1)\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = run(dir.path(), &["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for word in ["replay", "experiment", "server", "first-divergence"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let bash = stdout(&run(dir.path(), &["completions", "bash"]));
    let path = dir.path().join("retake.bash");
    std::fs::write(&path, bash).unwrap();
    let checked = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(!dir.path().join(".retake").exists(), "nothing opened");
    let out = run(dir.path(), &["completions", "nosh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("possible values: bash"),
        "{}",
        stderr(&out)
    );
}

/// The config file gives what flags leave unset, by profile; a flag wins;
/// a profile it lacks or a key it does not know is refused, naming it.
#[test]
fn the_config_file_and_its_profiles_fill_in_unset_flags() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "config.toml",
        "db = \"top/retake.db\"\n\n[profile.other]\ndb = \"other/retake.db\"\n\n[profile.remote]\nserver = \"http://127.0.0.1:1\"\n",
    );
    let out = run(dir.path(), &["runs"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        dir.path().join("top/retake.db").is_file(),
        "the top level's database"
    );
    let out = run(dir.path(), &["--profile", "other", "runs"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        dir.path().join("other/retake.db").is_file(),
        "the profile's database"
    );
    let out = run(
        dir.path(),
        &["runs", "--profile", "other", "--db", "flag.db"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(dir.path().join("flag.db").is_file(), "the flag wins");
    let out = run(dir.path(), &["--profile", "remote", "runs"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot reach retake server at http://127.0.0.1:1"),
        "{}",
        stderr(&out)
    );

    let out = run(dir.path(), &["--profile", "nope", "runs"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--profile nope") && stderr(&out).contains("it has: other, remote"),
        "{}",
        stderr(&out)
    );
    write(dir.path(), "config.toml", "sever = \"http://x\"\n");
    let out = run(dir.path(), &["runs"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("config.toml") && stderr(&out).contains("sever"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn validate_exits_2_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "bad.yaml",
        "name: bad\nnodes:\n  a:\n    agent: nope://x\n    outputs: [result]\n",
    );
    let out = run(dir.path(), &["validate", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(
        text.starts_with("bad.yaml:") && text.contains(": error: node 'a': "),
        "{text}"
    );
    assert_eq!(stderr(&out), "Error: workflow 'bad' is invalid (1 error)\n");

    write(dir.path(), "pipeline.yaml", PIPELINE);
    let out = run(dir.path(), &["validate", "pipeline.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        stdout(&out),
        "Workflow 'report-pipeline' is valid (4 nodes)\n\
         Variables it needs: topic (give them when running: --var topic=VALUE)\n"
    );
    // With --var, a variable not given is an error that names it.
    let out = run(
        dir.path(),
        &["validate", "pipeline.yaml", "--var", "other=1"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).ends_with("; no value for variable 'topic'\n"),
        "{}",
        stderr(&out)
    );
    let out = run(
        dir.path(),
        &["validate", "pipeline.yaml", "--var", "topic=x"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn ctrl_c_cancels_an_embedded_run() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "slow.yaml", SLOW);
    let mut child = retake(dir.path())
        .args(["run", "slow.yaml", "-v"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let started = line.contains("nap started");
        seen.push(line);
        if started {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("nap started")),
        "{seen:?}"
    );
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    let text = rest.join("\n");
    assert!(text.contains("Status: cancelled"), "{text}");

    let out = run(dir.path(), &["runs", "--status", "cancelled", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        runs.as_array().unwrap().len(),
        1,
        "the cancellation was recorded"
    );
}

#[test]
fn watch_json_lines_and_raw_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "pipeline.yaml", PIPELINE);
    let out = run(
        dir.path(),
        &["run", "pipeline.yaml", "--var", "topic=raw", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = run(dir.path(), &["watch", "latest", "--json", "--after", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(events[0]["sequence"], 3);
    for pair in events.windows(2) {
        assert_eq!(
            pair[1]["sequence"].as_i64().unwrap(),
            pair[0]["sequence"].as_i64().unwrap() + 1
        );
    }
    assert_eq!(events.last().unwrap()["kind"], "run_finished");

    let out = run(dir.path(), &["artifacts", "list", "latest", "--json"]);
    let artifacts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let summarize = artifacts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["node_id"] == "summarize")
        .unwrap();
    let id = summarize["id"].as_str().unwrap();
    let out = run(dir.path(), &["artifacts", "show", id, "--raw"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"summary v1");
}

#[test]
fn embedded_waits_without_a_terminal_stop_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ask.yaml",
        "name: ask\nnodes:\n  question:\n    agent: human://input\n    system_prompt: Which topic?\n    outputs: [value]\n",
    );
    let out = retake(dir.path())
        .args(["run", "ask.yaml"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("  ⏸ question waiting: Which topic?\n"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("Status: waiting\n"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("waits for a human at node 'question'"),
        "{}",
        stderr(&out)
    );

    // Another process has no engine driving that run, and says so instead of hanging.
    let out = run(dir.path(), &["watch", "latest"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is waiting, but no engine in this process drives it"),
        "{}",
        stderr(&out)
    );
}

/// The global options, shown once under `retake --help`.
const GLOBAL_OPTIONS: [&str; 6] = [
    "--server",
    "--db",
    "--json",
    "--no-color",
    "--token-file",
    "--ca-cert",
];

#[test]
fn global_options_are_listed_once_under_retake_help() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for option in GLOBAL_OPTIONS {
        assert!(
            text.contains(&format!("      {option}")),
            "{option}: {text}"
        );
    }
    let commands: [&[&str]; 6] = [
        &["run", "--help"],
        &["replay", "--help"],
        &["diff", "--help"],
        &["artifacts", "list", "--help"],
        &["trace", "node", "--help"],
        &["help", "watch"],
    ];
    for args in commands {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = stdout(&out);
        let note = "Global options (--server, --db, --json, …): see 'retake --help'.\n";
        assert!(text.ends_with(note), "{args:?}:\n{text}");
        let options = text.strip_suffix(note).unwrap();
        for option in GLOBAL_OPTIONS {
            assert!(
                !options.contains(option),
                "{args:?} lists {option}:\n{text}"
            );
        }
    }
    // Still accepted on either side of the command.
    write(dir.path(), "pipeline.yaml", PIPELINE);
    let out = run(
        dir.path(),
        &[
            "run",
            "pipeline.yaml",
            "--var",
            "topic=t",
            "--db",
            "a/r.db",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(dir.path().join("a/r.db").exists());
    let out = run(dir.path(), &["--db", "a/r.db", "--json", "runs"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    let out = run(
        dir.path(),
        &["--db", "b/r.db", "runs", "--db", "a/r.db", "--json"],
    );
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "the later --db wins");
}

#[test]
fn contradicting_replay_flags_exit_2_before_anything_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "replay",
                "run_x",
                "--agent",
                "src=local://echo",
                "--override",
                "src=text",
            ],
            "Error: node 'src' is given both --agent ('src=local://echo') and --override ('src=text'): \
             an overridden node does not run, so its agent would not be used; give one of them\n",
        ),
        (
            &[
                "replay",
                "run_x",
                "--agent",
                "src=local://echo",
                "--agent",
                "src=local://mock",
            ],
            "Error: --agent is given twice for node 'src' ('src=local://echo' and 'src=local://mock'); give it once\n",
        ),
        (
            &[
                "replay",
                "run_x",
                "--override",
                "src=a",
                "--override",
                "src=b",
            ],
            "Error: --override is given twice for node 'src' ('src=a' and 'src=b'); give each output one value\n",
        ),
    ];
    for (args, expected) in cases {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(stderr(&out), expected, "{args:?}");
        assert!(out.stdout.is_empty());
    }
    assert!(!dir.path().join(".retake").exists());
}

/// A retake server in this test process, on a runtime of its own.
struct TestServer {
    server: common::Served,
    _runtime: tokio::runtime::Runtime,
}

fn test_server() -> TestServer {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(common::served(None));
    TestServer {
        server,
        _runtime: runtime,
    }
}

/// Waits for `child` at most `secs` seconds; kills it and fails after that.
fn wait_at_most(mut child: std::process::Child, secs: u64, what: &str) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} still running after {secs} s\nstdout:\n{}\nstderr:\n{}",
                stdout(&out),
                stderr(&out)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_server_run_waiting_for_approval_without_a_terminal_stops_with_the_summary() {
    let srv = test_server();
    let dir = tempfile::tempdir().unwrap();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/approval.yaml");
    for json in [false, true] {
        let mut args = vec!["run", examples];
        if json {
            args.push("--json");
        }
        // As in `retake run examples/approval.yaml | cat`: stdout is a pipe.
        let child = retake(dir.path())
            .env("RETAKE_SERVER", &srv.server.url)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_at_most(child, 60, "retake run examples/approval.yaml");
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let text = stdout(&out);
        let id = if json {
            let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(summary["status"], "waiting");
            summary["run_id"].as_str().unwrap().to_string()
        } else {
            assert!(
                text.contains("  ⏸ review waiting: Publish this summary?\n"),
                "{text}"
            );
            assert!(text.contains("\nStatus: waiting\n"), "{text}");
            let line = text.lines().find(|l| l.starts_with("Run ID: ")).unwrap();
            line["Run ID: ".len()..].to_string()
        };
        let hint = stderr(&out);
        assert_eq!(
            hint,
            format!(
                "Run {id} waits for a human at node 'review'; answer with 'retake approve {id}' or \
                 'retake reject {id} --feedback TEXT', then follow it with 'retake watch {id}'\n"
            )
        );
        let out = retake(dir.path())
            .env("RETAKE_SERVER", &srv.server.url)
            .args(["approve", &id])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
}

#[test]
fn server_addresses_without_a_scheme_are_http() {
    let srv = test_server();
    let dir = tempfile::tempdir().unwrap();
    let host_port = srv.server.url.strip_prefix("http://").unwrap().to_string();
    for args in [
        ["--server", &host_port, "runs"],
        ["runs", "--server", &host_port],
    ] {
        let out = run(dir.path(), &args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "No runs found\n");
    }
    let out = retake(dir.path())
        .env("RETAKE_SERVER", &host_port)
        .args(["runs", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "[]\n");
    let out = run(
        dir.path(),
        &["--server", &format!("grpc://{host_port}"), "runs"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "'grpc://' is not supported; give HOST:PORT, http://HOST:PORT or https://HOST:PORT"
        ),
        "{}",
        stderr(&out)
    );
}

/// Starts `retake experiment run` replaying every recorded run with
/// summarize swapped for `local://sleep` (a second each), one at a time;
/// returns once the first replay has completed, with the lines the rest
/// of stderr will bring.
fn slow_experiment(
    dir: &Path,
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStderr>>,
) {
    let mut child = retake(dir)
        .args([
            "experiment",
            "run",
            "--workflow",
            "report-pipeline",
            // Three runs, though the first experiment's replays are runs
            // of the workflow too.
            "--status",
            "completed",
            "--last",
            "3",
            "--agent",
            "summarize=local://sleep",
            "--concurrency",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().expect("a progress line").unwrap();
    assert!(first.starts_with("  completed run_"), "{first}");
    (child, lines)
}

fn experiment_json(dir: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = run(dir, &[args, &["--json"]].concat());
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
    (out.status.code(), json)
}

#[test]
fn ctrl_c_cancels_an_embedded_experiment_and_a_killed_one_is_cancelled_later() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "pipeline.yaml", PIPELINE);
    for i in 0..3 {
        let topic = format!("topic=t{i}");
        let out = run(dir.path(), &["run", "pipeline.yaml", "--var", &topic]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }

    // Ctrl-C: the replays run in this process, so the experiment is cancelled.
    let (mut child, lines) = slow_experiment(dir.path());
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(
        rest[0].starts_with("Cancelling experiment exp_"),
        "{rest:?}"
    );
    let (code, shown) = experiment_json(dir.path(), &["experiment", "show", "latest"]);
    assert_eq!(code, Some(1), "cancelled");
    assert_eq!(shown["status"], "cancelled");
    assert_eq!(shown["progress"]["completed"], 1);
    assert_eq!(shown["progress"]["cancelled"], 2);

    // Killed outright, it stays running in the database until a later
    // command takes it over to cancel it.
    let (mut child, _lines) = slow_experiment(dir.path());
    child.kill().unwrap();
    child.wait().unwrap();
    let (_, left) = experiment_json(dir.path(), &["experiment", "show", "latest"]);
    assert_eq!(left["status"], "running");
    let (code, cancelled) = experiment_json(dir.path(), &["experiment", "cancel", "latest"]);
    assert_eq!(code, Some(1), "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["progress"]["completed"], 1);
    assert_eq!(cancelled["progress"]["cancelled"], 2);
    let out = run(dir.path(), &["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let unfinished: Vec<_> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "running" || r["status"] == "pending")
        .collect();
    assert!(unfinished.is_empty(), "{unfinished:?}");
}
