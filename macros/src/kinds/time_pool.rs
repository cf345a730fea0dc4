//! `mean_over_time` and `max_over_time` (no arguments): pool a sequence
//! `[T, F]` over its time axis into `[F]`, as PyTorch's `x.mean(dim=1)` and
//! `x.max(dim=1).values`. Stateless; `max_over_time` records its argmax in
//! its cache.

use super::args::no_args;
use super::{Entry, Rule, ShapeIn};
use crate::diag::{dims, Diag};
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;

pub const KIND: Entry = Entry {
    names: &[
        "mean_over_time",
        "MeanOverTime",
        "max_over_time",
        "MaxOverTime",
    ],
    parse,
};

struct TimePool {
    max: bool,
}

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    no_args(spec, diag);
    let max = matches!(
        spec.ident().to_string().as_str(),
        "max_over_time" | "MaxOverTime"
    );
    Some(Box::new(TimePool { max }))
}

impl Rule for TimePool {
    fn is_field(&self) -> bool {
        false
    }

    fn symbolic(&self) -> bool {
        true
    }

    /// Rule: the input is a sequence `[T, F]`; the output is `[F]`.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        match s.input {
            [_, f] => Ok(vec![*f]),
            _ => Err(format!(
                "`{}` pools a sequence `[T, F]` over its time axis but `{}` gives shape {}",
                s.who,
                s.from,
                dims(s.input)
            )),
        }
    }

    fn ty(&self, k: &TokenStream, input: &[usize], _out: &[usize]) -> TokenStream {
        let d: Vec<TokenStream> = input.iter().map(|x| crate::dim::tokens(*x)).collect();
        let (t, f) = (&d[0], &d[1]);
        if self.max {
            quote!(#k::layers::MaxOverTime<#t, #f>)
        } else {
            quote!(#k::layers::MeanOverTime<#t, #f>)
        }
    }
}
