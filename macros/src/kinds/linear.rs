//! `Linear(out)` or `Linear(in, out)` (PyTorch's argument order), options
//! `bias = true`, `init = torch_default`: a dense layer on a vector of
//! features.

use super::args::{boolean, init, size};
use super::{Entry, Rule, ShapeIn};
use crate::diag::{dims, numel_expl, Diag};
use crate::dim;
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["Linear"],
    parse,
};

struct Linear {
    /// The declared input width, checked against the inferred one.
    inp: Option<usize>,
    out: usize,
    bias: bool,
    init: TokenStream,
}

fn parse(spec: &Spec, k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let args = spec.args.clone().unwrap_or_default();
    let (inp, out) = match args.positional.as_slice() {
        [o] => (None, size(o, "`Linear`'s output size", diag)?),
        [i, o] => {
            let i = size(i, "`Linear`'s input size", diag);
            let o = size(o, "`Linear`'s output size", diag);
            (Some(i?), o?)
        }
        _ => {
            diag.error_range(
                spec.range(),
                "`Linear` takes its number of output features, `Linear(256)`, or input and output features, `Linear(784, 256)`",
            );
            return None;
        }
    };
    let mut bias = true;
    let mut ini = quote!(#k::Init::TorchDefault);
    for (n, e) in &args.named {
        match n.to_string().as_str() {
            "bias" => bias = boolean(e, "`bias`", diag)?,
            "init" => ini = init(e, k, diag)?,
            other => {
                diag.error(
                    n.span(),
                    format!("`Linear` has no option `{other}` (options: `bias`, `init`)"),
                );
                return None;
            }
        }
    }
    Some(Box::new(Linear {
        inp,
        out,
        bias,
        init: ini,
    }))
}

impl Rule for Linear {
    fn is_field(&self) -> bool {
        true
    }

    /// Rule: the input is a vector (else: insert `flatten`), of the declared
    /// width if one is written; the output has `out` features.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let ShapeIn {
            who,
            input,
            from,
            origin,
            ..
        } = *s;
        if self.out == 0 || self.inp == Some(0) {
            return Err(format!(
                "`{who}` has a zero-sized dimension; every dimension must be at least 1"
            ));
        }
        if input.len() != 1 {
            return Err(format!(
                "`{who}` expects a vector of features but `{from}` gives shape {} ({} values); insert `flatten` before it",
                dims(input),
                numel_expl(input)
            ));
        }
        if let Some(i) = self.inp {
            if !dim::same(i, input[0]) {
                return Err(format!(
                    "`{who}` expects {i} input features but `{from}` gives {}",
                    numel_expl(origin)
                ));
            }
        }
        Ok(vec![self.out])
    }

    fn ty(&self, k: &TokenStream, input: &[usize], _out: &[usize]) -> TokenStream {
        let (i, o) = (dim::tokens(input[0]), dim::tokens(self.out));
        quote!(#k::layers::Linear<E, D, #i, #o>)
    }

    fn config(&self, k: &TokenStream) -> TokenStream {
        let (bias, init) = (self.bias, &self.init);
        quote!(#k::layers::LinearConfig { bias: #bias, init: #init })
    }

    fn config_ty(&self, k: &TokenStream) -> TokenStream {
        quote!(#k::layers::LinearConfig)
    }

    /// `in × out` weights and `out` biases.
    fn params(&self, input: &[usize], _out: &[usize], _ty: &TokenStream) -> TokenStream {
        if dim::is_known(input[0]) && dim::is_known(self.out) {
            let n = input[0] * self.out + if self.bias { self.out } else { 0 };
            return quote!(#n);
        }
        let (i, o) = (dim::tokens(input[0]), dim::tokens(self.out));
        if self.bias {
            quote!((#i * #o + #o))
        } else {
            quote!((#i * #o))
        }
    }

    fn symbolic(&self) -> bool {
        true
    }
}
