//! Every reference to the project's documents resolves: `docs/NAME.md#anchor` in sources,
//! descriptions and Markdown (with `, #anchor` continuations), and relative Markdown links in
//! `README.md` and `docs/`, name a file that exists and a heading it has. A renamed heading or
//! moved document fails here instead of leaving comments that point nowhere.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Directories never scanned: build output, caches and version control.
const SKIP: &[&str] = &[
    "target",
    "out",
    ".git",
    "node_modules",
    "corpus",
    "artifacts",
];
const EXTS: &[&str] = &["rs", "md", "xml", "toml"];

fn files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !SKIP.contains(&name.as_str()) {
                files(&path, found);
            }
        } else if path
            .extension()
            .is_some_and(|e| EXTS.contains(&e.to_string_lossy().as_ref()))
        {
            found.push(path);
        }
    }
}

/// The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(doc: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(doc).unwrap();
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

fn is_anchor_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
}

/// The anchor starting at `rest` (after a `#`), if any.
fn take_anchor(rest: &str) -> &str {
    let end = rest.find(|c| !is_anchor_char(c)).unwrap_or(rest.len());
    &rest[..end]
}

/// `(document, anchor)` pairs named in `text` with the `docs/NAME.md[#a][, #b]...` form.
fn path_refs(text: &str) -> Vec<(String, Option<String>)> {
    let mut refs = Vec::new();
    let mut at = 0;
    while let Some(i) = text[at..].find("docs/") {
        let start = at + i + "docs/".len();
        at = start;
        let name_end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map_or(text.len(), |n| start + n);
        if !text[name_end..].starts_with(".md") {
            continue;
        }
        let doc = format!("{}.md", &text[start..name_end]);
        let mut pos = name_end + ".md".len();
        if !text[pos..].starts_with('#') {
            refs.push((doc, None));
            continue;
        }
        loop {
            let anchor = take_anchor(&text[pos + 1..]);
            refs.push((doc.clone(), Some(anchor.to_owned())));
            pos += 1 + anchor.len();
            if text[pos..].starts_with(", #") {
                pos += ", ".len();
            } else {
                break;
            }
        }
    }
    refs
}

/// Relative Markdown links `](target.md#a)` and `](#a)` in a Markdown file in `dir`.
fn markdown_links(text: &str, dir: &Path, this: &Path) -> Vec<(PathBuf, Option<String>)> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("](") {
        let rest = &text[i + 2..];
        let Some(end) = rest.find(')') else { continue };
        let target = &rest[..end];
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (file, anchor) = match target.split_once('#') {
            Some((f, a)) => (f, Some(a.to_owned())),
            None => (target, None),
        };
        let path = if file.is_empty() {
            this.to_path_buf()
        } else {
            dir.join(file)
        };
        out.push((path, anchor));
    }
    out
}

#[test]
fn every_docs_reference_names_an_existing_document_and_heading() {
    let root = root();
    let mut all = Vec::new();
    files(&root, &mut all);
    let mut broken = Vec::new();
    let mut checked = 0;
    // This file's own examples are not references.
    all.retain(|f| {
        !f.ends_with(file!().rsplit('/').next().unwrap()) || !f.starts_with(root.join("build"))
    });
    for file in &all {
        let text = fs::read_to_string(file).unwrap();
        let shown = file.strip_prefix(&root).unwrap().display().to_string();
        for (doc, anchor) in path_refs(&text) {
            let path = root.join("docs").join(&doc);
            checked += 1;
            if !path.is_file() {
                broken.push(format!("{shown}: docs/{doc} does not exist"));
            } else if let Some(a) = anchor
                && !anchors(&path).contains(&a)
            {
                broken.push(format!("{shown}: docs/{doc} has no heading #{a}"));
            }
        }
        let is_doc = file.starts_with(root.join("docs")) || file == &root.join("README.md");
        if is_doc {
            for (path, anchor) in markdown_links(&text, file.parent().unwrap(), file) {
                checked += 1;
                if !path.exists() {
                    broken.push(format!(
                        "{shown}: link to {} does not exist",
                        path.display()
                    ));
                } else if let Some(a) = anchor
                    && path.extension().is_some_and(|e| e == "md")
                    && !anchors(&path).contains(&a)
                {
                    broken.push(format!("{shown}: {} has no heading #{a}", path.display()));
                }
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} references found: is the scan broken?"
    );
    assert!(
        broken.is_empty(),
        "broken document references:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_reference_forms_are_recognised() {
    let refs = path_refs("see docs/protocol.md#packets, #barriers and docs/races.md.");
    let want = [
        ("protocol.md", Some("packets")),
        ("protocol.md", Some("barriers")),
        ("races.md", None),
    ];
    let got: Vec<_> = refs
        .iter()
        .map(|(d, a)| (d.as_str(), a.as_deref()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(slug("Producer: when to signal"), "producer-when-to-signal");
    assert_eq!(slug("QEMU's version handshake"), "qemus-version-handshake");
    assert_eq!(
        slug("Protocol 6.0 feature flags"),
        "protocol-60-feature-flags"
    );
    assert_eq!(
        slug("The portable core: `vmbus-driver`"),
        "the-portable-core-vmbus-driver"
    );
}

/// `path.rs::name` references in `docs/`: the file exists and defines `fn name`.
#[test]
fn every_test_named_in_the_documents_exists() {
    let root = root();
    let mut named = 0;
    let mut missing = Vec::new();
    for entry in fs::read_dir(root.join("docs")).unwrap() {
        let doc = entry.unwrap().path();
        let text = fs::read_to_string(&doc).unwrap();
        for piece in text.split('`') {
            let Some((file, name)) = piece.split_once(".rs::") else {
                continue;
            };
            if file.contains(' ') || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            named += 1;
            let path = root.join(format!("{file}.rs"));
            let found =
                fs::read_to_string(&path).is_ok_and(|src| src.contains(&format!("fn {name}(")));
            if !found {
                missing.push(format!("{}: {file}.rs::{name}", doc.display()));
            }
        }
    }
    assert!(named > 20, "only {named} tests named: is the scan broken?");
    assert!(
        missing.is_empty(),
        "tests named in docs/ but not found:\n{}",
        missing.join("\n")
    );
}
