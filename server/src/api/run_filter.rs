//! ListRuns' `filter` and `order_by` (AIP-160 and AIP-132, the subset runs
//! need): comparisons joined by AND over status, workflow, forked_from and
//! create_time, and create_time ascending or descending.

use crate::error::EngineError;
use crate::model::{Micros, RunStatus};
use crate::store::RunFilter;
use std::str::FromStr;

/// Narrows `filter` by the comparisons in `text`; an empty text leaves it.
pub fn apply(text: &str, filter: &mut RunFilter) -> Result<(), EngineError> {
    let tokens = tokens(text)?;
    let mut rest = tokens.as_slice();
    while !rest.is_empty() {
        let [field, op, value, tail @ ..] = rest else {
            return Err(bad(text, "each comparison is FIELD OP VALUE"));
        };
        comparison(text, field, op, value, filter)?;
        rest = match tail {
            [] => tail,
            [and, more @ ..] if and.eq_ignore_ascii_case("AND") && !more.is_empty() => more,
            _ => return Err(bad(text, "join comparisons with AND")),
        };
    }
    Ok(())
}

/// Whether `order_by` asks for the oldest first.
pub fn ascending(order_by: &str) -> Result<bool, EngineError> {
    let words: Vec<String> = order_by
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] | ["create_time", "desc"] => Ok(false),
        ["create_time"] | ["create_time", "asc"] => Ok(true),
        _ => Err(EngineError::invalid_argument(format!(
            "order_by '{}' is not supported: use \"create_time desc\" (the default) or \"create_time asc\"",
            crate::error::echo(order_by)
        ))
        .violation("order_by", "create_time desc or create_time asc")),
    }
}

fn comparison(
    text: &str,
    field: &str,
    op: &str,
    value: &str,
    filter: &mut RunFilter,
) -> Result<(), EngineError> {
    let equal = |slot: &mut Option<String>, name: &str| {
        if op != "=" {
            return Err(bad(text, &format!("{name} is compared with =")));
        }
        match slot {
            Some(given) if given != value => Err(bad(
                text,
                &format!("{name} is '{given}' in another filter field"),
            )),
            _ => {
                *slot = Some(value.to_string());
                Ok(())
            }
        }
    };
    match field {
        "status" => {
            if op != "=" {
                return Err(bad(text, "status is compared with ="));
            }
            let name = value.to_ascii_uppercase();
            let name = name.strip_prefix("RUN_STATUS_").unwrap_or(&name);
            let status = (1..)
                .map_while(RunStatus::from_i64)
                .find(|s| s.to_string().eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    bad(
                        text,
                        &format!(
                            "'{}' is not a run status (PENDING, RUNNING, WAITING, COMPLETED, FAILED, CANCELLED)",
                            crate::error::echo(value)
                        ),
                    )
                })?;
            match filter.status {
                Some(given) if given != status => {
                    Err(bad(text, &format!("status is {given} in the status field")))
                }
                _ => {
                    filter.status = Some(status);
                    Ok(())
                }
            }
        }
        "workflow" | "workflow_name" => equal(&mut filter.workflow_name, "workflow"),
        "forked_from" => equal(&mut filter.forked_from, "forked_from"),
        "create_time" => {
            let at = time(text, value)?;
            match op {
                ">=" => tighten_after(filter, at),
                ">" => tighten_after(filter, at + 1),
                "<" => tighten_before(filter, at),
                "<=" => tighten_before(filter, at + 1),
                _ => return Err(bad(text, "create_time is compared with >, >=, < or <=")),
            }
            Ok(())
        }
        other => Err(bad(
            text,
            &format!(
                "unknown field '{}': filter on status, workflow, forked_from or create_time",
                crate::error::echo(other)
            ),
        )),
    }
}

fn tighten_after(filter: &mut RunFilter, at: Micros) {
    filter.created_after = Some(filter.created_after.map_or(at, |t| t.max(at)));
}

fn tighten_before(filter: &mut RunFilter, at: Micros) {
    filter.created_before = Some(filter.created_before.map_or(at, |t| t.min(at)));
}

fn time(text: &str, value: &str) -> Result<Micros, EngineError> {
    let t = prost_types::Timestamp::from_str(value).map_err(|_| {
        bad(
            text,
            &format!(
                "'{}' is not an RFC 3339 time such as 2026-11-01T00:00:00Z",
                crate::error::echo(value)
            ),
        )
    })?;
    Ok(t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
}

/// Words, operators and quoted strings (quotes removed).
fn tokens(text: &str) -> Result<Vec<String>, EngineError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '\'' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some(q) if q == c => break,
                    Some('\\') => s.extend(chars.next()),
                    Some(ch) => s.push(ch),
                    None => return Err(bad(text, "a quoted string is not closed")),
                }
            }
            out.push(s);
        } else if "<>=!".contains(c) {
            let mut op = String::new();
            while let Some(&ch) = chars.peek().filter(|ch| "<>=!".contains(**ch)) {
                op.push(ch);
                chars.next();
            }
            out.push(op);
        } else {
            let mut word = String::new();
            while let Some(&ch) = chars
                .peek()
                .filter(|ch| !ch.is_whitespace() && !"<>=!\"'".contains(**ch))
            {
                word.push(ch);
                chars.next();
            }
            out.push(word);
        }
    }
    Ok(out)
}

fn bad(text: &str, why: &str) -> EngineError {
    EngineError::invalid_argument(format!(
        "filter '{}' is not valid: {why}",
        crate::error::echo(text)
    ))
    .violation("filter", why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<RunFilter, String> {
        let mut f = RunFilter::default();
        apply(text, &mut f).map(|_| f).map_err(|e| e.to_string())
    }

    #[test]
    fn comparisons_joined_by_and() {
        let f = parsed(
            r#"status = failed AND workflow = "report pipeline" and create_time >= "2026-11-01T00:00:00Z" AND create_time < '2026-11-02T00:00:00Z'"#,
        )
        .unwrap();
        assert_eq!(f.status, Some(RunStatus::Failed));
        assert_eq!(f.workflow_name.as_deref(), Some("report pipeline"));
        assert_eq!(f.created_after, Some(1_793_491_200_000_000));
        assert_eq!(f.created_before, Some(1_793_577_600_000_000));
        assert_eq!(
            parsed("status=RUN_STATUS_COMPLETED").unwrap().status,
            Some(RunStatus::Completed)
        );
        assert_eq!(parsed("").unwrap().status, None);
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        for (text, why) in [
            ("status", "FIELD OP VALUE"),
            ("status = done", "not a run status"),
            ("owner = me", "unknown field 'owner'"),
            (
                "status = FAILED OR status = COMPLETED",
                "join comparisons with AND",
            ),
            ("create_time >= yesterday", "RFC 3339"),
            ("create_time = \"2026-11-01T00:00:00Z\"", ">, >=, < or <="),
            ("workflow > x", "compared with ="),
            ("workflow = \"x", "not closed"),
            ("status = FAILED AND", "join comparisons with AND"),
        ] {
            let err = parsed(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn a_filter_contradicting_a_field_is_refused() {
        let mut f = RunFilter {
            status: Some(RunStatus::Completed),
            ..RunFilter::default()
        };
        assert!(apply("status = FAILED", &mut f).is_err());
        assert!(apply("status = COMPLETED", &mut f).is_ok());
    }

    #[test]
    fn order_by() {
        assert!(!ascending("").unwrap());
        assert!(!ascending("create_time DESC").unwrap());
        assert!(ascending("create_time").unwrap());
        assert!(ascending(" create_time  asc ").unwrap());
        assert!(ascending("name").is_err());
    }
}
