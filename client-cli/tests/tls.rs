//! TLS: the certificates README.md's "TLS" section makes with openssl work
//! with `retake --ca-cert`, and a CA certificate used as the server's own
//! is refused with what to do instead. Needs `openssl` on the PATH.

mod common;

use common::served_tls;
use retake_cli::cli::RunsArgs;
use retake_cli::commands;
use retake_cli::connect::Clients;
use std::path::Path;
use std::process::Command;

/// Runs `script` with sh in `dir`, failing the test with its output if it fails.
fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The commands of the README's TLS section that make certificates: the
/// `openssl` and `printf` lines of its first sh block, with `\` continuations joined.
fn readme_certificate_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## TLS\n")
        .nth(1)
        .expect("README.md has a '## TLS' section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block in the TLS section");
    let joined = block.replace("\\\n", " ");
    let commands: Vec<String> = joined
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("openssl ") || l.starts_with("printf "))
        .map(str::to_string)
        .collect();
    assert!(
        commands.len() >= 3,
        "certificate commands in the TLS section: {commands:?}"
    );
    commands
}

fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_certificates_work_with_ca_cert() {
    assert!(have_openssl(), "these tests need openssl on the PATH");
    let dir = tempfile::tempdir().unwrap();
    for command in readme_certificate_commands() {
        sh(dir.path(), &command);
    }
    let d = dir.path();
    let server = served_tls(&d.join("server.crt"), &d.join("server.key")).await;
    for host in ["127.0.0.1", "localhost"] {
        let url = server.url.replace("127.0.0.1", host);
        let clients = Clients::remote(&url, None, Some(&d.join("ca.crt")))
            .await
            .unwrap_or_else(|e| panic!("{url}: {}", e.message));
        let list = commands::runs::list(&clients, &RunsArgs::default())
            .await
            .unwrap();
        assert!(list.runs.is_empty());
    }
    // Without the CA the server is not trusted, and the error says what to give.
    let err = Clients::remote(&server.url, None, None)
        .await
        .err()
        .expect("an unknown CA is refused");
    assert!(err.message.contains("--ca-cert"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_certificate_as_the_servers_own_is_refused_with_what_to_do() {
    assert!(have_openssl(), "these tests need openssl on the PATH");
    let dir = tempfile::tempdir().unwrap();
    // What a plain `openssl req -x509` makes: basicConstraints CA:TRUE.
    sh(
        dir.path(),
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
         -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout self.key -out self.crt",
    );
    let d = dir.path();
    let server = served_tls(&d.join("self.crt"), &d.join("self.key")).await;
    let err = Clients::remote(&server.url, None, Some(&d.join("self.crt")))
        .await
        .err()
        .expect("a CA certificate as the server's is refused");
    assert_eq!(err.code, 1);
    for needed in [
        "CaUsedAsEndEntity",
        "make a CA and a server certificate signed by it",
        "basicConstraints=CA:FALSE",
        "subjectAltName",
        "--ca-cert",
        "TLS section",
    ] {
        assert!(err.message.contains(needed), "{needed}: {}", err.message);
    }
}
