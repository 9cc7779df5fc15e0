//! Secret redaction applied to agent output before it leaves the coding host
//! (in `claw-runner`) and again before it is stored (in `clawd`).
//!
//! Text with a terminal escape sequence or an invisible format character in
//! it is also matched without them (`sk-\x1b[0mant-…`, `g\u{200b}hp_…`), and
//! each secret found there is replaced in the original text together with
//! what hid inside it; everything outside secrets stays byte for byte.
//! Other text pays for one `RegexSet` scan, as before.

use std::borrow::Cow;
use std::ops::Range;

use regex::{Regex, RegexSet};

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Built-in patterns: (regex, replacement). A replacement may keep a captured
/// prefix (`${1}`) so that `API_KEY=…` still reads as an assignment.
///
/// Word boundaries are ASCII ones, `(?-u:\b)`: with a Unicode `\b` the regex
/// engines leave the DFA for the NFA on any non-ASCII text, and a clean line
/// of agent prose with one curly quote took 15 µs instead of 0.2.
const BUILTIN: &[(&str, &str)] = &[
    // Private keys: PEM (PKCS#1, PKCS#8, EC, DSA, encrypted), OpenSSH and PGP
    // blocks, also when the END line has not arrived (yet).
    (
        r"(?s)-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
        REDACTED,
    ),
    // Anthropic (sk-ant-api03-, sk-ant-admin01-) and OpenAI (sk-proj-,
    // sk-svcacct-, sk-admin-, the older bare sk-) keys share one shape.
    (r"(?-u:\b)sk-[A-Za-z0-9_\-]{16,}", REDACTED),
    // GitHub: classic tokens (ghp_ gho_ ghu_ ghs_ ghr_) and fine-grained ones.
    (r"(?-u:\b)gh[pousr]_[A-Za-z0-9]{20,}", REDACTED),
    (
        r"(?-u:\b)github_pat_[A-Za-z0-9]{20,}_[A-Za-z0-9]{30,}",
        REDACTED,
    ),
    (r"(?-u:\b)glpat-[A-Za-z0-9_\-]{20,}", REDACTED),
    (r"(?-u:\b)npm_[A-Za-z0-9]{20,}", REDACTED),
    // Hugging Face: long enough not to take `hf_hub_download` and friends.
    (r"(?-u:\b)hf_[A-Za-z0-9]{30,}(?-u:\b)", REDACTED),
    // Slack bot, user, app-level and other tokens, and webhook URLs.
    (r"(?-u:\b)xox[abprs]-[A-Za-z0-9\-]{10,}", REDACTED),
    (r"(?-u:\b)xapp-[A-Za-z0-9\-]{10,}", REDACTED),
    (
        r"(https://hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9_/\-]{8,}",
        "${1}[REDACTED]",
    ),
    // Google: API keys, OAuth client secrets, OAuth access tokens.
    (r"(?-u:\b)AIza[0-9A-Za-z_\-]{35}", REDACTED),
    (r"(?-u:\b)GOCSPX-[A-Za-z0-9_\-]{20,}", REDACTED),
    (r"(?-u:\b)ya29\.[0-9A-Za-z_\-]{20,}", REDACTED),
    // Stripe live secret and restricted keys.
    (r"(?-u:\b)[sr]k_live_[A-Za-z0-9]{16,}", REDACTED),
    // AWS access key ids, but not inside a base64 run such as a package-lock
    // `sha512-…` integrity string: the character before must not be base64
    // (nor the `-` of `sha512-`).
    (
        r"(^|[^A-Za-z0-9/+\-])(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?-u:\b)",
        "${1}[REDACTED]",
    ),
    // AWS secret access keys have no prefix of their own: only after their
    // name (credentials file, environment, JSON, YAML, XML, `aws configure set`).
    (
        r#"(?i)((?:aws[_\-.]?)?secret[_\-.]?access[_\-.]?key(?:["']?\s*[:=]\s*["']?|>|\s+))[A-Za-z0-9/+=]{40,}"#,
        "${1}[REDACTED]",
    ),
    // Authorization headers and the like.
    (
        r"(?i)(?-u:\b)(bearer\s+)[A-Za-z0-9\-._~+/]{8,}=*",
        "${1}[REDACTED]",
    ),
    // key = value, key: value, KEY="value" for names that say secret.
    (
        r#"(?i)((?:[a-z0-9]+[_\-])*(?:api[_\-]?key|apikey|access[_\-]?token|auth[_\-]?token|refresh[_\-]?token|secret[_\-]?key|client[_\-]?secret|private[_\-]?key|password|passwd|secret|token)["']?\s*[:=]\s*["']?)[^\s"',;]{4,}"#,
        "${1}[REDACTED]",
    ),
];

/// What can hide inside a secret without showing: the start of a terminal
/// escape sequence and the invisible format characters. Its place in the
/// set, after the rules, says whether the normalised pass is needed at all.
const HIDING: &str = r"[\x1b\u{AD}\u{61C}\u{180E}\u{200B}-\u{200F}\u{202A}-\u{202E}\u{2060}-\u{2064}\u{2066}-\u{2069}\u{FEFF}]";

#[derive(Debug, thiserror::Error)]
#[error("invalid redaction pattern {pattern:?}: {source}")]
pub struct PatternError {
    pub pattern: String,
    #[source]
    pub source: regex::Error,
}

/// A compiled set of redaction patterns.
#[derive(Debug, Clone)]
pub struct Redactor {
    /// Every rule, then [`HIDING`].
    any: RegexSet,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    re: Regex,
    /// The replacement as `Regex::replace_all` takes it.
    replacement: String,
    /// The same, parsed, for the normalised pass, which copies groups itself.
    template: Vec<Part>,
}

