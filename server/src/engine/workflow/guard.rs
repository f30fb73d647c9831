//! Limits checked on the text before the YAML parser reads it: nesting
//! depth and alias expansion, which would make it slow or huge.

use super::Issue;

/// Deepest nesting a workflow may use. Real workflows stay far below it;
/// the YAML parser slows down badly on pathological flow nesting.
const MAX_NESTING: usize = 64;

/// Rejects deeply nested documents before the parser sees them: flow
/// brackets, and block indentation. The parser's work grows with flow
/// depth times document length, so brackets are counted where its scanner
/// reads them as flow: not in quoted, plain or block scalars, tags or
/// comments. The scan follows libyaml's tokenizer (line breaks, comments,
/// multi-line plain scalars, block scalar indentation), since a stray quote
/// it misread could otherwise hide any nesting after it.
pub(super) fn check_nesting(text: &str) -> Result<(), Issue> {
    let mut s = Scan {
        b: text.as_bytes(),
        i: 0,
        line: 1,
        col: 0,
    };
    let mut depth = 0usize;
    // The scanner's block indentation levels (libyaml's `indent` stack).
    let mut indents: Vec<usize> = Vec::new();
    // Column of the current line's first token after `- ` and `? `: where
    // a block mapping key on this line starts.
    let mut line_key: Option<(usize, usize)> = None;
    let parent = |indents: &Vec<usize>| indents.last().map_or(-1, |&t| t as isize);
    let roll = |indents: &mut Vec<usize>, col: usize| {
        if parent(indents) < col as isize {
            indents.push(col);
        }
    };
    loop {
        // Between tokens: blanks, comments and line breaks.
        loop {
            if s.col == 0 && s.b[s.i..].starts_with("\u{feff}".as_bytes()) {
                s.i += 3;
            }
            while matches!(s.at(0), b' ' | b'\t') {
                s.bump();
            }
            if s.at(0) == b'#' {
                s.skip_line();
            }
            if s.brk(0) == 0 {
                break;
            }
            s.bump();
        }
        if s.end() {
            break;
        }
        let (col, flow) = (s.col, depth > 0);
        if !flow {
            while indents.last().is_some_and(|&t| t > col) {
                indents.pop();
            }
        }
        let first = line_key.is_none_or(|(line, _)| line != s.line);
        let c = s.at(0);
        let indicator = matches!(c, b'-' | b'?') && s.blankz(1);
        if !flow && first && !indicator {
            line_key = Some((s.line, col));
        }
        match c {
            b'%' if col == 0 => s.skip_line(),
            b'-' | b'.' if col == 0 && s.at(1) == c && s.at(2) == c && s.blankz(3) => {
                indents.clear();
                s.bump_n(3);
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Issue {
                        node_id: None,
                        line: s.line,
                        message: format!(
                            "the document is nested more than {MAX_NESTING} levels deep"
                        ),
                    });
                }
                s.bump();
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                s.bump();
            }
            b',' => s.bump(),
            b'-' | b'?' if indicator || (c == b'?' && flow) => {
                if !flow {
                    roll(&mut indents, col);
                }
                s.bump();
            }
            b':' if flow || s.blankz(1) => {
                if !flow {
                    let key = line_key.filter(|&(line, _)| line == s.line);
                    roll(&mut indents, key.map_or(col, |(_, k)| k));
                }
                s.bump();
            }
            b'*' | b'&' => {
                s.bump();
                while matches!(s.at(0), b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'-') {
                    s.bump();
                }
            }
            b'!' if s.at(1) == b'<' => {
                while !s.blankz(0) && s.at(0) != b'>' {
                    s.bump();
                }
                if s.at(0) == b'>' {
                    s.bump();
                }
            }
            b'!' => {
                while !s.blankz(0) && !matches!(s.at(0), b',' | b'[' | b']' | b'{' | b'}') {
                    s.bump();
                }
            }
            b'|' | b'>' if !flow => s.block_scalar(parent(&indents)),
            b'\'' => {
                s.bump();
                while !s.end() {
                    if s.at(0) == b'\'' {
                        s.bump();
                        if s.at(0) != b'\'' {
                            break;
                        }
                    }
                    s.bump();
                }
            }
            b'"' => {
                s.bump();
                while !s.end() && s.at(0) != b'"' {
                    if s.at(0) == b'\\' {
                        s.bump();
                    }
                    s.bump();
                }
                s.bump();
            }
            _ => s.plain_scalar(flow, parent(&indents)),
        }
    }
    for (n, l) in text.lines().enumerate() {
        let indent = l.len() - l.trim_start_matches(' ').len();
        if indent > MAX_NESTING * 8 {
            return Err(Issue {
                node_id: None,
                line: n + 1,
                message: format!(
                    "line is indented {indent} columns; the document is nested too deeply"
                ),
            });
        }
    }
    Ok(())
}

