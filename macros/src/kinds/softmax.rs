//! `softmax`: normalises a vector of scores into probabilities. Stateless.

use super::args::no_args;
use super::{shape_ty, Entry, Rule, ShapeIn};
use crate::diag::{dims, Diag};
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

    /// Rule: the input is a vector; the output has its shape.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        if s.input.len() != 1 {
            return Err(format!(
                "`{}` normalises a vector of scores but `{}` gives shape {}",
                s.who,
                s.from,
                dims(s.input)
            ));
        }
        Ok(s.input.to_vec())
    }

    fn ty(&self, k: &TokenStream, input: &[usize], _out: &[usize]) -> TokenStream {
        let si = shape_ty(k, input);
        quote!(#k::layers::Softmax<#si>)
    }
}
