//! `reshape([a, b])`: the same values in row-major order under another
//! per-sample shape of the same size (PyTorch's `x.reshape(B, a, b)`).
//! Stateless.

use super::{shape_ty, Entry, Rule, ShapeIn};
use crate::diag::{dims, Diag};
use crate::dim;
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;

pub const KIND: Entry = Entry {
    names: &["reshape", "Reshape"],
    parse,
};

struct Reshape {
    to: Vec<usize>,
}

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let args = spec.args.clone().unwrap_or_default();
    let arr = match (args.positional.as_slice(), args.named.as_slice()) {
        ([syn::Expr::Array(a)], []) => a,
        _ => {
            diag.error_range(
                spec.range(),
                "`reshape` takes the new per-sample shape: `reshape([4, 32])`",
            );
            return None;
        }
    };
    let mut to = Vec::new();
    for e in &arr.elems {
        match dim::eval(e) {
            Ok(0) => {
                diag.error(e.span(), "a zero-sized dimension is not allowed, every dimension must be at least 1");
                return None;
            }
            Ok(v) => to.push(v),
            Err(err) => {
                diag.push(err);
                return None;
            }
        }
    }
    if to.is_empty() || to.len() > 4 {
        diag.error(
            arr.span(),
            "`reshape` gives a shape of 1 to 4 dimensions per sample",
        );
        return None;
    }
    Some(Box::new(Reshape { to }))
}

impl Rule for Reshape {
    fn is_field(&self) -> bool {
        false
    }

    fn symbolic(&self) -> bool {
        true
    }

    /// Rule: the input and the new shape hold the same number of values.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let (a, b) = (dim::product(s.input)?, dim::product(&self.to)?);
        if !dim::same(a, b) {
            return Err(format!(
                "`{}` cannot reshape `{}` of shape {} ({} values) into {} ({} values): the sizes differ",
                s.who,
                s.from,
                dims(s.input),
                dim::text(a),
                dims(&self.to),
                dim::text(b)
            ));
        }
        Ok(self.to.clone())
    }

    fn ty(&self, k: &TokenStream, input: &[usize], out: &[usize]) -> TokenStream {
        let (si, so) = (shape_ty(k, input), shape_ty(k, out));
        quote!(#k::layers::Reshape<#si, #so>)
    }
}
