//! `retake validate FILE`: every problem of a workflow at once, each with
//! its node and line, the way a compiler reports errors.

use crate::cli::ValidateArgs;
use crate::connect::Clients;
use crate::error::{CliResult, EXIT_OK, EXIT_USAGE};
use crate::parse::{load_workflow, parse_vars};
use crate::render::{self, Output, Style};
use retake::v1::{ValidateWorkflowRequest, ValidationIssue};
use retake_server::engine::workflow::{LoadOptions, load};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

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
            node_id: render::non_empty(&i.node_id),
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
    /// Every `${user.NAME}` variable the workflow uses, sorted.
    pub variables: Vec<String>,
    /// Those of `variables` not given with `--var`.
    pub missing_variables: Vec<String>,
    /// Whether any `--var` was given: then missing variables are errors.
    #[serde(skip)]
    pub vars_given: bool,
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
    let used = variables_used(&request);
    let vars_given = !request.variables.is_empty();
    let given: BTreeSet<&String> = request.variables.keys().collect();
    let (variables, missing_variables) = match &used {
        Some(used) => (
            used.iter().cloned().collect::<Vec<_>>(),
            used.iter()
                .filter(|v| !given.contains(v))
                .cloned()
                .collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let mut workflows = clients.workflows.clone();
    let resp = workflows
        .validate_workflow(request.clone())
        .await?
        .into_inner();
    let mut report = ValidationReport {
        file: file.to_string(),
        valid: resp.valid && resp.errors.is_empty(),
        workflow_name: resp.workflow_name,
        node_count: resp.node_count,
        errors: resp.errors.iter().map(Issue::from).collect(),
        warnings: resp.warnings.iter().map(Issue::from).collect(),
        variables,
        missing_variables,
        vars_given,
    };
    if vars_given && !report.missing_variables.is_empty() && report.valid {
        // The server checks this too; a server that did not is not trusted to.
        report.valid = false;
        report.errors.push(Issue {
            node_id: None,
            line: None,
            message: format!(
                "no value for {} (--var NAME=VALUE)",
                quoted_list(&report.missing_variables)
            ),
        });
    }
    if let Some(used) = &used {
        let mut unused: Vec<&String> = given.into_iter().filter(|v| !used.contains(*v)).collect();
        unused.sort();
        for name in unused {
            report.warnings.push(Issue {
                node_id: None,
                line: None,
                message: format!(
                    "variable '{name}' is given but the workflow does not use ${{user.{name}}}"
                ),
            });
        }
    }
    Ok(report)
}

/// The `${user.NAME}` variables the workflow of `request` uses, read with
/// the engine's own loader; None when it does not load (the server says why).
fn variables_used(request: &ValidateWorkflowRequest) -> Option<BTreeSet<String>> {
    let files: BTreeMap<String, String> = request
        .files
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let opts = LoadOptions {
        ignore_missing_variables: true,
        ..Default::default()
    };
    let loaded = load(&request.workflow, &files, &BTreeMap::new(), opts);
    let workflow = loaded.workflow?;
    Some(
        workflow
            .nodes
            .iter()
            .flat_map(|n| n.user_vars.iter().cloned())
            .collect(),
    )
}

/// `'a'`, `'a' and 'b'`, `'a', 'b' and 'c'`.
fn quoted_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => format!("variable {one}"),
        [rest @ .., last] => format!("variables {} and {last}", rest.join(", ")),
    }
}

impl ValidationReport {
    /// Which variables the workflow needs and, of those, which are still
    /// to be given; None when it uses none.
    fn variables_line(&self) -> Option<String> {
        if self.variables.is_empty() {
            return None;
        }
        let names = self.variables.join(", ");
        let status = if self.missing_variables.is_empty() {
            "all given".to_string()
        } else if self.vars_given {
            format!("missing: {}", self.missing_variables.join(", "))
        } else {
            let flags: Vec<String> = self
                .missing_variables
                .iter()
                .map(|v| format!("--var {v}=VALUE"))
                .collect();
            format!("give them when running: {}", flags.join(" "))
        };
        Some(format!("Variables it needs: {names} ({status})\n"))
    }

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
        if let Some(line) = self.variables_line() {
            out.push_str(&line);
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
        let missing = if self.vars_given && !self.missing_variables.is_empty() {
            format!("; no value for {}", quoted_list(&self.missing_variables))
        } else {
            String::new()
        };
        Some(format!(
            "Error: workflow {name} is invalid ({n} error{}){missing}",
            if n == 1 { "" } else { "s" }
        ))
    }
}
