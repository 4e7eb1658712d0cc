//! `cargo xtask check-layers`: the top-level modules of each crate (the files
//! and directories of its `src/`) import each other without cycles, and
//! nothing but the executable's `main.rs` and `lib.rs` imports the CLI.
//!
//! Imports are read from the text: every `crate::<module>` path in a module's
//! files (tests included) is an arrow from that module to `<module>`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::workspace_root;

/// The crates whose layering is checked, by directory.
const CRATES: &[&str] = &["core", "front", "host", "xtask"];

/// The module only the entry points may import.
const CLI: &str = "cli";

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Checks every crate in [`CRATES`].
pub fn check() -> Result<()> {
    let mut problems = Vec::new();
    for name in CRATES {
        let src = workspace_root().join(name).join("src");
        let graph = module_graph(&src)?;
        if let Some(cycle) = find_cycle(&graph) {
            problems
                .push(format!("{name}/src: modules import each other in a circle: {}", cycle.join(" → ")));
        }
        for (module, imports) in &graph {
            if imports.contains(CLI) && module != CLI {
                problems.push(format!("{name}/src/{module} imports the CLI; pass what it needs instead"));
            }
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    println!("xtask: no import cycles between the top-level modules of {}", CRATES.join(", "));
    Ok(())
}

/// For each top-level module of `src` (`lib.rs` and `main.rs` are entry
/// points, not modules), the top-level modules it imports.
fn module_graph(src: &Path) -> Result<Graph> {
    let mut graph = Graph::new();
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let path = entry?.path();
        let Some(module) = module_name(&path) else { continue };
        let mut imports = BTreeSet::new();
        for file in rust_files(&path)? {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            imports.extend(crate_paths(&text).filter(|m| *m != module));
        }
        graph.insert(module, imports);
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for imports in graph.values_mut() {
        imports.retain(|m| modules.contains(m));
    }
    Ok(graph)
}

/// `foo` for `src/foo.rs` or `src/foo/`; `None` for entry points and other files.
fn module_name(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let is_module = path.is_dir() || path.extension().is_some_and(|e| e == "rs");
    (is_module && !matches!(stem, "lib" | "main" | "bin")).then(|| stem.to_string())
}

/// `path` itself if it is a file, or every `.rs` file below it.
fn rust_files(path: &Path) -> Result<Vec<std::path::PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        files.extend(rust_files(&entry?.path())?);
    }
    Ok(files)
}

/// The first segment after every `crate::` in `text`, including those inside
/// `use crate::{a, b::c}` groups.
fn crate_paths(text: &str) -> impl Iterator<Item = String> + '_ {
    text.match_indices("crate::").flat_map(move |(at, _)| {
        let rest = &text[at + "crate::".len()..];
        let segment =
            |s: &str| s.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().map(str::to_string);
        match rest.strip_prefix('{') {
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                group.split(',').filter_map(|item| segment(item.trim())).collect::<Vec<_>>()
            }
            None => segment(rest).into_iter().collect(),
        }
    })
}

/// A cycle in `graph`, as the modules along it (the first repeated at the end).
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        edges.iter().map(|(m, to)| (m.to_string(), to.iter().map(|t| t.to_string()).collect())).collect()
    }

    #[test]
    fn reads_plain_and_grouped_crate_paths() {
        let text =
            "use crate::cache::Entry;\nuse crate::{config::Config, output};\nlet x = crate::clock::now();";
        let found: Vec<String> = crate_paths(text).collect();
        assert_eq!(found, ["cache", "config", "output", "clock"]);
    }

    #[test]
    fn finds_a_cycle_and_accepts_layers() {
        assert_eq!(find_cycle(&graph(&[("a", &["b"]), ("b", &["c"]), ("c", &[])])), None);
        let cycle = find_cycle(&graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])])).unwrap();
        assert_eq!(cycle, ["a", "b", "c", "a"]);
    }
}
