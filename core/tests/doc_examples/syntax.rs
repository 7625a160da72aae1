//! The part of Rust's syntax the scan needs: tokens (comments, strings and
//! chars skipped so that their braces do not count), `#[cfg]` evaluated for
//! the default build, outer attributes, and items with their bodies.

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A `///` line, its text after the slashes.
    Doc(String),
    Ident(String),
    /// A string literal's value, escapes resolved.
    Str(String),
    /// Any other literal (number, char, byte).
    Lit,
    Lifetime,
    Punct(char),
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
}

fn unescape(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('\n') => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

pub fn tokenize(src: &str) -> Vec<Token> {
    let s: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let (mut i, mut line) = (0, 1);
    let count_lines = |from: usize, to: usize| s[from..to].iter().filter(|&&c| c == '\n').count();
    while i < s.len() {
        let c = s[i];
        let start = i;
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && s.get(i + 1) == Some(&'/') {
            let end = s[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(s.len(), |p| i + p);
            let text: String = s[i..end].iter().collect();
            if text.starts_with("///") && !text.starts_with("////") {
                toks.push(Token {
                    tok: Tok::Doc(text[3..].to_string()),
                    line,
                });
            }
            i = end;
        } else if c == '/' && s.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && s.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            line += count_lines(start, i);
        } else if c == '"' || (c == 'b' && s.get(i + 1) == Some(&'"')) {
            i += if c == 'b' { 2 } else { 1 };
            let body = i;
            while i < s.len() && s[i] != '"' {
                i += if s[i] == '\\' { 2 } else { 1 };
            }
            let raw: String = s[body..i.min(s.len())].iter().collect();
            toks.push(Token {
                tok: Tok::Str(unescape(&raw)),
                line,
            });
            i += 1;
            line += count_lines(start, i.min(s.len()));
        } else if (c == 'r' || (c == 'b' && s.get(i + 1) == Some(&'r'))) && {
            let j = if c == 'b' { i + 2 } else { i + 1 };
            let hashes = s[j..].iter().take_while(|&&c| c == '#').count();
            s.get(j + hashes) == Some(&'"')
        } {
            let j = if c == 'b' { i + 2 } else { i + 1 };
            let hashes = s[j..].iter().take_while(|&&c| c == '#').count();
            let body = j + hashes + 1;
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let mut k = body;
            while k < s.len() && !s[k..].starts_with(&close) {
                k += 1;
            }
            toks.push(Token {
                tok: Tok::Str(s[body..k.min(s.len())].iter().collect()),
                line,
            });
            i = (k + close.len()).min(s.len());
            line += count_lines(start, i);
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if s.get(i + 1) == Some(&'\\') {
                i += 3;
                while i < s.len() && s[i] != '\'' {
                    i += 1;
                }
                i += 1;
                toks.push(Token {
                    tok: Tok::Lit,
                    line,
                });
            } else if s.get(i + 2) == Some(&'\'') {
                i += 3;
                toks.push(Token {
                    tok: Tok::Lit,
                    line,
                });
            } else {
                i += 1;
                while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_') {
                    i += 1;
                }
                toks.push(Token {
                    tok: Tok::Lifetime,
                    line,
                });
            }
        } else if c.is_alphanumeric() || c == '_' {
            while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_') {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            let tok = if c.is_ascii_digit() {
                Tok::Lit
            } else {
                Tok::Ident(word)
            };
            toks.push(Token { tok, line });
        } else {
            toks.push(Token {
                tok: Tok::Punct(c),
                line,
            });
            i += 1;
        }
    }
    toks
}

pub fn is_punct(t: &Token, c: char) -> bool {
    t.tok == Tok::Punct(c)
}

pub fn is_ident(t: &Token, word: &str) -> bool {
    matches!(&t.tok, Tok::Ident(w) if w == word)
}