/// A position in a document, counted as the YAML scanner counts: columns
/// in characters, lines broken by CR, LF, CRLF, NEL, LS and PS.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    line: usize,
    col: usize,
}

impl Scan<'_> {
    fn at(&self, k: usize) -> u8 {
        self.b.get(self.i + k).copied().unwrap_or(0)
    }

    fn end(&self) -> bool {
        self.i >= self.b.len()
    }

    /// Length of the line break `k` bytes ahead, 0 if there is none.
    fn brk(&self, k: usize) -> usize {
        match self.b.get(self.i + k..).unwrap_or_default() {
            [b'\r', b'\n', ..] => 2,
            [b'\r' | b'\n', ..] => 1,
            [0xC2, 0x85, ..] => 2,
            [0xE2, 0x80, 0xA8 | 0xA9, ..] => 3,
            _ => 0,
        }
    }

    /// A blank, a line break or the end, `k` bytes ahead.
    fn blankz(&self, k: usize) -> bool {
        self.i + k >= self.b.len() || matches!(self.at(k), b' ' | b'\t') || self.brk(k) > 0
    }

    /// Steps over one character or line break.
    fn bump(&mut self) {
        if self.end() {
            return;
        }
        match self.brk(0) {
            0 => {
                self.i += 1;
                while self.i < self.b.len() && self.b[self.i] & 0xC0 == 0x80 {
                    self.i += 1;
                }
                self.col += 1;
            }
            n => {
                self.i += n;
                self.line += 1;
                self.col = 0;
            }
        }
    }

    fn bump_n(&mut self, n: usize) {
        for _ in 0..n {
            self.bump();
        }
    }

    /// Up to the next line break.
    fn skip_line(&mut self) {
        while !self.end() && self.brk(0) == 0 {
            self.bump();
        }
    }

    /// A plain scalar: it ends at `: `, ` #`, a flow indicator inside flow
    /// collections, or a line indented no more than its parent outside them.
    fn plain_scalar(&mut self, flow: bool, parent: isize) {
        loop {
            let marker = self.col == 0
                && matches!(self.at(0), b'-' | b'.')
                && self.at(1) == self.at(0)
                && self.at(2) == self.at(0)
                && self.blankz(3);
            if marker || self.at(0) == b'#' {
                return;
            }
            while !self.blankz(0) {
                let c = self.at(0);
                if (c == b':' && self.blankz(1))
                    || (flow && matches!(c, b',' | b'[' | b']' | b'{' | b'}'))
                {
                    return;
                }
                self.bump();
            }
            if self.end() {
                return;
            }
            while matches!(self.at(0), b' ' | b'\t') || self.brk(0) > 0 {
                self.bump();
            }
            if !flow && (self.col as isize) <= parent {
                return;
            }
        }
    }

    /// A `|` or `>` block scalar: its header line, then every line indented
    /// at least as much as its first non-empty line (or as its indentation
    /// indicator says).
    fn block_scalar(&mut self, parent: isize) {
        self.bump();
        let mut increment = 0;
        while matches!(self.at(0), b'+' | b'-' | b'1'..=b'9') {
            if self.at(0).is_ascii_digit() {
                increment = (self.at(0) - b'0') as isize;
            }
            self.bump();
        }
        self.skip_line();
        if self.end() {
            return;
        }
        self.bump();
        let mut indent = match increment {
            0 => 0,
            n if parent >= 0 => parent + n,
            n => n,
        };
        // Leading empty lines, and the first content line's indentation.
        let mut max_indent = 0;
        loop {
            while (indent == 0 || (self.col as isize) < indent) && self.at(0) == b' ' {
                self.bump();
            }
            max_indent = max_indent.max(self.col as isize);
            if self.brk(0) == 0 {
                break;
            }
            self.bump();
        }
        if indent == 0 {
            indent = max_indent.max(parent + 1).max(1);
        }
        while self.col as isize == indent && !self.end() {
            self.skip_line();
            if self.end() {
                return;
            }
            self.bump();
            loop {
                while (self.col as isize) < indent && self.at(0) == b' ' {
                    self.bump();
                }
                if self.brk(0) == 0 {
                    break;
                }
                self.bump();
            }
        }
    }
}