impl Redactor {
    /// The built-in patterns plus `extra` ones (each match replaced whole).
    pub fn new<S: AsRef<str>>(extra: &[S]) -> Result<Self, PatternError> {
        let mut rules = Vec::with_capacity(BUILTIN.len() + extra.len());
        for (pattern, replacement) in BUILTIN {
            rules.push(Rule::new(pattern, replacement)?);
        }
        for pattern in extra {
            rules.push(Rule::new(pattern.as_ref(), REDACTED)?);
        }
        let patterns = rules.iter().map(|rule| rule.re.as_str()).chain([HIDING]);
        let any = RegexSet::new(patterns).map_err(|source| PatternError {
            pattern: "<set>".to_owned(),
            source,
        })?;
        Ok(Self { any, rules })
    }

    /// The built-in patterns only.
    pub fn builtin() -> Self {
        match Self::new::<&str>(&[]) {
            Ok(r) => r,
            Err(e) => unreachable!("built-in redaction patterns compile: {e}"),
        }
    }

    /// `text` with every secret replaced; borrowed when nothing matched.
    ///
    /// A secret split by an escape sequence or an invisible character is
    /// found in a normalised view of the text and replaced whole, with what
    /// hid inside it; the escapes outside secrets stay as they were.
    /// A JSON document with every string in it redacted, so that a
    /// replacement never runs across quotes and breaks the document; text
    /// that is not JSON is redacted as text. Borrowed when nothing matched.
    pub fn redact_json<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.any.matches(text).matched_any() {
            return Cow::Borrowed(text);
        }
        let Ok(mut value) = serde_json::from_str::<serde_json::Value>(text) else {
            return self.redact(text);
        };
        if !self.redact_value(&mut value) {
            return Cow::Borrowed(text);
        }
        match serde_json::to_string(&value) {
            Ok(json) => Cow::Owned(json),
            Err(_) => self.redact(text),
        }
    }

    /// Redacts every string (and key) inside `value`; true if any changed.
    fn redact_value(&self, value: &mut serde_json::Value) -> bool {
        use serde_json::Value;
        match value {
            Value::String(s) => match self.redact(s) {
                Cow::Owned(changed) => {
                    *s = changed;
                    true
                }
                Cow::Borrowed(_) => false,
            },
            Value::Array(items) => {
                // Every item, not only up to the first that changed.
                let mut changed = false;
                for item in items {
                    changed |= self.redact_value(item);
                }
                changed
            }
            Value::Object(map) => {
                let mut changed = false;
                let entries = std::mem::take(map);
                for (key, mut item) in entries {
                    // A secret given as a key's name keeps its key only if
                    // the value is redacted on its own: `{"token": "…"}`.
                    let joined = format!("{key}={}", item.as_str().unwrap_or_default());
                    if item.is_string()
                        && let Cow::Owned(redacted) = self.redact(&joined)
                        && let Some(value) = redacted.strip_prefix(&format!("{key}="))
                    {
                        item = Value::String(value.to_owned());
                        changed = true;
                    } else {
                        changed |= self.redact_value(&mut item);
                    }
                    map.insert(key, item);
                }
                changed
            }
            _ => false,
        }
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let hits = self.any.matches(text);
        if !hits.matched_any() {
            return Cow::Borrowed(text);
        }
        let mut out = Cow::Borrowed(text);
        if hits.matched(self.rules.len())
            && let Some(changed) = self.redact_normalised(text)
        {
            out = Cow::Owned(changed);
        }
        // Then the text as it is, for what the escapes delimit: `AKIA…\x1b[0mX`
        // normalises to a longer word that is no key id.
        for index in hits.iter() {
            let Some(rule) = self.rules.get(index) else {
                continue;
            };
            if let Cow::Owned(changed) = rule.re.replace_all(&out, rule.replacement.as_str()) {
                out = Cow::Owned(changed);
            }
        }
        out
    }

    /// `text` with the secrets of its normalised view replaced, or `None`
    /// when that view holds none.
    fn redact_normalised(&self, text: &str) -> Option<String> {
        let view = View::new(text);
        if view.gaps.is_empty() {
            return None;
        }
        let hits = self.any.matches(&view.text);
        if !hits.matched_any() {
            return None;
        }
        let mut doc = Doc::new(&view);
        for index in hits.iter() {
            if let Some(rule) = self.rules.get(index) {
                doc.apply(rule);
            }
        }
        doc.changed.then(|| doc.render(text))
    }
}

impl Rule {
    fn new(pattern: &str, replacement: &str) -> Result<Self, PatternError> {
        let re = Regex::new(pattern).map_err(|source| PatternError {
            pattern: pattern.to_owned(),
            source,
        })?;
        Ok(Self {
            re,
            replacement: replacement.to_owned(),
            template: parse_template(replacement),
        })
    }
}

/// A piece of a replacement template.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Index(usize),
    Name(String),
}

/// Parses `$1`, `${1}`, `$name`, `${name}` and `$$` as `Regex::replace_all` does.
fn parse_template(template: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        text.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
            match braced.find('}') {
                Some(end) if end > 0 => (&braced[..end], &braced[end + 1..]),
                _ => ("", rest),
            }
        } else {
            let end = rest
                .find(|c: char| c != '_' && !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        if name.is_empty() {
            // `$$` is a dollar; so is a `$` that names nothing.
            text.push('$');
            rest = rest.strip_prefix('$').unwrap_or(rest);
            continue;
        }
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut text)));
        }
        parts.push(match name.parse() {
            Ok(index) => Part::Index(index),
            Err(_) => Part::Name(name.to_owned()),
        });
        rest = after;
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    parts
}

