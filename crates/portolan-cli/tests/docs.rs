//! The documents are a map of the code: every file path ARCHITECTURE.md, README.md and docs/*.md
//! name must exist, so a rename or a deletion that leaves a document pointing at nothing fails
//! here instead of misleading the next reader.
//!
//! A path is a backticked token that looks like a file or directory path: it contains a `/` or
//! ends in a source extension, and holds no placeholder (`{…}`, `*`, `…`, `<…>`). It resolves if
//! it exists relative to the repository root or to the document's folder, or if some file or
//! directory of the repository ends with it (`handlers/entity.rs` names
//! `crates/portolan-server/src/handlers/entity.rs`). Markdown links `[text](target)` to local
//! files must resolve relative to the document.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every file and directory of the repository, relative to the root, with `/` separators.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "target" || name == "node_modules" {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            if path.is_dir() {
                stack.push(path);
            }
            out.push(rel);
        }
    }
    out
}

const EXTENSIONS: &[&str] = &[".rs", ".md", ".sql", ".html", ".toml", ".js", ".css", ".sh", ".py"];
/// Folders of the repository a path may start with when it names a directory.
const TOP: &[&str] = &["crates/", "docs/", ".ci/", "bench/"];

fn looks_like_path(token: &str) -> bool {
    let placeholder = ['{', '}', '*', '…', '<', '>', ' ', '$', '=', '(', '?', ':', '@', '|', ','];
    if token.is_empty() || token.starts_with('/') || token.starts_with('-') || token.contains(placeholder) {
        return false;
    }
    if token.starts_with("../") || (token.starts_with('.') && !token.starts_with(".ci/")) {
        return false; // outside the repository, or a path inside a user's project (`.port/…`)
    }
    // Source files anywhere (`handlers/entity.rs`), and repository folders (`crates/…/src/web/`).
    // Runtime paths (`./portolan-data`, `data_dir/secrets.key`, `target/…`) and a user's own
    // files (`port.yml`) are not the repository's and are not checked.
    EXTENSIONS.iter().any(|e| token.ends_with(e)) || TOP.iter().any(|t| token.starts_with(t))
}

fn backticked(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let parts: Vec<&str> = line.split('`').collect();
        for (i, part) in parts.iter().enumerate() {
            if i % 2 == 1 && i + 1 < parts.len() {
                out.push(part.trim_end_matches('/').to_string());
            }
        }
    }
    out
}

fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split('#').next().unwrap_or_default();
        let pathlike = target.chars().all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c));
        if !target.is_empty() && pathlike {
            out.push(target.to_string());
        }
    }
    out
}

fn documents(root: &Path) -> Vec<PathBuf> {
    let mut docs = vec![root.join("ARCHITECTURE.md"), root.join("README.md")];
    let mut stack = vec![root.join("docs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "md") {
                docs.push(p);
            }
        }
    }
    docs
}

#[test]
fn every_path_the_documents_name_exists() {
    let root = root();
    let all = tree(&root);
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in documents(&root) {
        let text = std::fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        let dir = doc.parent().unwrap_or(&root).to_path_buf();
        let name = doc.strip_prefix(&root).unwrap_or(&doc).display().to_string();
        for token in backticked(&text).into_iter().filter(|t| looks_like_path(t)) {
            checked += 1;
            let found = root.join(&token).exists()
                || dir.join(&token).exists()
                || all.iter().any(|p| p.ends_with(&format!("/{token}")));
            if !found {
                missing.push(format!("{name}: `{token}`"));
            }
        }
        for target in links(&text) {
            checked += 1;
            if !dir.join(&target).exists() {
                missing.push(format!("{name}: link ({target})"));
            }
        }
    }
    assert!(checked > 50, "only {checked} paths found: is the extraction broken?");
    assert!(
        missing.is_empty(),
        "these paths named in the documents do not exist (rename them in the document, or \
         write the path in full):\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_path_check_catches_a_missing_file() {
    let root = root();
    let all = tree(&root);
    for token in ["crates/portolan-store/src/sqlite/nothing_here.rs", "handlers/no_such_module.rs", "docs/gone/"] {
        assert!(looks_like_path(token));
        assert!(!root.join(token).exists() && !all.iter().any(|p| p.ends_with(&format!("/{token}"))));
    }
    assert!(!looks_like_path("/v1/blueprints/{id}"));
    assert!(!looks_like_path("text/html"));
    assert!(!looks_like_path("data_dir/secrets.key"));
    assert!(!looks_like_path(".port/resources"));
    assert_eq!(backticked("a `x/y.rs` b `c`"), vec!["x/y.rs", "c"]);
    assert_eq!(links("see [w](docs/web-ui.md#pages) and [u](https://x.y)"), vec!["docs/web-ui.md"]);
}
