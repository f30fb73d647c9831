//! Paging of the List calls: how many items a page holds, the opaque token
//! that resumes after its last item, and the byte bound that keeps a page
//! within what a client accepts by default.

use crate::error::{EngineError, Reason};
use base64::Engine as _;
use std::fmt::Display;
use std::str::FromStr;

/// Most items a page holds, whatever the request asks for.
pub const MAX_PAGE: i32 = 1000;

/// A page ends before its items would pass this many encoded bytes: half
/// of the 4 MiB a gRPC client accepts by default, whatever the items hold.
pub const MAX_PAGE_BYTES: usize = 2 << 20;

/// Bytes counted for each item on top of its encoding: its field tag and
/// length prefix in the response, with room to spare.
const ITEM_OVERHEAD: usize = 8;

/// The number of items a request asks for: `default` when it leaves
/// `page_size` at 0, never more than [`MAX_PAGE`].
pub fn page_size(requested: i32, default: i32) -> Result<i64, EngineError> {
    match requested {
        0 => Ok(i64::from(default)),
        n if n < 0 => Err(EngineError::invalid_argument(format!(
            "page_size must not be negative, got {n}"
        ))
        .violation("page_size", "must not be negative")),
        n => Ok(i64::from(n.min(MAX_PAGE))),
    }
}

/// The page tokens of one List call: a cursor (the last item of the page
/// before), prefixed with `prefix` and encoded as URL-safe base64.
pub struct PageTokens {
    /// The call whose responses carry these tokens, named in errors.
    pub method: &'static str,
    /// Written before the cursor, so a token of another listing is refused.
    pub prefix: &'static str,
}

impl PageTokens {
    /// The token that resumes after `cursor`.
    pub fn encode(&self, cursor: impl Display) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}{cursor}", self.prefix))
    }

    /// The cursor of `token`; None for the empty token of a first page.
    pub fn decode<C: FromStr>(&self, token: &str) -> Result<Option<C>, EngineError> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || {
            EngineError::invalid_argument(format!(
                "page_token is not a token from a previous {} response",
                self.method
            ))
            .reason(Reason::PageTokenInvalid)
        };
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        text.strip_prefix(self.prefix)
            .and_then(|cursor| cursor.parse().ok())
            .map(Some)
            .ok_or_else(bad)
    }
}

impl PageTokens {
    /// The token that resumes after `cursor`, for a listing narrowed by
    /// `filters` (the request's filter fields, in a fixed order): it is
    /// refused with any other filters, where it would skip or repeat items.
    pub fn encode_for(&self, cursor: impl Display, filters: &impl serde::Serialize) -> String {
        self.encode(format!("{}~{cursor}", digest(filters)))
    }

    /// The cursor of a token `encode_for` made with the same `filters`.
    pub fn decode_for<C: FromStr>(
        &self,
        token: &str,
        filters: &impl serde::Serialize,
    ) -> Result<Option<C>, EngineError> {
        let Some(text) = self.decode::<String>(token)? else {
            return Ok(None);
        };
        let bad = || {
            EngineError::invalid_argument(format!(
                "page_token is not a token from a previous {} response",
                self.method
            ))
            .reason(Reason::PageTokenInvalid)
        };
        let (issued_for, cursor) = text.split_once('~').ok_or_else(bad)?;
        if issued_for != digest(filters) {
            return Err(EngineError::invalid_argument(format!(
                "page_token was issued for a {} call with other filters: repeat that call's filters \
                 with it, or list again without a token",
                self.method
            ))
            .reason(Reason::PageTokenInvalid));
        }
        cursor.parse().map(Some).map_err(|_| bad())
    }
}

/// A short digest of a listing's filters, as a token carries it.
fn digest(filters: &impl serde::Serialize) -> String {
    let text = serde_json::to_vec(filters).unwrap_or_default();
    crate::store::sha256_hex(&text)[..16].to_string()
}

/// A page of a listing read whole (waits, lineage), for calls that came
/// before paging and so keep `page_size` 0 meaning everything (a client
/// that never pages still gets it all). `items` are sorted by `key`; a
/// token holds the key of the last item sent.
pub fn page_of_all<T, M: prost::Message>(
    items: &[T],
    page_size: i32,
    token: &str,
    tokens: &PageTokens,
    filters: &impl serde::Serialize,
    key: impl Fn(&T) -> String,
    item: impl Fn(&T) -> M,
) -> Result<(Vec<M>, String), EngineError> {
    let past: Option<String> = tokens.decode_for(token, filters)?;
    let start = match &past {
        Some(past) => items.partition_point(|t| key(t) <= *past),
        None => 0,
    };
    let rest = &items[start..];
    if page_size == 0 {
        return Ok((rest.iter().map(item).collect(), String::new()));
    }
    let limit = self::page_size(page_size, 0)?;
    let page = fill(rest, limit, item);
    let next = page
        .last
        .map(|last| tokens.encode_for(key(last), filters))
        .unwrap_or_default();
    Ok((page.items, next))
}

