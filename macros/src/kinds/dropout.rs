//! `Dropout(p)` (default 0.5; also `p = …`): zeroes each value with
//! probability `p` in training, the identity in evaluation.

use super::args::{check_names, named};
use super::{shape_ty, Entry, Rule, ShapeIn};
use crate::diag::Diag;
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["Dropout", "dropout"],
    parse,
};

struct Dropout {
    p: TokenStream,
}

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let args = spec.args.clone().unwrap_or_default();
    if !check_names(spec, &args, &["p"], diag) {
        return None;
    }
    let p = match (args.positional.as_slice(), named(&args, "p")) {
        ([e], None) | ([], Some(e)) => quote!(#e),
        ([], None) => quote!(0.5),
        _ => {
            diag.error(
                spec.span,
                "`Dropout` takes its drop probability: `Dropout(0.5)`",
            );
            return None;
        }
    };
    Some(Box::new(Dropout { p }))
}

impl Rule for Dropout {
    /// A field: it holds its probability, checked when it is built.
    fn symbolic(&self) -> bool {
        true
    }

    fn is_field(&self) -> bool {
        true
    }

    /// Rule: any input; the output has its shape.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        Ok(s.input.to_vec())
    }

    fn ty(&self, k: &TokenStream, input: &[usize], _out: &[usize]) -> TokenStream {
        let s = shape_ty(k, input);
        quote!(#k::layers::Dropout<#s>)
    }

    fn config(&self, k: &TokenStream) -> TokenStream {
        let p = &self.p;
        quote!(#k::layers::DropoutConfig { p: (#p) as f64 })
    }

    fn config_ty(&self, k: &TokenStream) -> TokenStream {
        quote!(#k::layers::DropoutConfig)
    }
}
