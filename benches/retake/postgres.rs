//! Section `postgres`: the release `retake-server` on PostgreSQL (a
//! throw-away cluster with PostgreSQL's durable defaults, on this machine)
//! beside the same on a SQLite file: a 1,000-node chain's overhead,
//! small-run throughput on one server and on two sharing the database,
//! and how long a run waits after `kill -9` of the server executing it.

use super::*;

/// Where a server keeps its runs, for one figure.
enum Db<'a> {
    Sqlite,
    Postgres(&'a str),
}

/// `count` release servers on one database, and the directory of their logs.
fn start_servers(db: &Db<'_>, count: usize, extra: &[&str]) -> Result<(Vec<ServerProcess>, DbDir)> {
    release_bin("retake-server")?;
    let dir = DbDir::new();
    let mut servers = Vec::new();
    for i in 0..count {
        let target = match db {
            Db::Sqlite => dir.db().display().to_string(),
            Db::Postgres(url) => url.to_string(),
        };
        let mut server = ServerCommand::new(target)
            .args(extra.iter().copied())
            .log(dir.path().join(format!("server-{i}.log")))
            .spawn();
        server.wait_listening();
        servers.push(server);
    }
    Ok((servers, dir))
}

/// A 1,000-node chain's overhead per node on the first of `servers`
/// servers (the others, sharing the database, hear its notifications).
async fn chain_overhead(db: &Db<'_>, servers: usize, reps: usize) -> Result<Stats> {
    let (servers, _dir) = start_servers(db, servers, &[])?;
    let mut client = Client::connect(&servers[0].url()).await;
    let yaml = echo_chain(1000, true);
    run_timed(&mut client, &yaml, &[]).await?;
    let mut per_node = Vec::new();
    for _ in 0..reps {
        let t = run_timed(&mut client, &yaml, &[]).await?;
        per_node.push(ms(t.total) / 1000.0);
    }
    Ok(Stats::new(per_node))
}

/// Runs per second over `servers` servers, the clients spread evenly.
async fn throughput(db: &Db<'_>, servers: usize, reps: usize) -> Result<Stats> {
    let yaml = std::sync::Arc::new(echo_chain(3, true));
    let mut rates = Vec::new();
    for _ in 0..reps {
        let (procs, _dir) = start_servers(db, servers, &[])?;
        let mut clients = Vec::new();
        for i in 0..THROUGHPUT_CLIENTS {
            clients.push(Client::connect(&procs[i % procs.len()].url()).await);
        }
        throughput_round(&clients, &yaml, 160).await?;
        let (wall, _) = throughput_round(&clients, &yaml, THROUGHPUT_RUNS).await?;
        rates.push(THROUGHPUT_RUNS as f64 / wall.as_secs_f64());
    }
    Ok(Stats::new(rates))
}

/// Seconds from `kill -9` of the server executing a run to the first
/// event the other server writes for it, with the default lease.
async fn takeover(url: &str, reps: usize) -> Result<Stats> {
    let mut waits = Vec::new();
    for rep in 0..reps {
        let (mut servers, _dir) = start_servers(&Db::Postgres(url), 2, &[])?;
        let mut a = Client::connect(&servers[0].url()).await;
        let mut b = Client::connect(&servers[1].url()).await;
        let mut yaml = String::from("name: takeover\nnodes:\n");
        for i in 1..=200 {
            yaml.push_str(&format!(
                "  s{i}:\n    agent: local://sleep\n    config: {{ms: 100}}\n    inputs: {{step: \"{i}\"}}\n    outputs: [result]\n"
            ));
            if i > 1 {
                yaml.push_str(&format!("    depends_on: [s{}]\n", i - 1));
            }
        }
        let id = a.start_run(&yaml).await.id;
        // Kill at a different point of the lease's renewal cycle each time.
        tokio::time::sleep(Duration::from_millis(1500 + 1100 * rep as u64)).await;
        let last = last_sequence(&mut b, &id).await?;
        let killed = servers[0].kill9();
        let mut stream = b
            .runs
            .watch_run(pb::WatchRunRequest {
                run_id: id.clone(),
                after_sequence: last,
            })
            .await?
            .into_inner();
        use tokio_stream::StreamExt;
        let first = stream
            .next()
            .await
            .context("the run's events end before it is taken over")??;
        ensure!(first.event.is_some(), "an event");
        waits.push(killed.elapsed().as_secs_f64());
        drop(servers);
    }
    Ok(Stats::new(waits))
}

