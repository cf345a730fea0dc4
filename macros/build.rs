//! Finds the built-in layer kinds: every `src/kinds/<kind>.rs` that declares
//! `pub const KIND: Entry` becomes a module of `kinds` and an entry of
//! `kinds::KINDS`, in file-name order (which is also the order of the names
//! listed in messages). A new kind is one new file and no edit to a list;
//! the other files in the folder (`args.rs`, `image.rs`, …) are helpers.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // Read at run time, not with `env!`: cargo reuses a compiled build
    // script for another checkout of the same sources (a shared target
    // directory), and a path baked in at compile time would name the first.
    let root = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&root).join("src/kinds");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut kinds = Vec::new();
    for e in std::fs::read_dir(&dir).expect("macros/src/kinds is readable") {
        let p = e.expect("a directory entry").path();
        let Some(stem) = p.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if p.extension().is_some_and(|x| x == "rs") && stem != "mod" {
            let text = std::fs::read_to_string(&p).expect("a kind file is readable");
            if text.contains("pub const KIND: Entry") {
                kinds.push((stem.to_owned(), p.display().to_string()));
            }
        }
    }
    kinds.sort();
    let mut out = String::new();
    for (k, path) in &kinds {
        writeln!(out, "#[path = {path:?}]\nmod {k};").unwrap();
    }
    writeln!(out, "/// Every built-in kind, in file-name order.").unwrap();
    writeln!(out, "const KINDS: &[&Entry] = &[").unwrap();
    for (k, _) in &kinds {
        writeln!(out, "    &{k}::KIND,").unwrap();
    }
    writeln!(out, "];").unwrap();
    let dst = Path::new(&std::env::var("OUT_DIR").unwrap()).join("kinds.rs");
    std::fs::write(dst, out).unwrap();
}
