//! `LayerNorm` (the width is the input's last dimension) and `LayerNorm(D)`
//! (a declared width, checked against it), options `eps = 1e-5`,
//! `elementwise_affine = false` (no parameters), `bias = false` (`weight`
//! only). The output has the input's shape.

use super::args::{boolean, check_names, int, named};
use super::{shape_ty, Entry, Rule, ShapeIn};
use crate::diag::{dims, Diag};
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["LayerNorm"],
    parse,
};

struct LayerNorm {
    width: Option<usize>,
    eps: TokenStream,
    affine: bool,
    bias: bool,
}

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let args = spec.args.clone().unwrap_or_default();
    if !check_names(spec, &args, &["eps", "elementwise_affine", "bias"], diag) {
        return None;
    }
    let width = match args.positional.as_slice() {
        [] => None,
        [w] => Some(int(w, "the normalised width", diag)?),
        _ => {
            diag.error(
                spec.span,
                "`LayerNorm` takes at most the width of the last dimension: `LayerNorm(64)`",
            );
            return None;
        }
    };
    let flag = |name: &str, diag: &mut Diag| match named(&args, name) {
        Some(e) => boolean(e, &format!("`{name}`"), diag),
        None => Some(true),
    };
    let affine = flag("elementwise_affine", diag)?;
    let bias = flag("bias", diag)?;
    let eps = named(&args, "eps").map_or(quote!(1e-5), |e| quote!(#e));
    Some(Box::new(LayerNorm {
        width,
        eps,
        affine,
        bias,
    }))
}

impl LayerNorm {
    /// Learned values per normalised element: γ and β, γ only, or none.
    fn per_element(&self) -> usize {
        match (self.affine, self.bias) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => 2,
        }
    }
}

impl Rule for LayerNorm {
    fn is_field(&self) -> bool {
        true
    }

    /// Rule: any input; its last dimension is the declared width (if
    /// written); the output has the input's shape.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let ShapeIn {
            who, input, from, ..
        } = *s;
        let last = input.last().copied().unwrap_or(0);
        match self.width {
            Some(0) => Err(format!(
                "`{who}` has width 0; every dimension must be at least 1"
            )),
            Some(w) if w != last => Err(format!(
                "`{who}` normalises a last dimension of {w} but `{from}` gives {last} (shape {}); write `LayerNorm({last})` or `LayerNorm`",
                dims(input)
            )),
            _ => Ok(input.to_vec()),
        }
    }

    fn ty(&self, k: &TokenStream, input: &[usize], _out: &[usize]) -> TokenStream {
        let s = shape_ty(k, input);
        let n = input.last().copied().unwrap_or(0);
        quote!(#k::layers::LayerNorm<E, D, #s, #n>)
    }

    fn config(&self, k: &TokenStream) -> TokenStream {
        let (eps, affine, bias) = (&self.eps, self.affine, self.bias);
        quote!(#k::layers::LayerNormConfig { eps: (#eps) as f64, elementwise_affine: #affine, bias: #bias })
    }

    fn config_ty(&self, k: &TokenStream) -> TokenStream {
        quote!(#k::layers::LayerNormConfig)
    }

    fn params(&self, input: &[usize], _out: &[usize], _ty: &TokenStream) -> TokenStream {
        let n = self.per_element() * input.last().copied().unwrap_or(0);
        quote!(#n)
    }
}