/// A run of escapes and invisible characters taken out of the text: it stood
/// in `original[start..end]`, just before the view's byte `at`.
#[derive(Debug, Clone, PartialEq)]
struct Gap {
    at: usize,
    start: usize,
    end: usize,
}

/// The text without escape sequences and invisible characters, and where
/// they were.
#[derive(Debug)]
struct View {
    text: String,
    /// In order of `at`, one per place.
    gaps: Vec<Gap>,
}

impl View {
    fn new(original: &str) -> Self {
        let bytes = original.as_bytes();
        let mut text = String::with_capacity(original.len());
        let mut gaps: Vec<Gap> = Vec::new();
        let mut kept_from = 0;
        let mut i = 0;
        // Byte by byte is safe: what is taken out starts with ESC or a
        // leading byte and ends on a character boundary.
        while i < bytes.len() {
            let len = hidden_len(bytes, i);
            if len == 0 {
                i += 1;
                continue;
            }
            text.push_str(&original[kept_from..i]);
            match gaps.last_mut() {
                Some(gap) if gap.end == i => gap.end = i + len,
                _ => gaps.push(Gap {
                    at: text.len(),
                    start: i,
                    end: i + len,
                }),
            }
            i += len;
            kept_from = i;
        }
        text.push_str(&original[kept_from..]);
        Self { text, gaps }
    }

    /// Where the view's byte `at` (or its end) is in the original.
    fn original_at(&self, at: usize) -> usize {
        match self.gaps.partition_point(|gap| gap.at <= at) {
            0 => at,
            n => {
                let gap = &self.gaps[n - 1];
                gap.end + (at - gap.at)
            }
        }
    }

    /// The gaps strictly inside the view's `range`, by index.
    fn gaps_inside(&self, range: &Range<usize>) -> Range<usize> {
        let first = self.gaps.partition_point(|gap| gap.at <= range.start);
        let end = self.gaps.partition_point(|gap| gap.at < range.end);
        first..end.max(first)
    }

    fn gap_at(&self, at: usize) -> Option<usize> {
        self.gaps.binary_search_by_key(&at, |gap| gap.at).ok()
    }
}

/// How many bytes of hidden text start at `bytes[i]`: an escape sequence or
/// one invisible format character; 0 for anything else.
fn hidden_len(bytes: &[u8], i: usize) -> usize {
    let next = |k: usize| bytes.get(i + k).copied().unwrap_or(0);
    match bytes[i] {
        0x1b => escape_len(&bytes[i..]),
        // U+00AD soft hyphen
        0xC2 if next(1) == 0xAD => 2,
        // U+061C Arabic letter mark
        0xD8 if next(1) == 0x9C => 2,
        // U+180E Mongolian vowel separator
        0xE1 if next(1) == 0xA0 && next(2) == 0x8E => 3,
        // U+200B–U+200F zero-widths and marks, U+202A–U+202E embeddings and overrides
        0xE2 if next(1) == 0x80 && matches!(next(2), 0x8B..=0x8F | 0xAA..=0xAE) => 3,
        // U+2060–U+2064 joiners and invisible operators, U+2066–U+2069 isolates
        0xE2 if next(1) == 0x81 && matches!(next(2), 0xA0..=0xA4 | 0xA6..=0xA9) => 3,
        // U+FEFF zero-width no-break space
        0xEF if next(1) == 0xBB && next(2) == 0xBF => 3,
        _ => 0,
    }
}

/// The length of the escape sequence at the start of `bytes` (an ESC).
fn escape_len(bytes: &[u8]) -> usize {
    let Some(&kind) = bytes.get(1) else {
        return 1;
    };
    match kind {
        // CSI: parameters and intermediates, then a final byte; a sequence
        // cut short is taken out as far as it goes, as a terminal would.
        b'[' => {
            let body = bytes[2..]
                .iter()
                .position(|b| !(0x20..=0x3F).contains(b))
                .map_or(bytes.len(), |n| n + 2);
            match bytes.get(body) {
                Some(0x40..=0x7E) => body + 1,
                _ => body,
            }
        }
        // OSC, DCS, SOS, PM, APC: a string up to BEL or ST (ESC \). Any
        // other ESC ends it too; without an end only the introducer goes,
        // so that a string which never ends hides nothing from matching.
        b']' | b'P' | b'X' | b'^' | b'_' => {
            match bytes[2..].iter().position(|&b| b == 0x07 || b == 0x1b) {
                Some(n) if bytes[n + 2] == 0x07 => n + 3,
                Some(n) if bytes.get(n + 3) == Some(&b'\\') => n + 4,
                Some(n) => n + 2,
                None => 2,
            }
        }
        // Two-byte escapes, or intermediates and a final byte (`ESC ( B`).
        0x20..=0x2F => {
            let body = bytes[1..]
                .iter()
                .position(|b| !(0x20..=0x2F).contains(b))
                .map_or(bytes.len(), |n| n + 1);
            match bytes.get(body) {
                Some(0x30..=0x7E) => body + 1,
                _ => body,
            }
        }
        0x30..=0x7E => 2,
        _ => 1,
    }
}

/// The normalised text as rules rewrite it: pieces of the view kept as they
/// were, and text replacements put in.
#[derive(Debug, Clone)]
enum Piece {
    /// The view's bytes `range` (never empty).
    Kept(Range<usize>),
    /// Text put in place of the match that covered `span` of the view.
    Put { text: String, span: Range<usize> },
}

struct Doc<'v> {
    view: &'v View,
    pieces: Vec<Piece>,
    /// Per gap: it was inside a secret, and goes with it.
    dropped: Vec<bool>,
    changed: bool,
}