/// The index just past the group that opens at `open` (`(`, `[` or `{`).
pub fn close_of(toks: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (k, t) in toks.iter().enumerate().skip(open) {
        match t.tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return k + 1;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// Evaluates a `cfg` predicate (the tokens inside `cfg(..)`) with no feature
/// and none of the checking lanes' flags set.
pub fn cfg_holds(toks: &[Token]) -> bool {
    fn list(toks: &[Token]) -> Vec<&[Token]> {
        let mut out = Vec::new();
        let (mut depth, mut from) = (0usize, 0);
        for (k, t) in toks.iter().enumerate() {
            match t.tok {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => depth -= 1,
                Tok::Punct(',') if depth == 0 => {
                    out.push(&toks[from..k]);
                    from = k + 1;
                }
                _ => {}
            }
        }
        if from < toks.len() {
            out.push(&toks[from..]);
        }
        out
    }
    let Some(Tok::Ident(head)) = toks.first().map(|t| &t.tok) else {
        return true;
    };
    let inner = || &toks[2..toks.len() - 1];
    match head.as_str() {
        "all" => list(inner()).into_iter().all(cfg_holds),
        "any" => list(inner()).into_iter().any(cfg_holds),
        "not" => !cfg_holds(inner()),
        // `feature = ".."`: no feature is on in the default build.
        "feature" => false,
        "test" | "doctest" | "loom" | "shuttle" | "crossbeam_loom" | "miri" => false,
        // Target predicates (`unix`, `target_os = ..`): the native build has them.
        _ => true,
    }
}

/// What an item's outer attributes and doc comments say.
#[derive(Debug, Default, Clone)]
pub struct Attrs {
    pub doc: String,
    pub cfg_holds: bool,
    pub doc_hidden: bool,
    pub path: Option<String>,
}

/// Reads the attributes and `///` lines from `k`; returns them and the index
/// of the item's first token.
pub fn attrs(toks: &[Token], mut k: usize) -> (Attrs, usize) {
    let mut a = Attrs {
        cfg_holds: true,
        ..Attrs::default()
    };
    loop {
        match toks.get(k).map(|t| &t.tok) {
            Some(Tok::Doc(d)) => {
                a.doc.push_str(d);
                a.doc.push('\n');
                k += 1;
            }
            Some(Tok::Punct('#')) if toks.get(k + 1).is_some_and(|t| is_punct(t, '[')) => {
                let end = close_of(toks, k + 1);
                let body = &toks[k + 2..end - 1];
                if body.first().is_some_and(|t| is_ident(t, "cfg")) && body.len() > 2 {
                    a.cfg_holds &= cfg_holds(&body[2..body.len() - 1]);
                } else if body.first().is_some_and(|t| is_ident(t, "doc")) {
                    if body.get(1).is_some_and(|t| is_punct(t, '=')) {
                        for t in &body[2..] {
                            if let Tok::Str(s) = &t.tok {
                                a.doc.push_str(s);
                            }
                        }
                        a.doc.push('\n');
                    } else if body.iter().any(|t| is_ident(t, "hidden")) {
                        a.doc_hidden = true;
                    }
                } else if body.first().is_some_and(|t| is_ident(t, "path"))
                    && let Some(Tok::Str(p)) = body.get(2).map(|t| &t.tok)
                {
                    a.path = Some(p.clone());
                }
                k = end;
            }
            _ => return (a, k),
        }
    }
}

/// Whether a doc holds an example rustdoc runs (rule 4).
pub fn has_runnable_example(doc: &str) -> bool {
    let mut in_block = false;
    for line in doc.lines() {
        let l = line.trim_start();
        if !l.starts_with("```") {
            continue;
        }
        if in_block {
            in_block = false;
            continue;
        }
        in_block = true;
        let info = l.trim_start_matches('`');
        let runs = info
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .all(|w| w == "rust" || w.starts_with("edition"));
        if runs {
            return true;
        }
    }
    false
}

#[derive(Debug, Clone)]
pub struct Item {
    pub attrs: Attrs,
    /// `pub` and nothing narrower.
    pub public: bool,
    /// `fn`, `struct`, `impl`, `mod`, `use`, `macro_rules`, a macro call...
    pub kind: String,
    pub name: String,
    pub line: usize,
    /// The tokens of the `{ .. }` body, when it has one.
    pub body: Option<Vec<Token>>,
    /// The header's tokens, from the keyword to the body or `;`.
    pub header: Vec<Token>,
}

const KEYWORDS: &[&str] = &[
    "fn", "struct", "enum", "union", "trait", "type", "const", "static", "impl", "mod", "use",
    "extern",
];

pub fn parse_items(toks: &[Token]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut k = 0;
    while k < toks.len() {
        // Inner attributes `#![..]`.
        if is_punct(&toks[k], '#') && toks.get(k + 1).is_some_and(|t| is_punct(t, '!')) {
            k = close_of(toks, k + 2);
            continue;
        }
        let (a, start) = attrs(toks, k);
        if start >= toks.len() {
            break;
        }
        let line = toks[start].line;
        let mut j = start;
        let mut public = false;
        if is_ident(&toks[j], "pub") {
            if toks.get(j + 1).is_some_and(|t| is_punct(t, '(')) {
                j = close_of(toks, j + 1);
            } else {
                public = true;
                j += 1;
            }
        }
        // Qualifiers before the keyword.
        while toks.get(j).is_some_and(|t| {
            is_ident(t, "unsafe")
                || is_ident(t, "async")
                || (is_ident(t, "const")
                    && toks
                        .get(j + 1)
                        .is_some_and(|n| is_ident(n, "fn") || is_ident(n, "unsafe")))
                || (is_ident(t, "extern")
                    && toks
                        .get(j + 1)
                        .is_some_and(|n| matches!(n.tok, Tok::Str(_))))
        }) {
            j += if is_ident(&toks[j], "extern") { 2 } else { 1 };
        }
        let kind = match toks.get(j).map(|t| &t.tok) {
            Some(Tok::Ident(w)) if KEYWORDS.contains(&w.as_str()) => w.clone(),
            Some(Tok::Ident(w)) if w == "macro_rules" => "macro_rules".to_string(),
            Some(Tok::Ident(_)) if toks.get(j + 1).is_some_and(|t| is_punct(t, '!')) => {
                "macro".to_string()
            }
            _ => "other".to_string(),
        };
        let name = match kind.as_str() {
            "macro_rules" => toks.get(j + 2),
            "macro" => toks.get(j),
            "impl" | "use" => None,
            _ => toks.get(j + 1),
        }
        .and_then(|t| match &t.tok {
            Tok::Ident(w) => Some(w.clone()),
            _ => None,
        })
        .unwrap_or_default();
        // The item ends at a `;` outside groups, or after its first `{ .. }`
        // block (`const`, `static`, `type` and `use` end at `;` only).
        let semicolon_only = matches!(kind.as_str(), "const" | "static" | "type" | "use");
        let mut end = j;
        let mut body = None;
        let mut header_end = j;
        while end < toks.len() {
            match toks[end].tok {
                Tok::Punct(';') => {
                    header_end = end;
                    end += 1;
                    break;
                }
                Tok::Punct('{') if !semicolon_only => {
                    header_end = end;
                    let close = close_of(toks, end);
                    body = Some(toks[end + 1..close - 1].to_vec());
                    end = close;
                    // `macro! { .. };` and `struct S { .. };` are rare; eat a `;`.
                    break;
                }
                Tok::Punct('(' | '[' | '{') => end = close_of(toks, end),
                _ => end += 1,
            }
        }
        if end == j {
            end += 1;
        }
        let header = toks[j..header_end.max(j)].to_vec();
        items.push(Item {
            attrs: a,
            public,
            kind,
            name,
            line,
            body,
            header,
        });
        k = end;
    }
    items
}

/// The type an inherent `impl` header is for, or `None` for a trait impl.
/// `header` starts at `impl`.
pub fn impl_self_type(header: &[Token]) -> Option<String> {
    let mut k = 1;
    if header.get(k).is_some_and(|t| is_punct(t, '<')) {
        let mut depth = 0i32;
        while k < header.len() {
            match header[k].tok {
                Tok::Punct('<') => depth += 1,
                Tok::Punct('>') if !(k > 0 && is_punct(&header[k - 1], '-')) => {
                    depth -= 1;
                    if depth == 0 {
                        k += 1;
                        break;
                    }
                }
                _ => {}
            }
            k += 1;
        }
    }
    let rest = &header[k..];
    let trait_impl = rest
        .iter()
        .enumerate()
        .any(|(n, t)| is_ident(t, "for") && !rest.get(n + 1).is_some_and(|t| is_punct(t, '<')));
    if trait_impl {
        return None;
    }
    let mut name = None;
    for (n, t) in rest.iter().enumerate() {
        match &t.tok {
            Tok::Punct('<') => break,
            Tok::Ident(w) if w == "where" => break,
            Tok::Ident(w) => {
                let metavar = n > 0 && is_punct(&rest[n - 1], '$');
                name = Some(if metavar { format!("${w}") } else { w.clone() });
            }
            _ => {}
        }
    }
    name
}
