//! `flatten`: any shape to a vector of its values. Stateless.

use super::args::no_args;
use super::{shape_ty, Entry, Rule, ShapeIn};
use crate::diag::Diag;
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["flatten", "Flatten"],
    parse,
};

struct Flatten;

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    no_args(spec, diag);
    Some(Box::new(Flatten))
}

impl Rule for Flatten {
    fn symbolic(&self) -> bool {
        true
    }

    fn is_field(&self) -> bool {
        false
    }

    /// Rule: any input; the output is the vector of its values.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        Ok(vec![crate::dim::product(s.input)?])
    }

    fn ty(&self, k: &TokenStream, input: &[usize], out: &[usize]) -> TokenStream {
        let (si, so) = (shape_ty(k, input), shape_ty(k, out));
        quote!(#k::layers::Flatten<#si, #so>)
    }

    /// A width after `flatten` reads `400 = 16×5×5` in messages.
    fn explains_features(&self) -> bool {
        true
    }
}