/// How much YAML aliases may grow a document: values plus scalar bytes,
/// per byte of text (a document without aliases stays below 1.5), on top
/// of `EXPANSION_ALLOWANCE`, which leaves room to reuse a long prompt or
/// config in every node.
const MAX_EXPANSION: usize = 2;
const EXPANSION_ALLOWANCE: usize = 1 << 20;

/// Refuses documents that aliases expand far beyond their own size (alias
/// bombs) by counting what they expand to before anything is built. Only
/// a `*` starts an alias, so other documents are not read twice.
pub(super) fn check_expansion(text: &str) -> Result<(), Issue> {
    if !text.contains('*') {
        return Ok(());
    }
    let used = std::cell::Cell::new(0);
    let count = Count {
        used: &used,
        limit: text.len().saturating_mul(MAX_EXPANSION) + EXPANSION_ALLOWANCE,
    };
    serde::de::DeserializeSeed::deserialize(count, serde_yaml::Deserializer::from_str(text))
        .map_err(|e| Issue {
            node_id: None,
            line: e.location().map(|l| l.line()).unwrap_or(0),
            message: format!("not valid YAML or JSON: {e}"),
        })
}

/// Counts a document's values and scalar bytes, up to a limit.
#[derive(Clone, Copy)]
struct Count<'a> {
    used: &'a std::cell::Cell<usize>,
    limit: usize,
}

impl Count<'_> {
    fn add<E: serde::de::Error>(self, n: usize) -> Result<(), E> {
        self.used.set(self.used.get().saturating_add(n));
        if self.used.get() > self.limit {
            return Err(E::custom(format!(
                "its aliases expand it to more than {} values and bytes",
                self.limit
            )));
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Count<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Count<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.add(1)
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.add(1)
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.add(1)
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.add(1)
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<(), E> {
        self.add(1 + s.len())
    }
    fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<(), E> {
        self.add(1 + b.len())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.add(1)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.add(1)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.add(1)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.add(1)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        use serde::de::VariantAccess;
        self.add(1)?;
        let ((), variant) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::workflow::load_str;

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let deep = format!(
            "name: d\nnodes:\n  a: {{agent: local://echo, outputs: [o], inputs: {{x: {}{}}}}}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let l = load_str(&deep);
        assert!(
            l.errors[0].message.contains("nested more than"),
            "{:?}",
            l.errors
        );
        // Brackets inside quoted strings are text.
        let quoted = format!(
            "name: q\nnodes:\n  a: {{agent: local://echo, outputs: [o], inputs: {{x: \"{}\"}}}}\n",
            "[".repeat(500)
        );
        assert!(
            load_str(&quoted).errors.is_empty(),
            "{:?}",
            load_str(&quoted).errors
        );
    }
}
