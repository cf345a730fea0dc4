//! Finds the CUDA kernel families: every `src/kernels/<family>.rs` (with its
//! `<family>.cu` beside it) becomes `pub mod <family>` of `kernels`, and its
//! `MODULE` an entry of `kernels::MODULES`, in file-name order. A new family
//! is two new files and no edit to a list.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/kernels");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut families: Vec<String> = std::fs::read_dir(&dir)
        .expect("cuda/src/kernels is readable")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let stem = p.file_stem()?.to_str()?.to_owned();
            (p.extension()? == "rs" && stem != "mod").then_some(stem)
        })
        .collect();
    families.sort();
    let mut out = String::new();
    for f in &families {
        let path = dir.join(format!("{f}.rs"));
        writeln!(
            out,
            "#[path = {:?}]\npub mod {f};",
            path.display().to_string()
        )
        .unwrap();
    }
    writeln!(out, "/// Every family's module, in file-name order.").unwrap();
    writeln!(out, "pub const MODULES: &[Module] = &[").unwrap();
    for f in &families {
        writeln!(out, "    {f}::MODULE,").unwrap();
    }
    writeln!(out, "];").unwrap();
    let dst = Path::new(&std::env::var("OUT_DIR").unwrap()).join("families.rs");
    std::fs::write(dst, out).unwrap();
}