/// The last durable event's sequence of a run still going.
async fn last_sequence(client: &mut Client, id: &str) -> Result<i64> {
    let (run, _) = client.get(id).await;
    ensure!(
        run.status == pb::RunStatus::Running as i32,
        "the run is still running"
    );
    let mut stream = client
        .runs
        .watch_run(pb::WatchRunRequest {
            run_id: id.to_string(),
            after_sequence: 0,
        })
        .await?
        .into_inner();
    use tokio_stream::StreamExt;
    let mut last = 0;
    // Everything durable arrives at once; then the stream waits for more.
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(50), stream.next()).await
    {
        last = item?.event.map_or(last, |e| e.sequence);
    }
    Ok(last)
}

pub(super) async fn bench_postgres(opts: &Opts, report: &mut Report) -> Result<()> {
    println!(
        "\n## 8. PostgreSQL: the release retake-server on a local PostgreSQL (durable defaults) beside SQLite"
    );
    let Some(db) = retake_test_support::postgres::durable_database().await else {
        bail!("PostgreSQL is not installed: install Debian's postgresql package");
    };
    let url = db.url();
    println!("   load before: {}", loadavg());
    let reps = opts.reps;
    for (name, backend, servers) in [
        ("SQLite, one server", Db::Sqlite, 1),
        ("PostgreSQL, one server", Db::Postgres(&url), 1),
        ("PostgreSQL, two servers", Db::Postgres(&url), 2),
    ] {
        let s = chain_overhead(&backend, servers, reps).await?;
        println!(
            "   1,000-node echo chain, {name}: median {:.4} ms/node (min {:.4}, max {:.4})",
            s.median(),
            s.min(),
            s.max()
        );
        report.add(
            &format!("1,000-node chain overhead, {name}"),
            format!("{:.3} ms/node median (min {:.3})", s.median(), s.min()),
            "-",
            None,
        );
    }
    let throughput_reps = reps.min(3);
    for (name, backend, servers) in [
        ("SQLite, one server", Db::Sqlite, 1),
        ("PostgreSQL, one server", Db::Postgres(&url), 1),
        ("PostgreSQL, two servers", Db::Postgres(&url), 2),
    ] {
        let s = throughput(&backend, servers, throughput_reps).await?;
        println!(
            "   {} three-node runs, {THROUGHPUT_CLIENTS} clients, {name}: median {:.0} runs/s (min {:.0}, max {:.0})",
            grouped(THROUGHPUT_RUNS),
            s.median(),
            s.min(),
            s.max()
        );
        report.add(
            &format!(
                "{} runs, {THROUGHPUT_CLIENTS} clients, {name}",
                grouped(THROUGHPUT_RUNS)
            ),
            format!("{:.0} runs/s median (min {:.0})", s.median(), s.min()),
            "-",
            None,
        );
    }
    let takeover_reps = if opts.quick { 1 } else { 3 };
    let s = takeover(&url, takeover_reps).await?;
    println!(
        "   takeover after kill -9, default lease (10 s), {takeover_reps} reps: median {:.1} s (min {:.1}, max {:.1})",
        s.median(),
        s.min(),
        s.max()
    );
    report.add(
        "takeover after kill -9 (default lease)",
        format!("{:.1} s median (max {:.1})", s.median(), s.max()),
        "<= 12 s",
        Some(s.max() <= 12.0),
    );
    println!("   load after: {}", loadavg());
    Ok(())
}
