//! `softmax`: normalises scores into probabilities over the last dimension
//! (at every position of a sequence). Stateless.

use super::args::no_args;
use super::{shape_ty, Entry, Rule, ShapeIn};
use crate::diag::Diag;
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["softmax", "Softmax"],
    parse,
};

struct Softmax;

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    no_args(spec, diag);
    Some(Box::new(Softmax))
}

impl Rule for Softmax {
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
        quote!(#k::layers::Softmax<#si>)
    }
}
