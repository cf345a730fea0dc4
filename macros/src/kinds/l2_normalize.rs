//! `L2Normalize` / `l2_normalize`: divides each row of the last dimension by
//! its L2 norm (`F.normalize(x, p=2, dim=-1)`), with the option `eps =
//! 1e-12` (the smallest denominator). Stateless: built in place where it is
//! called; the output has the input's shape (any shape is accepted, so the
//! kind has no shape mistake of its own).

use super::args::{check_names, named};
use super::{shape_ty, Entry, Rule, ShapeIn};
use crate::diag::Diag;
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["L2Normalize", "l2_normalize"],
    parse,
};

struct L2Normalize {
    /// The `eps` expression as written, or PyTorch's default.
    eps: TokenStream,
}

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let args = spec.args.clone().unwrap_or_default();
    if !check_names(spec, &args, &["eps"], diag) {
        return None;
    }
    if !args.positional.is_empty() {
        diag.error_range(
            spec.range(),
            "`L2Normalize` takes one option, the smallest denominator: `L2Normalize(eps = 1e-12)`",
        );
        return None;
    }
    let eps = named(&args, "eps").map_or(quote!(1e-12), |e| quote!(#e));
    Some(Box::new(L2Normalize { eps }))
}

impl Rule for L2Normalize {
    fn symbolic(&self) -> bool {
        true
    }

    fn is_field(&self) -> bool {
        false
    }

    /// Rule: any input (normalised over its last dimension); the output has
    /// its shape.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        Ok(s.input.to_vec())
    }

    fn ty(&self, k: &TokenStream, input: &[usize], _out: &[usize]) -> TokenStream {
        let si = shape_ty(k, input);
        quote!(#k::layers::L2Normalize<#si>)
    }

    fn inline(&self, ty: &TokenStream) -> TokenStream {
        let eps = &self.eps;
        quote!(<#ty>::new((#eps) as f64))
    }
}
