//! `retake validate FILE`: every problem of a workflow at once, each with
//! its node and line, the way a compiler reports errors.

use crate::cli::ValidateArgs;
use crate::connect::Clients;
use crate::error::{CliResult, EXIT_OK, EXIT_USAGE};
use crate::parse::{load_workflow, parse_vars};
use crate::render::{Output, Style};
use retake::v1::{ValidateWorkflowRequest, ValidationIssue};
use serde::Serialize;

/// One finding, located.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Issue {
    pub node_id: Option<String>,
    pub line: Option<i32>,
    pub message: String,
}

impl From<&ValidationIssue> for Issue {
    fn from(i: &ValidationIssue) -> Self {
        Self {
            node_id: (!i.node_id.is_empty()).then(|| i.node_id.clone()),
            line: (i.line > 0).then_some(i.line),
            message: i.message.clone(),
        }
    }
}

/// What the server found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ValidationReport {
    pub file: String,
    pub valid: bool,
    pub workflow_name: String,
    pub node_count: i32,
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

/// Builds the request. Without `--var`, missing variables are not errors:
/// they are supplied at run time.
pub fn prepare(args: &ValidateArgs) -> CliResult<ValidateWorkflowRequest> {
    let variables = parse_vars(&args.vars)?;
    let workflow = load_workflow(&args.file)?;
    Ok(ValidateWorkflowRequest {
        workflow: workflow.content,
        ignore_missing_variables: variables.is_empty(),
        variables,
        files: workflow.files,
    })
}

/// `retake validate`.
pub async fn validate(clients: &Clients, args: &ValidateArgs) -> CliResult<ValidationReport> {
    let request = prepare(args)?;
    validate_prepared(clients, &args.file.display().to_string(), request).await
}

/// `validate` with the request already built; `file` labels the findings.
pub async fn validate_prepared(
    clients: &Clients,
    file: &str,
    request: ValidateWorkflowRequest,
) -> CliResult<ValidationReport> {
    let mut workflows = clients.workflows.clone();
    let resp = workflows.validate_workflow(request).await?.into_inner();
    Ok(ValidationReport {
        file: file.to_string(),
        valid: resp.valid && resp.errors.is_empty(),
        workflow_name: resp.workflow_name,
        node_count: resp.node_count,
        errors: resp.errors.iter().map(Issue::from).collect(),
        warnings: resp.warnings.iter().map(Issue::from).collect(),
    })
}

impl ValidationReport {
    fn issue_line(&self, style: Style, severity: &str, issue: &Issue) -> String {
        let location = match issue.line {
            Some(line) => format!("{}:{line}", self.file),
            None => self.file.clone(),
        };
        let severity = if severity == "error" {
            style.red("error")
        } else {
            style.yellow("warning")
        };
        let node = issue
            .node_id
            .as_deref()
            .map(|n| format!("node '{n}': "))
            .unwrap_or_default();
        format!("{location}: {severity}: {node}{}\n", issue.message)
    }
}

impl Output for ValidationReport {
    fn text(&self, style: Style) -> String {
        let mut out = String::new();
        for e in &self.errors {
            out.push_str(&self.issue_line(style, "error", e));
        }
        for w in &self.warnings {
            out.push_str(&self.issue_line(style, "warning", w));
        }
        if self.valid {
            let name = if self.workflow_name.is_empty() {
                self.file.as_str()
            } else {
                self.workflow_name.as_str()
            };
            let nodes = if self.node_count == 1 {
                "node"
            } else {
                "nodes"
            };
            out.push_str(&format!(
                "Workflow '{name}' is valid ({} {nodes})\n",
                self.node_count
            ));
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn exit_code(&self) -> i32 {
        if self.valid { EXIT_OK } else { EXIT_USAGE }
    }

    fn hint(&self) -> Option<String> {
        if self.valid {
            return None;
        }
        let n = self.errors.len();
        let name = if self.workflow_name.is_empty() {
            self.file.clone()
        } else {
            format!("'{}'", self.workflow_name)
        };
        Some(format!(
            "Error: workflow {name} is invalid ({n} error{})",
            if n == 1 { "" } else { "s" }
        ))
    }
}
