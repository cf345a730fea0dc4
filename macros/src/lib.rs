//! The `network!` procedural macro of kiln: a thin translator.
//!
//! parse (`parse.rs`) → graph IR with spans (`ir.rs`) → shape inference
//! (`shape.rs`), asking each layer's kind for its rule (`kinds/`, one file per
//! kind) → diagnostics collected in one pass (`diag.rs`) → code generation
//! (`emit.rs`), one function per generated item.
//!
//! It is invoked through `kiln::network!`, a `macro_rules!` wrapper that
//! passes `$crate` first, so generated paths resolve from any crate, under any
//! name the user gives the dependency.

mod diag;
mod dim;
mod emit;
mod ir;
mod kinds;
mod parse;
mod shape;
#[cfg(test)]
mod tests;

/// Expands a network declaration; see `kiln::network!` for the grammar.
#[proc_macro]
pub fn network_impl(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    expand(input.into()).into()
}

/// The whole pipeline on `proc_macro2` tokens, so that it also runs outside
/// the compiler (the expansion test in `tests.rs`). Name errors (lowering)
/// and shape errors (inference) go to one collector and are reported
/// together; code is emitted only when there are none.
fn expand(input: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    dim::reset();
    let inv = match syn::parse2::<parse::Invocation>(input) {
        Ok(inv) => inv,
        Err(e) => {
            dim::finish();
            return e.to_compile_error();
        }
    };
    let mut diag = diag::Diag::new();
    let mut net = ir::lower(inv, &mut diag);
    shape::infer(&mut net, &mut diag);
    let out = match diag.finish() {
        Ok(()) => emit::emit(&net),
        Err(e) => e.to_compile_error(),
    };
    drop(net);
    dim::finish();
    out
}
