//! Performance figures for retake (see BENCHMARKS.md).
//!
//!     cargo build --release -p retake-server -p retake-cli
//!     cargo bench --bench retake [-- [SECTION]... [shape=NAME]... [--reps N] [--quick]]
//!
//! With no SECTION every section runs; naming one or more runs only those,
//! e.g. `cargo bench --bench retake -- throughput` (or `cargo bench --bench
//! retake throughput`, Cargo's bench filter, which reaches the bench the
//! same way). Sections:
//! - `chain`:  engine overhead of echo chains run through gRPC (in-process server),
//!   client-observed from StartRun to the RUN_FINISHED event of WatchRun.
//! - `cli`:    wall time of `retake --server URL runs --json` against the release
//!   `retake-server` binary, process start included.
//! - `memory`: VmRSS / VmHWM of the release `retake-server` with 100 runs in flight.
//! - `replay`: database growth and time of replaying the last node of a 1,000-node
//!   workflow of 100 KB outputs, against the same for a 10-node workflow
//!   (shapes `mock`, `echo`, `mocksmalllast`, `tiny`; `shape=NAME` picks some).
//! - `throughput`: 2,000 three-node `local://echo` runs started by 16 concurrent
//!   gRPC clients against the release `retake-server` binary (SQLite file on
//!   disk), until every run is COMPLETED: runs/s, and the server's CPU per run.
//! - `workers`: a Python worker (clients/python, in its `.venv`) serving a
//!   trivial `worker://` step of the release `retake-server`: the round trip
//!   from the task handed out to its result committed, a 1,000-node chain of
//!   worker steps, and the tasks one worker process completes per second.
//! - `experiment`: an experiment over 200 recorded runs of a 50-node
//!   `local://mock` chain that gives the last node's mock another answer
//!   (in-process server): time from StartExperiment to its end, database
//!   growth, and the time GetExperiment takes to compute the comparison.
//!
//! - `postgres`: the release `retake-server` on a local PostgreSQL beside
//!   SQLite: 1,000-node chain overhead, the throughput above on one server
//!   and on two sharing the database, and the takeover time after `kill
//!   -9` of the server executing a run (see `retake/postgres.rs`).
//!
//! The servers are the kit's (retake-test-support): in-process, or the
//! release binary as a child process. It prints figures; it asserts
//! nothing about timings.

// A directory of its own: Cargo takes every file in benches/ for a bench.
#[path = "retake/postgres.rs"]
mod postgres;

use anyhow::{Context, Result, anyhow, bail, ensure};
use retake::v1 as pb;
use retake_test_support::process::{ServerCommand, ServerProcess};
use retake_test_support::workflows::echo_chain;
use retake_test_support::{Client, DbDir, binary, in_process};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- options

struct Opts {
    sections: Vec<String>,
    /// Replay shapes to run (`shape=NAME`); empty means all.
    shapes: Vec<String>,
    reps: usize,
    quick: bool,
}

impl Opts {
    fn parse() -> Result<Self> {
        let mut sections = Vec::new();
        let mut shapes = Vec::new();
        let mut reps = None;
        let mut quick = false;
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                // cargo bench passes --bench to harness = false targets.
                "--bench" => {}
                "--quick" => quick = true,
                "--reps" => {
                    let v = args.next().context("--reps needs a number")?;
                    reps = Some(v.parse::<usize>().context("--reps needs a number")?.max(1));
                }
                "chain" | "cli" | "memory" | "replay" | "throughput" | "workers" | "experiment"
                | "postgres" | "telemetry" => sections.push(a),
                other if other.starts_with("shape=") => {
                    shapes.push(other["shape=".len()..].to_lowercase())
                }
                "-h" | "--help" => {
                    println!(
                        "usage: cargo bench --bench retake -- [chain] [cli] [memory] [replay [shape=mock|echo|mocksmalllast|tiny]...] [throughput] [workers] [experiment] [postgres] [telemetry] [--reps N] [--quick]"
                    );
                    std::process::exit(0);
                }
                other if other.starts_with('-') => {} // other harness flags
                other => bail!(
                    "unknown section '{other}' (expected chain, cli, memory, replay, throughput, workers, experiment, postgres or telemetry)"
                ),
            }
        }
        if sections.is_empty() {
            sections = [
                "chain",
                "cli",
                "memory",
                "replay",
                "throughput",
                "workers",
                "experiment",
                "postgres",
                "telemetry",
            ]
            .map(String::from)
            .to_vec();
        }
        let reps = reps.unwrap_or(if quick { 3 } else { 7 });
        Ok(Self {
            sections,
            shapes,
            reps,
            quick,
        })
    }

    fn wants(&self, s: &str) -> bool {
        self.sections.iter().any(|x| x == s)
    }
}

// ---------------------------------------------------------------- statistics

struct Stats {
    samples: Vec<f64>,
}

impl Stats {
    fn new(mut samples: Vec<f64>) -> Self {
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        Self { samples }
    }
    fn median(&self) -> f64 {
        let s = &self.samples;
        let n = s.len();
        if n == 0 {
            return f64::NAN;
        }
        if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        }
    }
    fn min(&self) -> f64 {
        self.samples.first().copied().unwrap_or(f64::NAN)
    }
    fn max(&self) -> f64 {
        self.samples.last().copied().unwrap_or(f64::NAN)
    }
    /// Nearest-rank percentile.
    fn pct(&self, p: f64) -> f64 {
        let n = self.samples.len();
        if n == 0 {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as usize;
        self.samples[rank.min(n) - 1]
    }
}