impl<'v> Doc<'v> {
    fn new(view: &'v View) -> Self {
        let pieces = if view.text.is_empty() {
            Vec::new()
        } else {
            vec![Piece::Kept(0..view.text.len())]
        };
        Self {
            view,
            pieces,
            dropped: vec![false; view.gaps.len()],
            changed: false,
        }
    }

    /// The current text and where each piece starts in it.
    fn current(&self) -> (String, Vec<usize>) {
        let mut text = String::with_capacity(self.view.text.len());
        let mut starts = Vec::with_capacity(self.pieces.len());
        for piece in &self.pieces {
            starts.push(text.len());
            text.push_str(match piece {
                Piece::Kept(range) => &self.view.text[range.clone()],
                Piece::Put { text, .. } => text,
            });
        }
        (text, starts)
    }

    /// Rewrites the pieces as `Regex::replace_all` would rewrite their text.
    fn apply(&mut self, rule: &Rule) {
        let (current, starts) = self.current();
        let mut next = Vec::with_capacity(self.pieces.len() + 2);
        let mut last = 0;
        let mut any = false;
        for caps in rule.re.captures_iter(&current) {
            let Some(m) = caps.get(0) else {
                continue;
            };
            any = true;
            self.copy(&starts, current.len(), last..m.start(), &mut next);
            let span = self.span(&starts, current.len(), m.range());
            let mut kept = Vec::new();
            for part in &rule.template {
                let group = match part {
                    Part::Text(text) => {
                        next.push(Piece::Put {
                            text: text.clone(),
                            span: span.clone(),
                        });
                        continue;
                    }
                    Part::Index(index) => caps.get(*index),
                    Part::Name(name) => caps.name(name),
                };
                if let Some(group) = group {
                    let from = next.len();
                    self.copy(&starts, current.len(), group.range(), &mut next);
                    kept.extend(next[from..].iter().filter_map(|piece| match piece {
                        Piece::Kept(range) => Some(range.clone()),
                        Piece::Put { .. } => None,
                    }));
                }
            }
            // What hid inside the secret goes with it; what hid inside a
            // kept group (a name in colour) stays.
            for index in self.view.gaps_inside(&span) {
                let at = self.view.gaps[index].at;
                if !kept.iter().any(|range| range.start < at && at < range.end) {
                    self.dropped[index] = true;
                }
            }
            last = m.end();
        }
        if any {
            self.copy(&starts, current.len(), last..current.len(), &mut next);
            self.pieces = next;
            self.changed = true;
        }
    }

    /// Appends the pieces that make up `range` of the current text.
    fn copy(&self, starts: &[usize], len: usize, range: Range<usize>, out: &mut Vec<Piece>) {
        if range.is_empty() {
            return;
        }
        let first = starts
            .partition_point(|&s| s <= range.start)
            .saturating_sub(1);
        for (index, piece) in self.pieces.iter().enumerate().skip(first) {
            let start = starts[index];
            let end = starts.get(index + 1).copied().unwrap_or(len);
            if start >= range.end {
                break;
            }
            let (from, to) = (range.start.max(start) - start, range.end.min(end) - start);
            if from >= to {
                continue;
            }
            out.push(match piece {
                Piece::Kept(kept) => Piece::Kept(kept.start + from..kept.start + to),
                Piece::Put { text, span } => Piece::Put {
                    text: text[from..to].to_owned(),
                    span: span.clone(),
                },
            });
        }
    }

    /// The span of the view that `range` of the current text stands for.
    fn span(&self, starts: &[usize], len: usize, range: Range<usize>) -> Range<usize> {
        let mut pieces = Vec::new();
        self.copy(starts, len, range.clone(), &mut pieces);
        let mut spans = pieces.iter().map(|piece| match piece {
            Piece::Kept(range) => range.clone(),
            Piece::Put { span, .. } => span.clone(),
        });
        let Some(first) = spans.next() else {
            // An empty match: the place it stands at.
            let at = self.position(starts, len, range.start);
            return at..at;
        };
        spans.fold(first, |all, span| {
            all.start.min(span.start)..all.end.max(span.end)
        })
    }

    /// The view's position for the current text's offset `at`.
    fn position(&self, starts: &[usize], len: usize, at: usize) -> usize {
        if at >= len {
            return self.view.text.len();
        }
        let index = starts.partition_point(|&s| s <= at).saturating_sub(1);
        match self.pieces.get(index) {
            Some(Piece::Kept(range)) => range.start + (at - starts[index]),
            Some(Piece::Put { span, .. }) => span.start,
            None => self.view.text.len(),
        }
    }

    /// The original text with the pieces' replacements, keeping every gap
    /// that was not inside a secret where it was.
    fn render(&self, original: &str) -> String {
        let view = self.view;
        let mut out = String::with_capacity(original.len());
        let mut emitted = vec![false; view.gaps.len()];
        for piece in &self.pieces {
            match piece {
                Piece::Kept(range) => {
                    self.gap_at(original, &mut out, &mut emitted, range.start);
                    let mut from = view.original_at(range.start);
                    for index in view.gaps_inside(range) {
                        out.push_str(&original[from..view.gaps[index].start]);
                        self.gap(original, &mut out, &mut emitted, index);
                        from = view.gaps[index].end;
                    }
                    out.push_str(&original[from..view.original_at(range.end - 1) + 1]);
                    self.gap_at(original, &mut out, &mut emitted, range.end);
                }
                Piece::Put { text, span } => {
                    self.gap_at(original, &mut out, &mut emitted, span.start);
                    out.push_str(text);
                    self.gap_at(original, &mut out, &mut emitted, span.end);
                }
            }
        }
        out
    }

