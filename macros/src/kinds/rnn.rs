//! `RNN(H)` or `RNN(I, H)` (PyTorch's argument order, the input size
//! checked), options `nonlinearity = "tanh"` (or `"relu"`) and `bias = true`:
//! an Elman RNN over a sequence `[T, I]` returning every hidden state,
//! `[T, H]` (`nn.RNN(I, H, nonlinearity=…, batch_first=True)` with a zero
//! initial state).

use super::args::{boolean, check_names, named, size};
use super::{Entry, Rule, ShapeIn};
use crate::diag::{dims, Diag};
use crate::dim;
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;

pub const KIND: Entry = Entry {
    names: &["RNN", "Rnn"],
    parse,
};

struct Rnn {
    /// The declared input size, checked against the sequence's width.
    inp: Option<usize>,
    hidden: usize,
    bias: bool,
    relu: bool,
}

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let name = spec.ident().to_string();
    let args = spec.args.clone().unwrap_or_default();
    if !check_names(spec, &args, &["nonlinearity", "bias"], diag) {
        return None;
    }
    let (inp, hidden) = match args.positional.as_slice() {
        [h] => (None, size(h, "the hidden size", diag)?),
        [i, h] => {
            let i = size(i, "the input size", diag);
            let h = size(h, "the hidden size", diag);
            (Some(i?), h?)
        }
        _ => {
            diag.error_range(
                spec.range(),
                format!("`{name}` takes its hidden size, `{name}(128)`, or input and hidden sizes, `{name}(64, 128)`"),
            );
            return None;
        }
    };
    let bias = match named(&args, "bias") {
        Some(e) => boolean(e, "`bias`", diag)?,
        None => true,
    };
    let relu = match named(&args, "nonlinearity") {
        None => false,
        Some(syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        })) if s.value() == "tanh" || s.value() == "relu" => s.value() == "relu",
        Some(e) => {
            diag.error(
                e.span(),
                format!("`{name}`'s `nonlinearity` is `\"tanh\"` (the default) or `\"relu\"`, as PyTorch's"),
            );
            return None;
        }
    };
    Some(Box::new(Rnn {
        inp,
        hidden,
        bias,
        relu,
    }))
}

impl Rule for Rnn {
    fn is_field(&self) -> bool {
        true
    }

    /// Rule: the input is a sequence `[T, I]` (with `I` the declared input
    /// size if one is written); the output is `[T, H]`.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let ShapeIn {
            who, input, from, ..
        } = *s;
        if self.hidden == 0 || self.inp == Some(0) {
            return Err(format!(
                "`{who}` has a zero-sized dimension; every dimension must be at least 1"
            ));
        }
        let [t, i] = input else {
            return Err(format!(
                "`{who}` reads a sequence [T, features] but `{from}` gives shape {} (rank {}); an RNN needs rank 2",
                dims(input),
                input.len()
            ));
        };
        if let Some(d) = self.inp {
            if !dim::same(d, *i) {
                return Err(format!(
                    "`{who}` expects {} input features per step but `{from}` gives {} (shape {})",
                    dim::text(d),
                    dim::text(*i),
                    dims(input)
                ));
            }
        }
        Ok(vec![*t, self.hidden])
    }

    fn ty(&self, k: &TokenStream, input: &[usize], _out: &[usize]) -> TokenStream {
        let (t, i) = (dim::tokens(input[0]), dim::tokens(input[1]));
        let h = dim::tokens(self.hidden);
        quote!(#k::layers::Rnn<E, D, #t, #i, #h>)
    }

    fn config(&self, k: &TokenStream) -> TokenStream {
        let bias = self.bias;
        let f = if self.relu {
            quote!(Relu)
        } else {
            quote!(Tanh)
        };
        quote!(#k::layers::RnnConfig { bias: #bias, nonlinearity: #k::layers::RnnNonlinearity::#f })
    }

    fn config_ty(&self, k: &TokenStream) -> TokenStream {
        quote!(#k::layers::RnnConfig)
    }

    /// `H·I + H·H` weights and `2·H` biases.
    fn params(&self, input: &[usize], _out: &[usize], _ty: &TokenStream) -> TokenStream {
        let (i, h) = (input[1], self.hidden);
        let b = if self.bias { 2 } else { 0 };
        if dim::is_known(i) && dim::is_known(h) {
            let n = h * (i + h + b);
            return quote!(#n);
        }
        let (i, h) = (dim::tokens(i), dim::tokens(h));
        quote!((#h * (#i + #h + #b)))
    }

    fn symbolic(&self) -> bool {
        true
    }
}
