//! How a failed command reaches the user: one `Error: <message>` line on
//! stderr and an exit code (1 refused or failed, 2 usage or validation).

use std::fmt;
use tonic_types::StatusExt;

/// Exit code for a successful command.
pub const EXIT_OK: i32 = 0;
/// Exit code when a run failed or the server refused the request.
pub const EXIT_FAILED: i32 = 1;
/// Exit code for usage and validation errors.
pub const EXIT_USAGE: i32 = 2;
/// Exit code after Ctrl-C (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// An error a command reports to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// What the user reads after `Error: `.
    pub message: String,
    /// The process exit code.
    pub code: i32,
    /// The gRPC code when the error came from the server.
    pub status: Option<tonic::Code>,
}

impl CliError {
    /// A usage or validation error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: EXIT_USAGE,
            status: None,
        }
    }

    /// A refusal or failure (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: EXIT_FAILED,
            status: None,
        }
    }

    /// The gRPC code, when the error came from the server.
    pub fn grpc_code(&self) -> Option<tonic::Code> {
        self.status
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        let code = match status.code() {
            tonic::Code::InvalidArgument => EXIT_USAGE,
            _ => EXIT_FAILED,
        };
        let message = if status.message().is_empty() {
            format!("server returned {:?}", status.code())
        } else if status.code() == tonic::Code::Unavailable
            && status.message().contains("transport error")
        {
            // tonic's own transport failures carry their reason in the source chain.
            error_chain(&status)
        } else {
            status.message().to_string()
        };
        let message = match hint(&status) {
            Some(hint) => format!("{message}\nhint: {hint}"),
            None => message,
        };
        Self {
            message,
            code,
            status: Some(status.code()),
        }
    }
}

/// What to type next, in this CLI's flags, from the error's details: the
/// server's messages name request fields, never flags.
fn hint(status: &tonic::Status) -> Option<String> {
    let details = status.get_error_details();
    let info = details.error_info()?;
    let meta = |key: &str| info.metadata.get(key).filter(|v| !v.is_empty());
    let fields: Vec<&str> = details
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| v.field.as_str())
                .collect()
        })
        .unwrap_or_default();
    match info.reason.as_str() {
        "WORKFLOW_INVALID" => meta("missingVariables").map(|names| {
            let flags: Vec<String> = names
                .split(',')
                .map(|n| format!("--var {n}=VALUE"))
                .collect();
            format!("give the missing variables: {}", flags.join(" "))
        }),
        "REPLAY_DRIFT" => Some(format!(
            "replay from the changed nodes (--from {}), or reuse their old records with --allow-drift",
            meta("nodeIds")?.split(',').next().unwrap_or_default()
        )),
        "REPLAY_INVALID" => meta("fromNode").map(|node| format!("replay from it: --from {node}")),
        "RUN_NOT_FINISHED" => Some("wait for it with `retake watch RUN`, then replay".into()),
        "UNAUTHENTICATED" => {
            Some("give the server's token with --token-file FILE or RETAKE_TOKEN".into())
        }
        "SERVER_BUSY" => Some("the server is at its limit of runs; try again shortly".into()),
        "RUN_IN_USE" => Some("delete them too with --cascade".into()),
        _ if fields.contains(&"node_id") => Some("name the node with --node NODE".into()),
        _ => None,
    }
}

/// An error and its sources as one line: `outer: inner: innermost`, without
/// repeating a cause whose text the previous one already contains.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

/// What every command returns.
pub type CliResult<T> = Result<T, CliError>;