    /// Puts back the gap at the view's position `at`, if there is one.
    fn gap_at(&self, original: &str, out: &mut String, emitted: &mut [bool], at: usize) {
        if let Some(index) = self.view.gap_at(at) {
            self.gap(original, out, emitted, index);
        }
    }

    /// Puts back gap `index` unless it went with a secret or is back already.
    fn gap(&self, original: &str, out: &mut String, emitted: &mut [bool], index: usize) {
        if !self.dropped[index] && !emitted[index] {
            emitted[index] = true;
            let gap = &self.view.gaps[index];
            out.push_str(&original[gap.start..gap.end]);
        }
    }
}

/// Output read a line at a time is redacted a line at a time, and the
/// private-key pattern then sees only a key's BEGIN line: this follows a
/// stream across lines and replaces every line from a private key's BEGIN
/// line to its END line.
#[derive(Debug, Default, Clone)]
pub struct PrivateKeyLines {
    inside: bool,
}

impl PrivateKeyLines {
    pub fn new() -> Self {
        Self::default()
    }

    /// The line as it may leave: whole, or [`REDACTED`] (with the line's
    /// end kept) from a BEGIN line to its END line. A chunk that holds a
    /// whole key is left to [`Redactor::redact`].
    pub fn filter<'a>(&mut self, line: &'a str) -> Cow<'a, str> {
        let begins = line.contains("-----BEGIN") && is_private_key_marker(line);
        let ends = line.contains("-----END") && is_private_key_marker(line);
        let opens = !self.inside && begins && !ends;
        if !(self.inside || opens) {
            return Cow::Borrowed(line);
        }
        self.inside = !(self.inside && ends);
        // From the BEGIN line (what comes before it on that line too).
        let end = &line[line.trim_end_matches(['\r', '\n']).len()..];
        Cow::Owned(format!("{REDACTED}{end}"))
    }
}

