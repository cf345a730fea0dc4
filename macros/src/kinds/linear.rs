//! `Linear(out)` or `Linear(in, out)` (PyTorch's argument order), options
//! `bias = true`, `init = torch_default`: a dense layer on the last
//! dimension, applied at every position of the others as PyTorch's
//! `nn.Linear` (`[T, in]` → `[T, out]`, one GEMM over `B·T` rows).

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

    /// Rule: the last dimension of the input has the declared width if one
    /// is written; the output replaces it by `out`.
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
        let last = input[input.len() - 1];
        if let Some(i) = self.inp {
            if !dim::same(i, last) {
                let got = if input.len() == 1 {
                    numel_expl(origin)
                } else {
                    format!("shape {}, whose last dimension is {}", dims(input), dim::text(last))
                };
                return Err(format!(
                    "`{who}` expects {} input features but `{from}` gives {got}",
                    dim::text(i)
                ));
            }
        }
        let mut out = input.to_vec();
        match out.last_mut() {
            Some(last) => *last = self.out,
            None => return Err(format!("`{who}` needs an input with at least one dimension")),
        }
        Ok(out)
    }

    fn ty(&self, k: &TokenStream, input: &[usize], _out: &[usize]) -> TokenStream {
        let (lead, last) = input.split_at(input.len() - 1);
        let (i, o) = (dim::tokens(last[0]), dim::tokens(self.out));
        if lead.is_empty() {
            quote!(#k::layers::Linear<E, D, #i, #o>)
        } else {
            let l = super::shape_ty(k, lead);
            quote!(#k::layers::Linear<E, D, #i, #o, #l>)
        }
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
        let i = input[input.len() - 1];
        if dim::is_known(i) && dim::is_known(self.out) {
            let n = i * self.out + if self.bias { self.out } else { 0 };
            return quote!(#n);
        }
        let (i, o) = (dim::tokens(i), dim::tokens(self.out));
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