/// User plus system CPU time of this process (`self`) or of its reaped children.
fn cpu_time(children: bool) -> Duration {
    let who = if children {
        libc::RUSAGE_CHILDREN
    } else {
        libc::RUSAGE_SELF
    };
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        libc::getrusage(who, ru.as_mut_ptr());
        ru.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Write system calls this process has made (`syscw` of /proc/self/io):
/// SQLite's page writes and the wake-ups between threads, independent of
/// how busy the machine is.
fn write_syscalls() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("syscw:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

/// A protobuf timestamp in microseconds.
fn micros(t: &Option<prost_types::Timestamp>) -> Result<i64> {
    let t = t.as_ref().context("missing timestamp")?;
    Ok(t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// `2000` as `2,000`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn kib(bytes: i64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

// ---------------------------------------------------------------- report

/// Every figure is printed as it is measured and again in a summary at the end.
#[derive(Default)]
struct Report {
    rows: Vec<[String; 4]>,
}

impl Report {
    fn add(&mut self, target: &str, figure: String, goal: &str, verdict: Option<bool>) {
        let v = match verdict {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "-",
        };
        println!("  => {target}: {figure} (target {goal}: {v})");
        self.rows
            .push([target.to_string(), figure, goal.to_string(), v.to_string()]);
    }

    fn print(&self) {
        let w: Vec<usize> = (0..4)
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].len())
                    .max()
                    .unwrap_or(0)
                    .max([6, 6, 6, 7][i])
            })
            .collect();
        println!();
        println!(
            "{:<w0$}  {:<w1$}  {:<w2$}  verdict",
            "target",
            "figure",
            "goal",
            w0 = w[0],
            w1 = w[1],
            w2 = w[2]
        );
        println!("{}", "-".repeat(w.iter().sum::<usize>() + 6));
        for r in &self.rows {
            println!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2]
            );
        }
    }
}

// ---------------------------------------------------------------- runs

/// The variables of a workflow as the kit's client takes them.
fn pairs(vars: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// A run started and followed to its end.
struct Timed {
    id: String,
    /// StartRun call to the RUN_FINISHED event.
    total: Duration,
    /// The StartRun call alone (parse, validate, store the run).
    start: Duration,
}

/// Starts a run and follows it to the end.
async fn run_timed(client: &mut Client, yaml: &str, vars: &[(&str, &str)]) -> Result<Timed> {
    let t0 = Instant::now();
    let id = client
        .try_start_run(yaml, vars)
        .await
        .context("StartRun")?
        .id;
    let start = t0.elapsed();
    let status = client.watch_to_end(&id).await;
    let total = t0.elapsed();
    ensure!(
        status == pb::RunStatus::Completed,
        "run {id} ended {status:?}"
    );
    Ok(Timed { id, total, start })
}

// ---------------------------------------------------------------- workflows

/// A chain of `n` nodes that each output 100 KB. `mock`: `local://mock`
/// whose `config.response` is `${user.big}`, one 100 KB variable (an alias
/// repeated in every node would expand past the server's limit on alias
/// expansion, which refuses such documents). `echo`: `local://echo` of `{step: K, data: ${user.big}}`,
/// so every output is distinct. With `small_last`, the last node is a plain
/// `echo {step: K}` instead, which isolates the cost of reusing the others.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Shape {
    Mock,
    Echo,
    MockSmallLast,
    /// Control: `echo {step: K}` outputs of a few bytes.
    Tiny,
}

const BIG: usize = 100 * 1024;

fn big_text() -> String {
    // Printable, no YAML or JSON specials, not trivially repetitive per line.
    let mut s = String::with_capacity(BIG);
    let mut k = 0u64;
    while s.len() < BIG {
        k = k
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s.push(char::from(b'a' + ((k >> 33) % 26) as u8));
    }
    s
}

fn replay_workflow(shape: Shape, n: usize) -> (String, BTreeMap<String, String>) {
    let mut vars = BTreeMap::new();
    let mut y = format!("name: replay-{shape:?}-{n}\nnodes:\n").to_lowercase();
    for k in 0..n {
        y.push_str(&format!("  n{k}:\n"));
        let last_small = shape == Shape::MockSmallLast && k == n - 1;
        match shape {
            Shape::Tiny => y.push_str(&format!(
                "    agent: local://echo\n    inputs: {{step: {k}}}\n"
            )),
            _ if last_small => y.push_str(&format!(
                "    agent: local://echo\n    inputs: {{step: {k}}}\n"
            )),
            Shape::Mock | Shape::MockSmallLast => {
                y.push_str("    agent: local://mock\n");
                y.push_str("    config: {response: \"${user.big}\"}\n");
            }
            Shape::Echo => {
                y.push_str(&format!(
                    "    agent: local://echo\n    inputs: {{step: {k}, data: \"${{user.big}}\"}}\n"
                ));
            }
        }
        y.push_str("    outputs: [result]\n");
        if k > 0 {
            y.push_str(&format!("    depends_on: [n{}]\n", k - 1));
        }
    }
    if shape != Shape::Tiny {
        vars.insert("big".to_string(), big_text());
    }
    (y, vars)
}

// ---------------------------------------------------------------- 1. chains

async fn bench_chains(opts: &Opts, report: &mut Report) -> Result<()> {
    println!("\n## 1. Engine overhead: chains of local://echo through gRPC (in-process server)");
    println!("   load before: {}", loadavg());
    let n = 1000;
    for inputs in [true, false] {
        let label = if inputs {
            "inputs: {step: N}"
        } else {
            "depends_on only"
        };
        let server = in_process::start().await;
        let mut client = (*server).clone();
        let yaml = echo_chain(n, inputs);
        // One warm-up run: first-touch allocations, statement caches.
        run_timed(&mut client, &yaml, &[]).await?;
        let mut per_node = Vec::new();
        let mut cpu_per_node = Vec::new();
        let mut starts = Vec::new();
        let mut servers = Vec::new();
        let mut writes = Vec::new();
        for _ in 0..opts.reps {
            let cpu0 = cpu_time(false);
            let w0 = write_syscalls();
            let t = run_timed(&mut client, &yaml, &[]).await?;
            writes.push((write_syscalls() - w0) as f64 / n as f64);
            per_node.push(ms(t.total) / n as f64);
            starts.push(ms(t.start));
            cpu_per_node.push(ms(cpu_time(false) - cpu0) / n as f64);
            let (run, _) = client.get(&t.id).await;
            servers.push(micros(&run.finish_time)? - micros(&run.start_time)?);
        }
        let s = Stats::new(per_node);
        let cpu = Stats::new(cpu_per_node);
        let start = Stats::new(starts);
        let server_ms = Stats::new(servers.into_iter().map(|us| us as f64 / 1000.0).collect());
        println!(
            "   1,000 nodes, {label:<18} {} reps: wall median {:.4} ms/node (min {:.4}, max {:.4}); run median {:.0} ms, \
             of which the StartRun call {:.1} ms; the run's own start_time..finish_time {:.0} ms; \
             CPU (server + client, all threads) median {:.4} ms/node; write syscalls median {:.1}/node",
            opts.reps,
            s.median(),
            s.min(),
            s.max(),
            s.median() * n as f64,
            start.median(),
            server_ms.median(),
            cpu.median(),
            Stats::new(writes).median(),
        );
        report.add(
            &format!("1,000-node echo chain, {label}"),
            format!(
                "{:.3} ms/node median (min {:.3}; CPU {:.3})",
                s.median(),
                s.min(),
                cpu.median()
            ),
            "<= 0.2 ms/node",
            Some(s.median() <= 0.2),
        );
        server.stop().await;
    }

    let big_n = 10_000;
    let reps = if opts.quick { 1 } else { 3 };
    let server = in_process::start().await;
    let mut client = (*server).clone();
    let yaml = echo_chain(big_n, true);
    let mut times = Vec::new();
    for _ in 0..reps {
        let t = run_timed(&mut client, &yaml, &[]).await?;
        let (d, id) = (t.total, t.id);
        let (run, _) = client.get(&id).await;
        let counts = run.counts.unwrap_or_default();
        ensure!(
            counts.completed == big_n as i32,
            "10,000-node run completed {} nodes",
            counts.completed
        );
        times.push(ms(d));
    }
    let s = Stats::new(times);
    println!(
        "   10,000 nodes, inputs: {{step: N}}, {reps} reps: median {:.0} ms ({:.4} ms/node), min {:.0}, max {:.0}",
        s.median(),
        s.median() / big_n as f64,
        s.min(),
        s.max()
    );
    report.add(
        "10,000-node echo chain runs",
        format!(
            "completed in {:.2} s median ({:.3} ms/node)",
            s.median() / 1000.0,
            s.median() / big_n as f64
        ),
        "must run",
        Some(true),
    );
    server.stop().await;
    println!("   load after: {}", loadavg());
    Ok(())
}

