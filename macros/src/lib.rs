//! The `network!` procedural macro of kiln: a thin translator.
//!
//! parse (`parse.rs`) → graph IR with spans (`ir.rs`) → shape inference with
//! one rule per layer kind (`kinds.rs`, `shape.rs`) → diagnostics collected in
//! one pass (`diag.rs`) → code generation (`emit.rs`).
//!
//! It is invoked through `kiln::network!`, a `macro_rules!` wrapper that
//! passes `$crate` first, so generated paths resolve from any crate, under any
//! name the user gives the dependency.

mod diag;
mod emit;
mod image;
mod ir;
mod kinds;
mod parse;
mod shape;

use proc_macro::TokenStream;

/// Expands a network declaration; see `kiln::network!` for the grammar.
#[proc_macro]
pub fn network_impl(input: TokenStream) -> TokenStream {
    let def = syn::parse_macro_input!(input as parse::Invocation);
    match ir::lower(def).and_then(|net| shape::infer(net)) {
        Ok(net) => emit::emit(&net).into(),
        Err(e) => e.to_compile_error().into(),
    }
}
