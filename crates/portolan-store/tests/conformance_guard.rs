//! Guards of the conformance suite, read from the sources (no database):
//! - every method of the `Store` trait and of its supertraits (wherever under `src/` they are
//!   declared) is called, as `.method(`, by the conformance suite (`src/conformance/`);
//! - every case of the suite (`pub async fn name(s: &dyn Store)`) is listed in
//!   `conformance_tests!`, so it runs on every backend.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `src` with comments blanked and string and character literals emptied (each kept as `""`
/// or `' '`), so braces and `fn` in them do not count. Newlines are kept.
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if c[i] == '\n' {
                            out.push('\n');
                        }
                        i += 1;
                    }
                }
            }
            'r' if (c.get(i + 1) == Some(&'"') || c.get(i + 1) == Some(&'#'))
                && !c.get(i.wrapping_sub(1)).is_some_and(|p| p.is_alphanumeric() || *p == '_') =>
            {
                // A raw string r"…" / r#"…"#.
                let mut j = i + 1;
                let mut hashes = 0;
                while c.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if c.get(j) != Some(&'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                j += 1;
                loop {
                    if j >= c.len() {
                        break;
                    }
                    if c[j] == '"' && (0..hashes).all(|k| c.get(j + 1 + k) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    if c[j] == '\n' {
                        out.push('\n');
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = j;
            }
            '"' => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        i += 1;
                    } else if c[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("\"\"");
            }
            '\'' => {
                // A character literal ('x', '\n', '\u{0}') or a lifetime ('a).
                if c.get(i + 1) == Some(&'\\') {
                    let mut j = i + 2;
                    while j < c.len() && c[j] != '\'' {
                        j += 1;
                    }
                    out.push_str("' '");
                    i = j + 1;
                } else if c.get(i + 2) == Some(&'\'') {
                    out.push_str("' '");
                    i += 3;
                } else {
                    out.push('\'');
                    i += 1;
                }
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

fn is_ident(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// The identifier starting at byte `at` of `s`.
fn ident_at(s: &str, at: usize) -> &str {
    let rest = &s[at..];
    let end = rest.find(|ch: char| !is_ident(ch)).unwrap_or(rest.len());
    &rest[..end]
}

/// Byte offsets of `word` in `s` as a whole word.
fn word_positions<'a>(s: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    s.match_indices(word).map(|(i, _)| i).filter(move |&i| {
        let before = s[..i].chars().next_back();
        let after = s[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// A trait declaration: its supertraits (last path segment of each bound) and the methods
/// declared directly in its body.
#[derive(Debug, Default)]
struct TraitDecl {
    supertraits: Vec<String>,
    methods: Vec<String>,
    file: PathBuf,
}

/// Every `trait Name … { … }` block of `code` (comments and literals already removed).
fn traits_in(code: &str, file: &Path) -> Vec<(String, TraitDecl)> {
    let mut out = Vec::new();
    for at in word_positions(code, "trait") {
        let name_at = at + "trait".len() + code[at + "trait".len()..].find(|ch: char| !ch.is_whitespace()).unwrap_or(0);
        let name = ident_at(code, name_at).to_string();
        if name.is_empty() {
            continue;
        }
        let Some(open) = code[name_at..].find(['{', ';']).map(|i| name_at + i) else { continue };
        if code.as_bytes()[open] == b';' {
            continue;
        }
        let header = &code[name_at + name.len()..open];
        let bounds = header.split_once(':').map(|(_, b)| b.split("where").next().unwrap_or(b)).unwrap_or("");
        let supertraits = bounds
            .split('+')
            .map(|b| b.split('<').next().unwrap_or("").trim().rsplit("::").next().unwrap_or("").trim().to_string())
            .filter(|b| !b.is_empty() && !b.starts_with('\''))
            .collect();
        // The body, to its matching brace; methods are the `fn`s at its top level.
        let mut depth = 0;
        let mut methods = Vec::new();
        let bytes = code.as_bytes();
        let mut i = open;
        while i < bytes.len() {
            match bytes[i] {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                b'f' if depth == 1
                    && code[i..].starts_with("fn")
                    && !code[..i].chars().next_back().is_some_and(is_ident)
                    && code[i + 2..].starts_with(char::is_whitespace) =>
                {
                    let n_at = i + 2 + code[i + 2..].find(|ch: char| !ch.is_whitespace()).unwrap_or(0);
                    methods.push(ident_at(code, n_at).to_string());
                }
                _ => {}
            }
            i += 1;
        }
        out.push((name, TraitDecl { supertraits, methods, file: file.to_path_buf() }));
    }
    out
}

/// The methods of `Store` and of every trait it has as a supertrait (transitively), each with
/// the trait and file that declare it.
fn store_methods() -> BTreeMap<String, String> {
    let conformance = src_dir().join("conformance");
    let mut traits: BTreeMap<String, TraitDecl> = BTreeMap::new();
    for f in rust_files(&src_dir()) {
        if f.starts_with(&conformance) {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(&f).expect("read source"));
        for (name, decl) in traits_in(&code, &f) {
            let entry = traits.entry(name).or_default();
            entry.supertraits.extend(decl.supertraits);
            entry.methods.extend(decl.methods);
            entry.file = decl.file;
        }
    }
    assert!(traits.contains_key("Store"), "no `trait Store` found under {}", src_dir().display());
    let mut methods = BTreeMap::new();
    let mut todo = vec!["Store".to_string()];
    let mut seen = BTreeSet::new();
    while let Some(t) = todo.pop() {
        if !seen.insert(t.clone()) {
            continue;
        }
        let Some(decl) = traits.get(&t) else { continue };
        let file = decl.file.strip_prefix(src_dir()).unwrap_or(&decl.file).display().to_string();
        for m in &decl.methods {
            methods.insert(m.clone(), format!("{t} ({file})"));
        }
        todo.extend(decl.supertraits.iter().cloned());
    }
    methods
}

/// The conformance suite's sources, comments and literals removed, by file.
fn conformance_sources() -> Vec<(PathBuf, String)> {
    let dir = src_dir().join("conformance");
    let files = if dir.is_dir() { rust_files(&dir) } else { vec![src_dir().join("conformance.rs")] };
    files.into_iter().map(|f| (f.clone(), code_only(&std::fs::read_to_string(&f).expect("read conformance")))).collect()
}

#[test]
fn the_parser_finds_traits_supertraits_and_methods() {
    let code = code_only(
        r#"
        /// A doc with a brace { and fn fake(
        #[async_trait]
        pub trait Store: aggregates::Orgs + Jobs<X> + Send + Sync + 'static {
            async fn ping(&self, wait: Duration) -> Result<()>;
            fn set_query_budget(&self, b: Duration);
            async fn claim_job(&self) -> Result<()> { let s = "}"; let c = '{'; self.other().await }
        }
        pub trait Orgs { fn create_org(&self) -> &'static str; }
        trait Alias: Store {}
        "#,
    );
    let traits = traits_in(&code, Path::new("x.rs"));
    let names: Vec<&str> = traits.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Store", "Orgs", "Alias"]);
    assert_eq!(traits[0].1.supertraits, ["Orgs", "Jobs", "Send", "Sync"]);
    assert_eq!(traits[0].1.methods, ["ping", "set_query_budget", "claim_job"]);
    assert_eq!(traits[1].1.methods, ["create_org"]);
    assert!(traits[2].1.methods.is_empty());
}

/// Every store method is exercised by the conformance suite, on every backend it runs on.
#[test]
fn every_store_method_is_called_by_the_conformance_suite() {
    let methods = store_methods();
    // The parser found the trait (not an empty or truncated one).
    for known in ["ping", "set_query_budget", "create_org", "search", "search_sorted", "accept_invitation"] {
        assert!(methods.contains_key(known), "the guard did not find store method `{known}`: {methods:?}");
    }
    let suite: String = conformance_sources().into_iter().map(|(_, code)| code).collect::<Vec<_>>().join("\n");
    let missing: Vec<String> = methods
        .iter()
        .filter(|(m, _)| !suite.contains(&format!(".{m}(")))
        .map(|(m, decl)| format!("{m} (declared in {decl})"))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} store methods are called by no conformance case (src/conformance/): {}. \
         Add a case, or assertions to an existing case, that calls each of them and checks what it does.",
        missing.len(),
        methods.len(),
        missing.join(", ")
    );
}

/// Every case is listed in `conformance_tests!`, so it runs on SQLite (memory and file) and
/// PostgreSQL; a case written but not listed would silently never run.
#[test]
fn every_conformance_case_is_listed_in_the_macro() {
    let sources = conformance_sources();
    let all: String = sources.iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>().join("\n");
    let list_at = all.find("(@list").expect("conformance_tests! has an @list arm");
    let list_start = list_at + all[list_at..].find(';').expect("the @list arm's case list") + 1;
    let list_end = list_start + all[list_start..].find(')').expect("end of the case list");
    let listed: BTreeSet<&str> =
        all[list_start..list_end].split(|ch: char| !is_ident(ch)).filter(|w| !w.is_empty()).collect();
    let mut cases = Vec::new();
    for (file, code) in &sources {
        for at in word_positions(code, "pub") {
            let rest = code[at..].split_whitespace().take(3).collect::<Vec<_>>();
            if rest.len() < 3 || rest[1] != "async" || !rest[2].starts_with("fn") {
                continue;
            }
            let fn_at = at + code[at..].find("fn").unwrap_or(0) + 2;
            let name_at = fn_at + code[fn_at..].find(|ch: char| !ch.is_whitespace()).unwrap_or(0);
            let name = ident_at(code, name_at);
            let sig = &code[name_at + name.len()..];
            let params = &sig[..sig.find(')').unwrap_or(0)];
            if params.replace(' ', "") == "(s:&dynStore" {
                cases.push((name.to_string(), file.clone()));
            }
        }
    }
    assert!(cases.len() >= 30, "the guard found only {} cases: {cases:?}", cases.len());
    let unlisted: Vec<String> = cases
        .iter()
        .filter(|(c, _)| !listed.contains(c.as_str()))
        .map(|(c, f)| format!("{c} ({})", f.display()))
        .collect();
    assert!(unlisted.is_empty(), "cases not listed in conformance_tests! (never run): {}", unlisted.join(", "));
    let unknown: Vec<&&str> = listed.iter().filter(|l| !cases.iter().any(|(c, _)| c == **l)).collect();
    assert!(unknown.is_empty(), "conformance_tests! lists what is no case: {unknown:?}");
}