// ---------------------------------------------------------------- release binaries

/// A release binary of the workspace, built beforehand (see the top of the
/// file).
fn release_bin(name: &str) -> Result<PathBuf> {
    Ok(binary::path(name)?)
}

/// The release `retake-server` on 127.0.0.1:0 with its own database and
/// log; the process goes before its directory when the pair is dropped.
fn spawn_release(extra: &[&str]) -> Result<(ServerProcess, DbDir)> {
    release_bin("retake-server")?;
    let dir = DbDir::new();
    let server = ServerCommand::new(dir.db())
        .args(extra)
        .log(dir.log())
        .spawn();
    Ok((server, dir))
}

/// VmRSS and VmHWM of a process, in KiB.
fn proc_mem(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| anyhow!("no {name}"))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .context("bad status line")?
            .parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

// ---------------------------------------------------------------- 2. CLI

async fn bench_cli(opts: &Opts, report: &mut Report) -> Result<()> {
    println!("\n## 2. `retake --server URL runs --json`, release binaries, process start included");
    let cli = release_bin("retake")?;
    let (server, _dir) = spawn_release(&[])?;
    let url = server.url();
    let mut client = server.client().await;
    // A database with history: 100 finished runs (the command lists the newest 20).
    let yaml = echo_chain(5, true);
    for _ in 0..100 {
        let id = client.start_run(&yaml).await.id;
        client.watch_to_end(&id).await;
    }
    println!("   load before: {}", loadavg());
    let invoke = || -> Result<(Duration, Duration)> {
        let cpu0 = cpu_time(true);
        let t0 = Instant::now();
        let out = Command::new(&cli)
            .args(["--server", &url, "runs", "--json"])
            .env_remove("RETAKE_SERVER")
            .stdin(Stdio::null())
            .output()?;
        let d = t0.elapsed();
        let cpu = cpu_time(true) - cpu0;
        ensure!(
            out.status.success(),
            "retake runs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("retake runs --json output")?;
        ensure!(
            v.as_array().is_some_and(|a| a.len() == 20),
            "expected a JSON array of 20 runs, got {v}"
        );
        Ok((d, cpu))
    };
    for _ in 0..3 {
        invoke()?; // warm the page cache
    }
    let n = if opts.quick { 10 } else { 30 };
    let mut times = Vec::new();
    let mut cpus = Vec::new();
    for _ in 0..n {
        let (d, cpu) = invoke()?;
        times.push(ms(d));
        cpus.push(ms(cpu));
    }
    let s = Stats::new(times);
    let cpu = Stats::new(cpus);
    println!(
        "   {n} invocations: wall median {:.1} ms, min {:.1}, p90 {:.1}, max {:.1}; CPU of the retake process median {:.1} ms",
        s.median(),
        s.min(),
        s.pct(90.0),
        s.max(),
        cpu.median()
    );
    println!("   load after: {}", loadavg());
    report.add(
        "`retake runs --json` wall time",
        format!(
            "{:.1} ms median of {n} (p90 {:.1})",
            s.median(),
            s.pct(90.0)
        ),
        "<= 20 ms",
        Some(s.median() <= 20.0),
    );
    Ok(())
}

// ---------------------------------------------------------------- 3. memory

async fn bench_memory(opts: &Opts, report: &mut Report) -> Result<()> {
    println!("\n## 3. Resident memory of the release retake-server with 100 runs in flight");
    let nodes = 3;
    let sleep_ms = if opts.quick { 2000 } else { 4000 };
    let mut y = String::from("name: sleepers\nnodes:\n");
    for k in 0..nodes {
        y.push_str(&format!("  s{k}:\n    agent: local://sleep\n    config: {{ms: {sleep_ms}}}\n    outputs: [result]\n"));
        if k > 0 {
            y.push_str(&format!("    depends_on: [s{}]\n", k - 1));
        }
    }
    for (label, extra) in [
        ("default settings", &[][..]),
        (
            "--max-parallel-nodes 100",
            &["--max-parallel-nodes", "100"][..],
        ),
    ] {
        println!("   load before: {}", loadavg());
        let (server, _dir) = spawn_release(extra)?;
        let pid = server.pid();
        let mut client = server.client().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (idle_rss, _) = proc_mem(pid)?;

        let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sampler = {
            let sampling = sampling.clone();
            tokio::spawn(async move {
                let mut peak = 0u64;
                while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok((rss, _)) = proc_mem(pid) {
                        peak = peak.max(rss);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                peak
            })
        };
        let mut ids = Vec::new();
        for _ in 0..100 {
            ids.push(client.start_run(&y).await.id);
        }
        // Every run has a watcher, as 100 `retake run` clients would.
        let mut watchers = Vec::new();
        for id in &ids {
            let mut c = client.clone();
            let id = id.clone();
            watchers.push(tokio::spawn(async move { c.watch_to_end(&id).await }));
        }
        tokio::time::sleep(Duration::from_millis(sleep_ms as u64 / 2)).await;
        let listed = client
            .runs
            .list_runs(pb::ListRunsRequest {
                page_size: 1000,
                status: pb::RunStatus::Running as i32,
                ..Default::default()
            })
            .await?
            .into_inner()
            .runs
            .len();
        let (mid_rss, _) = proc_mem(pid)?;
        for w in watchers {
            let status = w.await?;
            ensure!(
                status == pb::RunStatus::Completed,
                "a sleeper run ended {status:?}"
            );
        }
        sampling.store(false, std::sync::atomic::Ordering::Relaxed);
        let peak = sampler.await?;
        let (end_rss, hwm) = proc_mem(pid)?;
        println!(
            "   {label}: {listed} runs RUNNING mid-way; VmRSS idle {:.1} MiB, mid-way {:.1} MiB, sampled peak {:.1} MiB, \
             after {:.1} MiB; VmHWM {:.1} MiB",
            idle_rss as f64 / 1024.0,
            mid_rss as f64 / 1024.0,
            peak as f64 / 1024.0,
            end_rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
        report.add(
            &format!("server RSS, 100 runs in flight ({label})"),
            format!(
                "VmHWM {:.1} MiB ({listed} RUNNING when sampled)",
                hwm as f64 / 1024.0
            ),
            "<= 100 MB",
            Some(hwm as f64 * 1024.0 <= 100e6 && listed == 100),
        );
        drop(server);
    }
    println!("   load after: {}", loadavg());
    Ok(())
}

// ---------------------------------------------------------------- 4. replay

/// Checkpoints the WAL into the main file and truncates it; returns the
/// bytes of the database file plus its WAL, and the bytes each table and
/// index occupies.
async fn db_size(db: &Path) -> Result<(i64, BTreeMap<String, i64>)> {
    use sqlx::Connection;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    let options = SqliteConnectOptions::new()
        .filename(db)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10));
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    for attempt in 0.. {
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut conn)
            .await?;
        if busy == 0 {
            break;
        }
        ensure!(attempt < 100, "the WAL stays busy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tables: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
            .fetch_all(&mut conn)
            .await?;
    conn.close().await?;
    let file = |p: PathBuf| std::fs::metadata(p).map(|m| m.len() as i64).unwrap_or(0);
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    Ok((
        file(db.to_path_buf()) + file(PathBuf::from(wal)),
        tables.into_iter().collect(),
    ))
}

struct ReplayFigures {
    /// Growth of the database file (plus WAL, after a checkpoint), bytes.
    growth_file: Stats,
    /// Growth of the pages in use (dbstat), bytes: not hidden by reused free pages.
    growth_used: Stats,
    /// ReplayRun call to RUN_FINISHED, ms.
    time_ms: Stats,
    /// ReplayRun call alone, ms.
    rpc_ms: Stats,
    /// Growth per table of the median replay.
    by_table: BTreeMap<String, i64>,
    source_ms: f64,
    db_bytes: i64,
}

async fn replay_case(shape: Shape, n: usize, reps: usize) -> Result<ReplayFigures> {
    let server = in_process::start_with(|s| {
        s.max_request_bytes = 256 << 20;
    })
    .await;
    let mut client = (*server).clone();
    let (yaml, vars) = replay_workflow(shape, n);
    let t = run_timed(&mut client, &yaml, &pairs(&vars)).await?;
    let (source_d, source) = (t.total, t.id);
    let last = format!("n{}", n - 1);

    let (mut growth_file, mut growth_used, mut times, mut rpcs, mut tables) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut before, mut before_t) = db_size(&server.db).await?;
    let db_bytes = before;
    for _ in 0..reps {
        let t0 = Instant::now();
        let run = client
            .runs
            .replay_run(pb::ReplayRunRequest {
                run_id: source.clone(),
                from_node: last.clone(),
                ..Default::default()
            })
            .await
            .context("ReplayRun")?
            .into_inner()
            .run
            .context("ReplayRun: no run")?;
        let rpc = t0.elapsed();
        let status = client.watch_to_end(&run.id).await;
        let d = t0.elapsed();
        ensure!(
            status == pb::RunStatus::Completed,
            "replay {} ended {status:?}",
            run.id
        );
        let counts = client.get(&run.id).await.0.counts.unwrap_or_default();
        ensure!(
            counts.reused == n as i32 - 1 && counts.completed == n as i32,
            "replay of {last} reused {} and completed {} of {n} nodes",
            counts.reused,
            counts.completed
        );
        let (after, after_t) = db_size(&server.db).await?;
        let mut delta = BTreeMap::new();
        for (name, bytes) in &after_t {
            let d = bytes - before_t.get(name).copied().unwrap_or(0);
            if d != 0 {
                delta.insert(name.clone(), d);
            }
        }
        let used: i64 = delta.values().sum();
        growth_file.push((after - before) as f64);
        growth_used.push(used as f64);
        times.push(ms(d));
        rpcs.push(ms(rpc));
        tables.push((used, delta));
        (before, before_t) = (after, after_t);
    }
    server.stop().await;
    tables.sort_by_key(|(g, _)| *g);
    let by_table = tables[tables.len() / 2].1.clone();
    Ok(ReplayFigures {
        growth_file: Stats::new(growth_file),
        growth_used: Stats::new(growth_used),
        time_ms: Stats::new(times),
        rpc_ms: Stats::new(rpcs),
        by_table,
        source_ms: ms(source_d),
        db_bytes,
    })
}

async fn bench_replay(opts: &Opts, report: &mut Report) -> Result<()> {
    println!(
        "\n## 4. Replaying the last node: 1,000 nodes of 100 KB outputs vs 10 nodes (in-process server)"
    );
    let reps = opts.reps;
    for (shape, what) in [
        (
            Shape::Mock,
            "local://mock, 100 KB config.response, every node",
        ),
        (
            Shape::Echo,
            "local://echo of {step: N, data: ${user.big}} (100 KB variable), distinct outputs",
        ),
        (
            Shape::MockSmallLast,
            "local://mock 100 KB, last node a small echo",
        ),
        (
            Shape::Tiny,
            "control: local://echo {step: N}, outputs of a few bytes",
        ),
    ] {
        let name = format!("{shape:?}").to_lowercase();
        if !opts.shapes.is_empty() && !opts.shapes.contains(&name) {
            continue;
        }
        println!("   shape {shape:?}: {what}");
        println!("   load before: {}", loadavg());
        let mut figures = Vec::new();
        for n in [10usize, 1000] {
            let f = match replay_case(shape, n, reps).await {
                Ok(f) => f,
                // A workflow the server refuses is a figure it cannot
                // have, reported as such; the other shapes still run.
                Err(e) => match e.downcast_ref::<tonic::Status>() {
                    Some(refused) if refused.code() == tonic::Code::InvalidArgument => {
                        let why = refused.message().replace('\n', " ");
                        println!("   {n:>5} nodes: the server refuses the workflow: {why}");
                        report.add(
                            &format!("replay last of 1,000 ({shape:?})"),
                            format!("not measured: the {n}-node workflow is refused"),
                            "runs",
                            Some(false),
                        );
                        break;
                    }
                    _ => return Err(e),
                },
            };
            let parts: Vec<String> = f
                .by_table
                .iter()
                .map(|(t, b)| format!("{t} {}", kib(*b)))
                .collect();
            println!(
                "   {n:>5} nodes: source run {:.0} ms, db {:.1} MiB; {reps} replays of n{}:\n\
                 \x20         db file growth median {} (min {}, max {}); pages in use growth median {} (max {})\n\
                 \x20         time to RUN_FINISHED median {:.1} ms (min {:.1}, max {:.1}); ReplayRun call alone median {:.1} ms",
                f.source_ms,
                f.db_bytes as f64 / (1 << 20) as f64,
                n - 1,
                kib(f.growth_file.median() as i64),
                kib(f.growth_file.min() as i64),
                kib(f.growth_file.max() as i64),
                kib(f.growth_used.median() as i64),
                kib(f.growth_used.max() as i64),
                f.time_ms.median(),
                f.time_ms.min(),
                f.time_ms.max(),
                f.rpc_ms.median(),
            );
            println!(
                "          growth by table/index (median replay): {}",
                if parts.is_empty() {
                    "none".into()
                } else {
                    parts.join(", ")
                }
            );
            figures.push((n, f));
        }
        let [(_, small), (_, large)] = &figures[..] else {
            continue;
        };
        let growth = large.growth_file.median().max(large.growth_used.median());
        report.add(
            &format!("replay last of 1,000 ({shape:?}): db growth"),
            format!(
                "{} file, {} pages in use (medians)",
                kib(large.growth_file.median() as i64),
                kib(large.growth_used.median() as i64)
            ),
            "<= 16 KiB",
            Some(growth <= 16.0 * 1024.0),
        );
        let ratio = large.time_ms.median() / small.time_ms.median();
        report.add(
            &format!("replay last of 1,000 vs 10 ({shape:?}): time"),
            format!(
                "{:.1} ms vs {:.1} ms (x{ratio:.2})",
                large.time_ms.median(),
                small.time_ms.median()
            ),
            "<= 20 ms whatever lies upstream",
            Some(large.time_ms.median() <= 20.0),
        );
        println!("   load after: {}", loadavg());
    }
    Ok(())
}

// ---------------------------------------------------------------- 5. throughput

/// Runs per repetition, the concurrent clients that start them, and how many
/// unfinished runs each client keeps: 16 × 50 = 800 at most, under the
/// server's default cap of 1,000 executing runs, so no StartRun is refused.
const THROUGHPUT_RUNS: usize = 2000;
const THROUGHPUT_CLIENTS: usize = 16;
const THROUGHPUT_WINDOW: usize = 50;

/// User plus system CPU time another process has used so far
/// (/proc/PID/stat), for a server that is a child still running, which
/// getrusage cannot see until it is reaped.
fn process_cpu(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14 and stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("bad /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks =
        |i: usize| -> Result<u64> { Ok(fields.get(i).context("short /proc stat")?.parse()?) };
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Ok(Duration::from_secs_f64(
        (ticks(11)? + ticks(12)?) as f64 / per_second as f64,
    ))
}

/// What one client saw.
#[derive(Default)]
struct ClientRuns {
    /// Each StartRun call, ms.
    starts: Vec<f64>,
    /// Runs not finished when checked, followed with WatchRun instead.
    watched: usize,
}

/// Makes sure run `id` completed. A GetRun (without nodes) of a finished run
/// is one read of its row, the least the server can do to say so; only a
/// run still going is followed with WatchRun, which pushes its end instead
/// of being asked again and again. Following every run with WatchRun would
/// cost the server a stream, a read of the run's events and every event
/// sent, for each of the 2,000 runs.
async fn settle(client: &mut Client, id: &str) -> Result<bool> {
    let run = client
        .runs
        .get_run(pb::GetRunRequest {
            run_id: id.to_string(),
            include_nodes: false,
            include_workflow: false,
        })
        .await
        .context("GetRun")?
        .into_inner()
        .run
        .context("GetRun: no run")?;
    let finished = [
        pb::RunStatus::Completed,
        pb::RunStatus::Failed,
        pb::RunStatus::Cancelled,
    ]
    .map(|s| s as i32)
    .contains(&run.status);
    let status = if finished {
        pb::RunStatus::try_from(run.status).unwrap_or(pb::RunStatus::Unspecified)
    } else {
        client.watch_to_end(id).await
    };
    ensure!(
        status == pb::RunStatus::Completed,
        "run {id} ended {status:?}"
    );
    Ok(!finished)
}

/// One client's share: starts `runs` runs one after the other, keeping at
/// most THROUGHPUT_WINDOW unfinished (settling the oldest when the window
/// is full), then settles the rest.
async fn throughput_client(
    mut client: Client,
    yaml: std::sync::Arc<String>,
    runs: usize,
) -> Result<ClientRuns> {
    let mut seen = ClientRuns::default();
    let mut open = std::collections::VecDeque::new();
    for _ in 0..runs {
        if open.len() == THROUGHPUT_WINDOW {
            let oldest: String = open.pop_front().expect("a full window");
            seen.watched += usize::from(settle(&mut client, &oldest).await?);
        }
        let t0 = Instant::now();
        open.push_back(client.start_run(&yaml).await.id);
        seen.starts.push(ms(t0.elapsed()));
    }
    for id in open {
        seen.watched += usize::from(settle(&mut client, &id).await?);
    }
    Ok(seen)
}

/// THROUGHPUT_CLIENTS clients, each on its own connection, start `runs` runs
/// between them and see each completed; returns the wall time and what the
/// clients saw.
async fn throughput_round(
    clients: &[Client],
    yaml: &std::sync::Arc<String>,
    runs: usize,
) -> Result<(Duration, ClientRuns)> {
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let share = runs / clients.len() + usize::from(i < runs % clients.len());
        tasks.push(tokio::spawn(throughput_client(
            client.clone(),
            yaml.clone(),
            share,
        )));
    }
    let mut all = ClientRuns::default();
    for task in tasks {
        let seen = task.await??;
        all.starts.extend(seen.starts);
        all.watched += seen.watched;
    }
    Ok((t0.elapsed(), all))
}

/// The throughput run with and without traces exported to an OTLP
/// receiver in this process (and /metrics scraped every second either way):
/// what telemetry costs.
async fn bench_telemetry(opts: &Opts, report: &mut Report) -> Result<()> {
    let runs = THROUGHPUT_RUNS / 2;
    println!(
        "\n## 9. Telemetry: {} three-node runs from {THROUGHPUT_CLIENTS} clients, traces off and exported to an \
         OTLP receiver (tonic, in this process), /metrics scraped every second",
        grouped(runs)
    );
    let receiver = retake_test_support::otlp::Receiver::start().await;
    let yaml = std::sync::Arc::new(echo_chain(3, true));
    let mut medians = Vec::new();
    for (label, args) in [
        ("traces off", vec![]),
        ("traces on", vec!["--otlp-endpoint", receiver.url.as_str()]),
    ] {
        let (mut rates, mut cpu) = (Vec::new(), Vec::new());
        for _ in 0..opts.reps {
            let (server, _dir) = spawn_release(&args)?;
            let url = server.url();
            let scraper = tokio::spawn({
                let url = url.clone();
                async move {
                    loop {
                        let _ = reqwest::get(format!("{url}/metrics")).await;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            });
            let mut clients = Vec::new();
            for _ in 0..THROUGHPUT_CLIENTS {
                clients.push(Client::connect(&url).await);
            }
            throughput_round(&clients, &yaml, 160).await?;
            let server0 = process_cpu(server.pid())?;
            let (wall, _) = throughput_round(&clients, &yaml, runs).await?;
            cpu.push(ms(process_cpu(server.pid())? - server0) / runs as f64);
            rates.push(runs as f64 / wall.as_secs_f64());
            scraper.abort();
        }
        let (rate, cpu) = (Stats::new(rates), Stats::new(cpu));
        println!(
            "   {label}: median {:.0} runs/s (min {:.0}); server CPU {:.3} ms/run",
            rate.median(),
            rate.min(),
            cpu.median()
        );
        medians.push((rate.median(), cpu.median()));
    }
    // Spans of the runs above: a run, three nodes, a StartRun call each.
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("   spans received: {}", grouped(receiver.spans().len()));
    let ((off, off_cpu), (on, on_cpu)) = (medians[0], medians[1]);
    report.add(
        "throughput with traces exported",
        format!(
            "{on:.0} runs/s vs {off:.0} off ({:+.0}%); server CPU {on_cpu:.3} vs {off_cpu:.3} ms/run",
            (on / off - 1.0) * 100.0
        ),
        "-",
        None,
    );
    Ok(())
}

async fn bench_throughput(opts: &Opts, report: &mut Report) -> Result<()> {
    println!(
        "\n## 5. Throughput: {} three-node local://echo runs from {THROUGHPUT_CLIENTS} concurrent gRPC clients, \
         release retake-server, SQLite file",
        grouped(THROUGHPUT_RUNS)
    );
    let yaml = std::sync::Arc::new(echo_chain(3, true));
    let (mut rates, mut server_cpu, mut client_cpu, mut starts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut watched = Vec::new();
    println!("   load before: {}", loadavg());
    for _ in 0..opts.reps {
        // A fresh server and database each time: the same file size for
        // every repetition.
        let (server, _dir) = spawn_release(&[])?;
        let url = server.url();
        let mut clients = Vec::new();
        for _ in 0..THROUGHPUT_CLIENTS {
            clients.push(Client::connect(&url).await);
        }
        // Warm-up: connections, statement caches, the first pages of the file.
        throughput_round(&clients, &yaml, 160).await?;
        let server0 = process_cpu(server.pid())?;
        let client0 = cpu_time(false);
        let (wall, seen) = throughput_round(&clients, &yaml, THROUGHPUT_RUNS).await?;
        let server_ms = ms(process_cpu(server.pid())? - server0);
        let client_ms = ms(cpu_time(false) - client0);
        rates.push(THROUGHPUT_RUNS as f64 / wall.as_secs_f64());
        server_cpu.push(server_ms / THROUGHPUT_RUNS as f64);
        client_cpu.push(client_ms / THROUGHPUT_RUNS as f64);
        starts.extend(seen.starts);
        watched.push(seen.watched as f64);
    }
    let rate = Stats::new(rates);
    let server_cpu = Stats::new(server_cpu);
    let client_cpu = Stats::new(client_cpu);
    let starts = Stats::new(starts);
    println!(
        "   {} reps: median {:.0} runs/s (min {:.0}, max {:.0}); CPU per run: server median {:.3} ms, \
         clients (this process) median {:.3} ms; StartRun median {:.2} ms, p99 {:.2} ms; \
         runs still going when checked (then watched) median {:.0}",
        opts.reps,
        rate.median(),
        rate.min(),
        rate.max(),
        server_cpu.median(),
        client_cpu.median(),
        starts.median(),
        starts.pct(99.0),
        Stats::new(watched).median(),
    );
    println!("   load after: {}", loadavg());
    report.add(
        &format!(
            "{} three-node echo runs, {THROUGHPUT_CLIENTS} clients",
            grouped(THROUGHPUT_RUNS)
        ),
        format!(
            "{:.0} runs/s median (min {:.0}; server CPU {:.3} ms/run)",
            rate.median(),
            rate.min(),
            server_cpu.median()
        ),
        ">= 2,000 runs/s",
        Some(rate.median() >= 2000.0),
    );
    Ok(())
}

// ---------------------------------------------------------------- 6. workers

const WORKER_SCRIPT: &str = r#"
import sys
sys.path.insert(0, sys.argv[2])
from retake_client import Worker

worker = Worker(sys.argv[1], name="bench", concurrency=int(sys.argv[3]))

@worker.agent("trivial")
def trivial(task):
    return "ok"

print("ready", flush=True)
worker.run()
"#;

/// A Python worker process serving `worker://trivial`, killed when dropped.
struct PythonWorker(std::process::Child);

impl Drop for PythonWorker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python_worker(url: &str, concurrency: usize, dir: &Path) -> Result<Option<PythonWorker>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("clients/python/.venv/bin/python");
    if !python.is_file() {
        return Ok(None);
    }
    let script = dir.join("bench_worker.py");
    std::fs::write(&script, WORKER_SCRIPT)?;
    let address = url.trim_start_matches("http://");
    let child = Command::new(python)
        .arg(&script)
        .arg(address)
        .arg(root.join("clients/python"))
        .arg(concurrency.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the Python worker")?;
    Ok(Some(PythonWorker(child)))
}

/// Waits until the server lists a worker.
async fn worker_connected(url: &str) -> Result<()> {
    let mut workers =
        retake::v1::worker_service_client::WorkerServiceClient::connect(url.to_string()).await?;
    for _ in 0..300 {
        let listed = workers
            .list_workers(pb::ListWorkersRequest {})
            .await?
            .into_inner();
        if !listed.workers.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the Python worker did not connect within 6 s")
}

fn worker_chain(n: usize) -> String {
    let mut y = format!("name: worker-chain-{n}\nnodes:\n");
    for k in 0..n {
        y.push_str(&format!(
            "  n{k}:\n    agent: worker://trivial\n    outputs: [result]\n"
        ));
        if k > 0 {
            y.push_str(&format!("    depends_on: [n{}]\n", k - 1));
        }
    }
    y
}

async fn bench_workers(opts: &Opts, report: &mut Report) -> Result<()> {
    println!(
        "\n## 6. Workers: a Python worker (retake_client.Worker) serving a trivial step, release retake-server"
    );
    println!("   load before: {}", loadavg());
    let (server, dir) = spawn_release(&[])?;
    let url = server.url();
    let Some(_worker) = python_worker(&url, 1, dir.path())? else {
        println!(
            "   not measured: clients/python/.venv is missing (scripts/test-clients creates it)"
        );
        report.add(
            "Python worker round trip",
            "not measured: no clients/python/.venv".into(),
            "<= 2 ms",
            Some(false),
        );
        return Ok(());
    };
    worker_connected(&url).await?;
    let mut client = Client::connect(&url).await;
    let one = "name: one\nnodes:\n  t: {agent: worker://trivial, outputs: [result]}\n";
    // Round trip as the server sees it: the task handed out (NODE_STARTED)
    // to its result committed (NODE_COMPLETED).
    let mut trips = Vec::new();
    for _ in 0..(opts.reps * 30) {
        let id = run_timed(&mut client, one, &[]).await?.id;
        let events = client.events(&id, 0).await;
        let at = |kind: pb::EventKind| -> Result<i64> {
            let e = events
                .iter()
                .find(|e| e.kind == kind as i32)
                .context("an event missing")?;
            micros(&e.time)
        };
        trips.push(
            (at(pb::EventKind::NodeCompleted)? - at(pb::EventKind::NodeStarted)?) as f64 / 1000.0,
        );
    }
    let trips = Stats::new(trips);
    println!(
        "   round trip (task handed out → result committed), {} runs: median {:.2} ms, p90 {:.2} ms",
        opts.reps * 30,
        trips.median(),
        trips.pct(90.0)
    );
    report.add(
        "Python worker step round trip",
        format!(
            "{:.2} ms median (p90 {:.2})",
            trips.median(),
            trips.pct(90.0)
        ),
        "<= 2 ms",
        Some(trips.median() <= 2.0),
    );

    // A 1,000-node chain of worker steps, against the same of echo steps.
    let n = 1000;
    let mut per_node = Vec::new();
    for _ in 0..opts.reps.min(3) {
        let worker = run_timed(&mut client, &worker_chain(n), &[]).await?;
        let echo = run_timed(&mut client, &echo_chain(n, false), &[]).await?;
        per_node.push((ms(worker.total) - ms(echo.total)) / n as f64);
    }
    let per_node = Stats::new(per_node);
    println!(
        "   1,000-node chain of worker steps: {:.3} ms/node more than echo steps (median)",
        per_node.median()
    );
    report.add(
        "1,000-node chain of worker steps, overhead",
        format!("{:.3} ms/node over echo", per_node.median()),
        "<= 2 ms/node",
        Some(per_node.median() <= 2.0),
    );

    // One worker process, many tasks: 2,000 one-node runs at once.
    drop(_worker);
    let Some(_busy) = python_worker(&url, 16, dir.path())? else {
        return Ok(());
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker_connected(&url).await?;
    let tasks = 2000;
    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        ids.push(client.start_run(one).await.id);
    }
    for id in &ids {
        let status = client.watch_to_end(id).await;
        ensure!(
            status == pb::RunStatus::Completed,
            "run {id} ended {status:?}"
        );
    }
    let rate = tasks as f64 / t0.elapsed().as_secs_f64();
    println!(
        "   one Python worker (concurrency 16): {tasks} one-step runs in {:.2} s, {rate:.0} tasks/s",
        t0.elapsed().as_secs_f64()
    );
    report.add(
        "tasks one Python worker completes",
        format!("{rate:.0} tasks/s"),
        ">= 500 tasks/s",
        Some(rate >= 500.0),
    );
    println!("   load after: {}", loadavg());
    Ok(())
}

// ---------------------------------------------------------------- main

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into());
    format!(
        "{cpu}, {cores} cores; commit {commit}; load average {}",
        loadavg()
    )
}

/// Builds the release binaries the sections start, so the figures are
/// always of the code as it is (`cargo bench` builds only the bench).
fn build_binaries() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    // What cargo set for running this bench would reach the build
    // scripts' fingerprints (ring's reads CARGO_MANIFEST_DIR): with it,
    // every `cargo build` from a shell would rebuild the dependencies.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || ["CARGO_CRATE_NAME", "OUT_DIR", "LD_LIBRARY_PATH"].contains(&&*key)
        {
            build.env_remove(&*key);
        }
    }
    let status = build
        .args(["build", "--release", "--quiet", "--bins"])
        .args(["-p", "retake-server", "-p", "retake-cli"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .context("running cargo build")?;
    ensure!(
        status.success(),
        "cargo build of the release binaries failed"
    );
    Ok(())
}

// ---------------------------------------------------------------- 7. experiments

const EXPERIMENT_SOURCES: usize = 200;
const EXPERIMENT_NODES: usize = 50;

/// A chain of `local://mock` nodes, each answering with its step; the
/// last one's answer says `last`.
fn mock_chain(n: usize, last: &str) -> String {
    let mut y = format!("name: mock-chain-{n}\nnodes:\n");
    for k in 0..n {
        let response = if k + 1 == n {
            format!("{last} {k}")
        } else {
            format!("step {k}")
        };
        y.push_str(&format!(
            "  n{k}:\n    agent: local://mock\n    config: {{response: \"{response}\"}}\n    outputs: [result]\n"
        ));
        if k > 0 {
            y.push_str(&format!("    depends_on: [n{}]\n", k - 1));
        }
    }
    y
}

async fn bench_experiment(opts: &Opts, report: &mut Report) -> Result<()> {
    println!(
        "\n## 7. An experiment over {EXPERIMENT_SOURCES} recorded runs of a {EXPERIMENT_NODES}-node chain, changing the last node (in-process server)"
    );
    println!("   load before: {}", loadavg());
    let (mut times, mut growths, mut compares) = (Vec::new(), Vec::new(), Vec::new());
    let last_node = format!("n{}", EXPERIMENT_NODES - 1);
    for _ in 0..opts.reps.min(3) {
        let server = in_process::start_with(|_| {}).await;
        let mut client = (*server).clone();
        let yaml = mock_chain(EXPERIMENT_NODES, "step");
        for _ in 0..EXPERIMENT_SOURCES {
            let run = client.start_run(&yaml).await;
            ensure!(client.watch_to_end(&run.id).await == pb::RunStatus::Completed);
        }
        let (before, _) = db_size(&server.db).await?;
        let mut experiments = pb::experiment_service_client::ExperimentServiceClient::connect(
            format!("http://{}", server.addr),
        )
        .await?;
        let t0 = Instant::now();
        let started = experiments
            .start_experiment(pb::StartExperimentRequest {
                selection: Some(pb::RunSelection {
                    workflow_name: format!("mock-chain-{EXPERIMENT_NODES}"),
                    limit: EXPERIMENT_SOURCES as i32,
                    ..Default::default()
                }),
                // The last node's mock answers otherwise.
                change: Some(pb::ExperimentChange {
                    workflow: mock_chain(EXPERIMENT_NODES, "another answer at step"),
                    from_node: last_node.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await?
            .into_inner()
            .experiment
            .context("no experiment")?;
        let mut watch = experiments
            .watch_experiment(pb::WatchExperimentRequest {
                experiment_id: started.id.clone(),
            })
            .await?
            .into_inner();
        let mut last = None;
        while let Some(msg) = watch.message().await? {
            last = msg.experiment;
        }
        let d = t0.elapsed();
        let last = last.context("no state")?;
        ensure!(
            last.status() == pb::ExperimentStatus::Completed
                && last.progress.unwrap_or_default().completed == EXPERIMENT_SOURCES as i32,
            "experiment ended {:?}",
            last.progress
        );
        let (after, _) = db_size(&server.db).await?;
        // The comparison is computed when asked for: one diff per pair.
        let t1 = Instant::now();
        let comparison = experiments
            .get_experiment(pb::GetExperimentRequest {
                experiment_id: started.id.clone(),
                include_comparison: true,
            })
            .await?
            .into_inner()
            .comparison
            .context("no comparison")?;
        let compared = t1.elapsed();
        let changed = comparison
            .nodes
            .iter()
            .find(|n| n.node_id == last_node)
            .map(|n| n.changed);
        ensure!(
            comparison.pairs.len() == EXPERIMENT_SOURCES
                && changed == Some(EXPERIMENT_SOURCES as i32),
            "comparison: {} pairs, {last_node} changed in {changed:?}",
            comparison.pairs.len()
        );
        println!(
            "      {EXPERIMENT_SOURCES} replays in {:.2} s ({:.1} ms each, {} at a time); database +{}; comparison in {:.0} ms",
            d.as_secs_f64(),
            ms(d) / EXPERIMENT_SOURCES as f64,
            started.concurrency,
            kib(after - before),
            ms(compared)
        );
        times.push(d.as_secs_f64());
        growths.push((after - before) as f64);
        compares.push(ms(compared));
        server.stop().await;
    }
    let (t, g, c) = (Stats::new(times), Stats::new(growths), Stats::new(compares));
    report.add(
        "experiment: 200 replays of the last of 50 nodes, time",
        format!("{:.2} s median", t.median()),
        "<= 5 s",
        Some(t.median() <= 5.0),
    );
    report.add(
        "experiment: 200 replays, database growth",
        format!("{} median", kib(g.median() as i64)),
        "<= 5 MB",
        Some(g.median() <= 5e6),
    );
    report.add(
        "experiment: the comparison of its 200 pairs (GetExperiment)",
        format!("{:.0} ms median", c.median()),
        "-",
        None,
    );
    Ok(())
}

fn main() -> Result<()> {
    let opts = Opts::parse()?;
    build_binaries()?;
    println!("retake benchmarks: {}", machine());
    println!("repetitions: {} (medians reported)", opts.reps);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut report = Report::default();
        if opts.wants("chain") {
            bench_chains(&opts, &mut report).await?;
        }
        if opts.wants("cli") {
            bench_cli(&opts, &mut report).await?;
        }
        if opts.wants("memory") {
            bench_memory(&opts, &mut report).await?;
        }
        if opts.wants("replay") {
            bench_replay(&opts, &mut report).await?;
        }
        if opts.wants("throughput") {
            bench_throughput(&opts, &mut report).await?;
        }
        if opts.wants("workers") {
            bench_workers(&opts, &mut report).await?;
        }
        if opts.wants("experiment") {
            bench_experiment(&opts, &mut report).await?;
        }
        if opts.wants("telemetry") {
            bench_telemetry(&opts, &mut report).await?;
        }
        if opts.wants("postgres") {
            postgres::bench_postgres(&opts, &mut report).await?;
        }
        report.print();
        println!("\nload average at the end: {}", loadavg());
        Ok(())
    })
}
