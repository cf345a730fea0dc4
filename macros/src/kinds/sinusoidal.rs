//! `SinusoidalPositions` (also `sinusoidal_positions`): the fixed sinusoidal
//! encoding added to a sequence `[T, D]`; no arguments, no parameters (its
//! table is built by `init`). The output has the input's shape.

use super::args::no_args;
use super::{Entry, Rule, ShapeIn};
use crate::diag::{dims, Diag};
use crate::dim;
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["SinusoidalPositions", "sinusoidal_positions"],
    parse,
};

struct Sinusoidal;

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    no_args(spec, diag);
    Some(Box::new(Sinusoidal))
}

impl Rule for Sinusoidal {
    /// A field: it holds its table (not a parameter).
    fn is_field(&self) -> bool {
        true
    }

    /// Any length, generic ones included.
    fn symbolic(&self) -> bool {
        true
    }

    /// Rule: the input is a sequence `[T, D]`; the output has its shape.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        match s.input {
            [_, _] => Ok(s.input.to_vec()),
            other => Err(format!(
                "`{}` adds positions to a sequence [T, D] but `{}` gives {}",
                s.who,
                s.from,
                dims(other)
            )),
        }
    }

    fn ty(&self, k: &TokenStream, input: &[usize], _out: &[usize]) -> TokenStream {
        let (t, d) = (dim::tokens(input[0]), dim::tokens(input[1]));
        quote!(#k::layers::SinusoidalPositions<E, D, #t, #d>)
    }
}