fn is_private_key_marker(line: &str) -> bool {
    line.contains("PRIVATE KEY-----") || line.contains("PRIVATE KEY BLOCK-----")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        Redactor::builtin().redact(s).into_owned()
    }

    #[test]
    fn leaves_plain_text_borrowed() {
        let red = Redactor::builtin();
        assert!(matches!(red.redact("cargo build ok"), Cow::Borrowed(_)));
    }

    #[test]
    fn provider_tokens() {
        assert_eq!(
            r("key sk-ant-api03-abcdefghijklmnopqrstuv end"),
            "key [REDACTED] end"
        );
        assert_eq!(r("ghp_0123456789abcdefghij0123456789abcdef"), "[REDACTED]");
        assert_eq!(r("x ghs_0123456789abcdefghijABCDEF y"), "x [REDACTED] y");
        assert_eq!(r("npm_abcdefghijklmnopqrstuvwxyz0123"), "[REDACTED]");
    }

    #[test]
    fn bearer_and_assignments_keep_their_names() {
        assert_eq!(
            r("Authorization: Bearer abc.def-ghi_jkl"),
            "Authorization: Bearer [REDACTED]"
        );
        assert_eq!(
            r("ANTHROPIC_API_KEY=abcd1234efgh"),
            "ANTHROPIC_API_KEY=[REDACTED]"
        );
        assert_eq!(
            r(r#"{"password": "hunter22"}"#),
            r#"{"password": "[REDACTED]"}"#
        );
        assert_eq!(r("api-key: 12345678"), "api-key: [REDACTED]");
    }

    #[test]
    fn pem_private_key_whole_or_truncated() {
        let pem = "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----\nafter";
        assert_eq!(r(pem), "before\n[REDACTED]\nafter");
        assert_eq!(r("-----BEGIN PRIVATE KEY-----\nMIIE"), "[REDACTED]");
    }

    #[test]
    fn json_stays_json_with_its_secrets_redacted() {
        let red = Redactor::builtin();
        let doc = r#"{"output":"key sk-ant-api03-abcdefghijklmnopqrstuv\n-----BEGIN PRIVATE KEY-----\nMIIE","input":{"password":"hunter22","n":1},"safe":"ok"}"#;
        let out = red.redact_json(doc);
        let value: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
        assert_eq!(value["output"], "key [REDACTED]\n[REDACTED]");
        assert_eq!(value["input"]["password"], "[REDACTED]");
        assert_eq!(value["input"]["n"], 1);
        assert_eq!(value["safe"], "ok");
        assert!(matches!(
            red.redact_json(r#"{"a":"plain"}"#),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            red.redact_json("not json sk-ant-api03-abcdefghijklmnopqrstuv"),
            "not json [REDACTED]"
        );
    }

    #[test]
    fn extra_patterns_and_bad_pattern() {
        let red = Redactor::new(&["corp-[0-9]{4}"]).expect("valid");
        assert_eq!(red.redact("id corp-1234 ok"), "id [REDACTED] ok");
        let err = Redactor::new(&["("]).expect_err("invalid");
        assert!(err.to_string().contains("\"(\""));
    }

    #[test]
    fn ordinary_output_untouched() {
        for s in [
            "test result: ok. 3 passed",
            "tokens used: 12",
            "git diff --stat",
            "commit 3da9538e8f1c2b9a7d6e5f4a3b2c1d0e9f8a7b6c",
            "HEAD is now at 3da9538 PERFORMANCE.md: figures",
            "    Finished `dev` profile [unoptimized + debuginfo] target(s) in 2.14s",
            "test redact::tests::provider_tokens ... ok",
            "pip install scikit-learn task-runner-for-everything-else",
            "from huggingface_hub import hf_hub_download_with_a_long_name",
        ] {
            assert_eq!(r(s), s);
        }
    }

    /// Package-lock integrity strings are long base64 runs; an AWS key id
    /// shape inside one is not a key.
    #[test]
    fn package_lock_integrity_untouched() {
        for s in [
            r#""integrity": "sha512-AKIAIOSFODNN7EXAMPLE/z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==""#,
            r#""integrity": "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/AKIAIOSFODNN7EXAMPLE+SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+ASIAIOSFODNN7EXAMPLE==","#,
            r#"integrity sha1-wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY0123"#,
        ] {
            assert_eq!(r(s), s);
        }
    }

    #[test]
    fn aws_access_key_ids() {
        for id in [
            "AKIAIOSFODNN7EXAMPLE",
            "ASIAY34FZKBOKMUTVV7A",
            "ABIA0123456789ABCDEF",
            "ACCA0123456789ABCDEF",
        ] {
            assert_eq!(r(&format!("id {id} ok")), "id [REDACTED] ok");
            assert_eq!(
                r(&format!("AWS_ACCESS_KEY_ID={id}")),
                "AWS_ACCESS_KEY_ID=[REDACTED]"
            );
            assert_eq!(
                r(&format!(r#"{{"AccessKeyId": "{id}"}}"#)),
                r#"{"AccessKeyId": "[REDACTED]"}"#
            );
        }
        // Fifteen or seventeen characters, lower case, another prefix: no key id.
        for s in [
            "AKIAIOSFODNN7EXAMP",
            "AKIAIOSFODNN7EXAMPLEX",
            "akiaiosfodnn7example",
            "AKIBIOSFODNN7EXAMPLE",
        ] {
            assert_eq!(r(s), s);
        }
    }

    #[test]
    fn aws_secret_access_keys_by_name() {
        let key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        for (line, redacted) in [
            (
                format!("aws_secret_access_key = {key}"),
                "aws_secret_access_key = [REDACTED]",
            ),
            (
                format!("AWS_SECRET_ACCESS_KEY={key}"),
                "AWS_SECRET_ACCESS_KEY=[REDACTED]",
            ),
            (
                format!(r#"{{"SecretAccessKey": "{key}", "x": 1}}"#),
                r#"{"SecretAccessKey": "[REDACTED]", "x": 1}"#,
            ),
            (
                format!("  secret_access_key: {key}"),
                "  secret_access_key: [REDACTED]",
            ),
            (
                format!("<SecretAccessKey>{key}</SecretAccessKey>"),
                "<SecretAccessKey>[REDACTED]</SecretAccessKey>",
            ),
            (
                format!("aws configure set aws_secret_access_key {key}"),
                "aws configure set aws_secret_access_key [REDACTED]",
            ),
        ] {
            assert_eq!(r(&line), redacted);
        }
        // Without a value of the right shape, or without the name.
        for s in [
            "aws_secret_access_key = <your secret key>",
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG",
            "set aws_secret_access_key in ~/.aws/credentials",
            "key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ] {
            assert_eq!(r(s), s);
        }
    }

    #[test]
    fn github_tokens() {
        for prefix in ["ghp", "gho", "ghu", "ghs", "ghr"] {
            let token = format!("{prefix}_0123456789abcdefghijABCDEFGHIJ012345");
            assert_eq!(r(&format!("t {token} .")), "t [REDACTED] .");
        }
        let fine = "github_pat_11ABCDEFG0123456789abcd_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW";
        assert_eq!(r(&format!("GH_TOKEN={fine}")), "GH_TOKEN=[REDACTED]");
        for s in [
            "ghp_short",
            "github_pat_for_ci_is_in_the_vault",
            "ghx_0123456789abcdefghijABCDEFGHIJ012345",
        ] {
            assert_eq!(r(s), s);
        }
    }

    #[test]
    fn slack_tokens_and_webhooks() {
        for token in [
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            "xoxp-123456789012-123456789012-1234567890123-0123456789abcdef",
            "xoxa-2-123456789012-abcdefghij",
            "xoxr-123456789012-abcdefghij",
            "xoxs-123456789012-abcdefghij",
            "xapp-1-A0123456789-1234567890123-abcdef0123456789",
        ] {
            assert_eq!(r(&format!("slack {token}")), "slack [REDACTED]");
        }
        assert_eq!(
            r(
                "curl https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX -d x"
            ),
            "curl https://hooks.slack.com/services/[REDACTED] -d x"
        );
        for s in [
            "xoxb-1234",
            "xoxz-123456789012-abcdefghij",
            "see https://hooks.slack.com/ and https://api.slack.com/services/x",
        ] {
            assert_eq!(r(s), s);
        }
    }

    #[test]
    fn google_keys() {
        for key in [
            "AIzaSyA-1234567890abcdefghijklmnopqrstu",
            "GOCSPX-abcdefghijklmnopqrstuvwxyz12",
            "ya29.a0AfH6SMBx-abcdefghijklmnopqrstuvwxyz0123",
        ] {
            assert_eq!(r(&format!("k {key}")), "k [REDACTED]");
        }
        for s in ["AIzaSyA-1234567890", "GOCSPX-short", "ya29.short", "ya29"] {
            assert_eq!(r(s), s);
        }
    }

    #[test]
    fn anthropic_and_openai_keys() {
        for key in [
            "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789_ABCDEFGHIJ-KLMNOPQRSTUVWXYZ",
            "sk-ant-admin01-abcdefghijklmnopqrstuvwxyz0123456789",
            "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789_ABCDEF",
            "sk-svcacct-abcdefghijklmnopqrstuvwxyz0123456789",
            "sk-abcdefghijklmnopqrstT3BlbkFJuvwxyz0123456789ABCD",
        ] {
            assert_eq!(r(&format!("key: {key}")), "key: [REDACTED]");
        }
        for s in [
            "sk-learn",
            "sk-ant-",
            "sk-proj-short",
            "task-abcdefghijklmnopqrstuvwx",
        ] {
            assert_eq!(r(s), s);
        }
    }

    #[test]
    fn stripe_gitlab_npm_hugging_face() {
        for key in [
            "sk_live_0123456789abcdefABCDEFGH",
            "rk_live_0123456789abcdefABCDEFGH",
            "glpat-abcdefghij0123456789",
            "npm_abcdefghijklmnopqrstuvwxyz0123",
            "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
        ] {
            assert_eq!(r(&format!("k {key} .")), "k [REDACTED] .");
        }
        for s in [
            "sk_test_0123456789abcdefABCDEFGH",
            "sk_live_short",
            "glpat-short",
            "hf_hub_download",
            "hf_abcdefghij",
            "hf_hub_cache_dir_for_everything",
        ] {
            assert_eq!(r(s), s);
        }
    }

    #[test]
    fn private_keys() {
        for (begin, end) in [
            (
                "-----BEGIN EC PRIVATE KEY-----",
                "-----END EC PRIVATE KEY-----",
            ),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----",
                "-----END ENCRYPTED PRIVATE KEY-----",
            ),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----",
                "-----END OPENSSH PRIVATE KEY-----",
            ),
            (
                "-----BEGIN PGP PRIVATE KEY BLOCK-----",
                "-----END PGP PRIVATE KEY BLOCK-----",
            ),
        ] {
            let whole = format!("a\n{begin}\nb3BlbnNzaC1rZXktdjEAAAAA\nQUFB\n{end}\nz");
            assert_eq!(r(&whole), "a\n[REDACTED]\nz");
            let cut = format!("a\n{begin}\nb3BlbnNzaC1rZXktdjEAAAAA\n");
            assert_eq!(r(&cut), "a\n[REDACTED]");
        }
        for s in [
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqh\n-----END PUBLIC KEY-----",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\nmQINBF\n-----END PGP PUBLIC KEY BLOCK-----",
            "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+g\n-----END CERTIFICATE-----",
        ] {
            assert_eq!(r(s), s);
        }
    }

    /// Every invisible character the normalised view drops, and what it
    /// looks like in UTF-8, agree; the neighbours of each range stay.
    #[test]
    fn hidden_characters() {
        let hidden = |c: char| {
            let s = c.to_string();
            hidden_len(s.as_bytes(), 0) == s.len()
        };
        let ranges = [
            (0xAD, 0xAD),
            (0x61C, 0x61C),
            (0x180E, 0x180E),
            (0x200B, 0x200F),
            (0x202A, 0x202E),
            (0x2060, 0x2064),
            (0x2066, 0x2069),
            (0xFEFF, 0xFEFF),
        ];
        for (first, last) in ranges {
            for c in (first..=last).filter_map(char::from_u32) {
                assert!(hidden(c), "U+{:04X}", c as u32);
            }
        }
        for c in [
            0xAC, 0xAE, 0x61B, 0x61D, 0x180D, 0x180F, 0x200A, 0x2010, 0x2029, 0x202F, 0x205F,
            0x2065, 0x206A, 0xFEFE, 0xFF00, 0x2014, 0x2026, 0x2713,
        ]
        .into_iter()
        .filter_map(char::from_u32)
        {
            assert!(!hidden(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn escape_sequences() {
        for (seq, len) in [
            ("\x1b[0m", 4),
            ("\x1b[1;31m", 7),
            ("\x1b[?25l", 6),
            ("\x1b[38;2;255;0;0m", 15),
            ("\x1b]8;;https://example.com\x1b\\", 26),
            ("\x1b]0;title\x07", 10),
            ("\x1bPq#0\x1b\\", 7),
            ("\x1b(B", 3),
            ("\x1b7", 2),
            ("\x1bM", 2),
            ("\x1b", 1),
            ("\x1b[12", 4),
        ] {
            assert_eq!(escape_len(seq.as_bytes()), len, "{seq:?}");
        }
        // An OSC that never ends takes only its introducer; one cut by another
        // escape ends there.
        assert_eq!(escape_len(b"\x1b]0;sk-ant"), 2);
        assert_eq!(escape_len(b"\x1b]0;x\x1b[0m"), 5);
        assert_eq!(escape_len("\x1b\u{e9}".as_bytes()), 1);
    }

    #[test]
    fn templates_parse_as_regex_does() {
        use Part::*;
        assert_eq!(
            parse_template("${1}[REDACTED]"),
            [Index(1), Text("[REDACTED]".into())]
        );
        assert_eq!(parse_template("$$1 $"), [Text("$1 $".into())]);
        assert_eq!(
            parse_template("$name! ${x}y$2"),
            [
                Name("name".into()),
                Text("! ".into()),
                Name("x".into()),
                Text("y".into()),
                Index(2),
            ]
        );
        assert_eq!(parse_template("${}"), [Text("${}".into())]);
    }

    /// The security review's examples.
    #[test]
    fn secrets_split_by_escapes_or_invisible_characters() {
        assert_eq!(
            r("key sk-\x1b[0mant-api03-abcdefghijklmnopqrstuv end"),
            "key [REDACTED] end"
        );
        assert_eq!(
            r("g\u{200b}hp_0123456789abcdefghij0123456789abcdef"),
            "[REDACTED]"
        );
        assert_eq!(
            r("AKIA\u{2060}IOSFODNN7EXAMPLE\u{feff}"),
            "[REDACTED]\u{feff}"
        );
        assert_eq!(
            r("sk-\x1b]8;;https://x\x1b\\ant-api03-abcdefghijklmnopqrstuv"),
            "[REDACTED]"
        );
        assert_eq!(
            r("sk-\x1b(Bant-api03-abcdefghijklmnopqrstuv\x1b7"),
            "[REDACTED]\x1b7"
        );
        // An unterminated OSC before a split token hides nothing.
        assert_eq!(
            r("\x1b]0;g\u{200b}hp_0123456789abcdefghij0123"),
            "\x1b]0;[REDACTED]"
        );
        // A key id that ends where an escape starts.
        assert_eq!(r("AKIAIOSFODNN7EXAMPLE\x1b[0mFOO"), "[REDACTED]\x1b[0mFOO");
    }

    /// The escapes around a secret, and everything else, stay byte for byte;
    /// those inside it go with it.
    #[test]
    fn colours_outside_secrets_survive() {
        assert_eq!(
            r(
                "\x1b[1m\x1b[32m   Compiling\x1b[0m x; see sk-\u{200b}proj-abcdefghijklmnopqrstuvwx \x1b[33mwarning\x1b[0m"
            ),
            "\x1b[1m\x1b[32m   Compiling\x1b[0m x; see [REDACTED] \x1b[33mwarning\x1b[0m"
        );
        assert_eq!(
            r("\x1b[31msk-\x1b[0mant-api03-abcdefghijklmnopqrstuv\x1b[0m and"),
            "\x1b[31m[REDACTED]\x1b[0m and"
        );
        // A kept name in colour keeps its colour.
        assert_eq!(
            r("\x1b[1mAPI\x1b[22m_KEY=\x1b[32mabcd\u{200b}1234efgh\x1b[0m;"),
            "\x1b[1mAPI\x1b[22m_KEY=[REDACTED]\x1b[0m;"
        );
        // Two secrets with an escape between them.
        assert_eq!(
            r("g\u{200b}hp_0123456789abcdefghij0123\x1b[0m xoxb-\u{200d}123456789012-abc"),
            "[REDACTED]\x1b[0m [REDACTED]"
        );
    }

    #[test]
    fn coloured_text_without_secrets_is_borrowed() {
        let red = Redactor::builtin();
        for s in [
            "\x1b[1m\x1b[32m   Compiling\x1b[0m claw-proto v0.1.0 (/work/proto)",
            "\x1b]8;;https://example.com/docs\x1b\\docs\x1b]8;;\x1b\\ and \u{202e}txt.exe",
            "soft\u{ad}hyphen, zero\u{200b}width, \u{feff}bom",
        ] {
            assert!(matches!(red.redact(s), Cow::Borrowed(t) if t == s), "{s:?}");
        }
    }

    /// Each secret the plain text loses, it also loses with an invisible
    /// character or an escape anywhere inside it.
    #[test]
    fn hiding_anywhere_inside_changes_nothing() {
        let red = Redactor::new(&["corp-[0-9]{8}"]).expect("valid");
        let secrets = [
            "sk-ant-api03-abcdefghijklmnopqrstuv",
            "ghp_0123456789abcdefghij0123456789abcdef",
            "github_pat_11ABCDEFG0123456789abcd_0123456789abcdefghijklmnopqrstuvwxyz",
            "xoxb-123456789012-abcdefghij",
            "AIzaSyA-1234567890abcdefghijklmnopqrstu",
            "AKIAIOSFODNN7EXAMPLE",
            "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
            "corp-12345678",
        ];
        for secret in secrets {
            assert_eq!(red.redact(&format!("x {secret} y")), "x [REDACTED] y");
            let boundaries: Vec<usize> = (1..secret.len()).collect();
            for at in boundaries {
                for hide in ["\u{200b}", "\x1b[0m", "\u{202e}", "\x1b]0;t\x07"] {
                    let hidden = format!("x {}{hide}{} y", &secret[..at], &secret[at..]);
                    assert_eq!(red.redact(&hidden), "x [REDACTED] y", "{hidden:?}");
                }
            }
        }
        let line = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        for at in 23..line.len() {
            let hidden = format!("{}\u{200c}{}", &line[..at], &line[at..]);
            assert_eq!(red.redact(&hidden), "AWS_SECRET_ACCESS_KEY=[REDACTED]");
        }
    }

    #[test]
    fn patterns_that_match_the_empty_string_do_not_break_it() {
        let red = Redactor::new(&["q*"]).expect("valid");
        for s in ["a\u{200b}b", "\u{200b}", "\x1b[0m", "x\x1b]0;"] {
            let out = red.redact(s);
            assert!(out.contains(REDACTED), "{s:?}");
        }
    }

    #[test]
    fn a_private_key_read_line_by_line_is_redacted_to_its_end() {
        let redactor = Redactor::builtin();
        let mut keys = PrivateKeyLines::new();
        let lines = [
            "$ cat id_ed25519\n",
            "-----BEGIN OPENSSH PRIVATE KEY-----\n",
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n",
            "QyNTUxOQAAACDf2zLwZ\r\n",
            "-----END OPENSSH PRIVATE KEY-----\n",
            "done\n",
        ];
        let out: Vec<String> = lines
            .iter()
            .map(|line| redactor.redact(&keys.filter(line)).into_owned())
            .collect();
        assert_eq!(
            out,
            [
                "$ cat id_ed25519\n",
                "[REDACTED]\n",
                "[REDACTED]\n",
                "[REDACTED]\r\n",
                "[REDACTED]\n",
                "done\n",
            ]
        );
        // A whole key in one chunk is the redactor's; nothing stays open.
        let whole = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
        assert_eq!(keys.filter(whole), whole);
        assert_eq!(keys.filter("next\n"), "next\n");
        // A line that only mentions the words does not open a block.
        assert_eq!(
            keys.filter("grep 'PRIVATE KEY' -r .\n"),
            "grep 'PRIVATE KEY' -r .\n"
        );
        assert_eq!(keys.filter("after\n"), "after\n");
    }
}