/// A page of items and the row its token resumes after, if more follow.
pub struct Page<'r, R, M> {
    pub items: Vec<M>,
    /// The last row on the page, when rows are left for another page.
    pub last: Option<&'r R>,
}

/// The page of `rows`, each made an item by `item`. `rows` holds one row
/// more than `limit` when another page exists: that row is never shown,
/// only told of. The page ends after `limit` items, or before its items
/// pass [`MAX_PAGE_BYTES`]; it holds at least one item, however large, so
/// that listing always moves on.
pub fn fill<'r, R, M: prost::Message>(
    rows: &'r [R],
    limit: i64,
    item: impl Fn(&R) -> M,
) -> Page<'r, R, M> {
    let mut items = Vec::new();
    let mut bytes = 0;
    for row in rows {
        let made = item(row);
        let size = made.encoded_len() + ITEM_OVERHEAD;
        if items.len() as i64 == limit || (!items.is_empty() && bytes + size > MAX_PAGE_BYTES) {
            return Page {
                last: Some(&rows[items.len() - 1]),
                items,
            };
        }
        bytes += size;
        items.push(made);
    }
    Page { items, last: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNS: PageTokens = PageTokens {
        method: "ListRuns",
        prefix: "runs:",
    };
    const PLAIN: PageTokens = PageTokens {
        method: "ListThings",
        prefix: "",
    };

    fn invalid(err: EngineError) -> String {
        match err {
            EngineError::InvalidArgument(m) => m.message,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn page_size_defaults_caps_and_refuses_negatives() {
        assert_eq!(page_size(0, 50).unwrap(), 50);
        assert_eq!(page_size(7, 50).unwrap(), 7);
        assert_eq!(page_size(MAX_PAGE + 1, 50).unwrap(), i64::from(MAX_PAGE));
        assert_eq!(page_size(i32::MAX, 100).unwrap(), i64::from(MAX_PAGE));
        assert_eq!(
            invalid(page_size(-1, 50).unwrap_err()),
            "page_size must not be negative, got -1"
        );
    }

    #[test]
    fn tokens_round_trip_their_cursor() {
        assert_eq!(RUNS.decode::<i64>(&RUNS.encode(42)).unwrap(), Some(42));
        assert_eq!(RUNS.decode::<i64>(&RUNS.encode(-3)).unwrap(), Some(-3));
        let id = "art_0192/é?";
        assert_eq!(
            PLAIN
                .decode::<String>(&PLAIN.encode(id))
                .unwrap()
                .as_deref(),
            Some(id)
        );
        assert_eq!(RUNS.decode::<i64>("").unwrap(), None);
        assert_eq!(PLAIN.decode::<String>("").unwrap(), None);
    }

    #[test]
    fn tokens_keep_the_form_clients_hold() {
        // Tokens handed out before stay valid: the base64 of the cursor.
        assert_eq!(RUNS.encode(17), "cnVuczoxNw");
        assert_eq!(PLAIN.encode("a_1"), "YV8x");
    }

    #[test]
    fn foreign_or_garbled_tokens_are_refused_naming_the_call() {
        let refused = "page_token is not a token from a previous ListRuns response";
        for token in [
            "garbage!".to_string(),
            PLAIN.encode("17"),
            RUNS.encode("x"),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
        ] {
            assert_eq!(
                invalid(RUNS.decode::<i64>(&token).unwrap_err()),
                refused,
                "{token}"
            );
        }
        assert_eq!(
            invalid(PLAIN.decode::<String>("%%").unwrap_err()),
            "page_token is not a token from a previous ListThings response"
        );
    }

    #[test]
    fn a_page_ends_at_its_limit_and_names_its_last_row() {
        let rows: Vec<i64> = (1..=4).collect();
        let page = fill(&rows, 3, |r| r.to_string());
        assert_eq!(page.items, ["1", "2", "3"]);
        assert_eq!(page.last, Some(&3));
        let page = fill(&rows[..3], 3, |r| r.to_string());
        assert_eq!(page.items, ["1", "2", "3"]);
        assert_eq!(page.last, None, "no row left: the last page");
        let page = fill(&rows[..0], 3, |r| r.to_string());
        assert!(page.items.is_empty());
        assert_eq!(page.last, None);
    }

    #[test]
    fn a_page_ends_before_it_outgrows_the_byte_bound() {
        let big = |n: usize| "x".repeat(n);
        // Three items of 0.7 MiB: two fit in 2 MiB, the third would not.
        let rows = vec![big(700 << 10), big(700 << 10), big(700 << 10), big(1)];
        let page = fill(&rows, 100, Clone::clone);
        assert_eq!(page.items.len(), 2);
        assert!(std::ptr::eq(page.last.unwrap(), &rows[1]));
        // One item over the bound still makes a page of its own.
        let rows = vec![big(MAX_PAGE_BYTES + 1), big(1)];
        let page = fill(&rows, 100, Clone::clone);
        assert_eq!(page.items.len(), 1);
        assert!(std::ptr::eq(page.last.unwrap(), &rows[0]));
    }
}
