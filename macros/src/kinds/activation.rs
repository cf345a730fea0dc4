//! Elementwise activations: `relu`, `sigmoid`, `tanh` (no arguments),
//! `leaky_relu(alpha)` (default slope 0.01) and `gelu` / `Gelu` (PyTorch's
//! exact `nn.GELU()`; `Gelu(approximate = "tanh")` for its tanh form).
//! Stateless: built in place where they are called; the output has the
//! input's shape.

use super::args::no_args;
use super::{shape_ty, Entry, Rule, ShapeIn};
use crate::diag::Diag;
use crate::parse::{Args, Spec};
use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::spanned::Spanned;

pub const KIND: Entry = Entry {
    names: &[
        "relu",
        "Relu",
        "sigmoid",
        "Sigmoid",
        "tanh",
        "Tanh",
        "leaky_relu",
        "LeakyRelu",
        "gelu",
        "Gelu",
    ],
    parse,
};

enum Act {
    Relu,
    Sigmoid,
    Tanh,
    /// With the slope expression as written.
    LeakyRelu(TokenStream),
    /// `true` for `approximate = "tanh"`.
    Gelu(bool),
}

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let args = spec.args.clone().unwrap_or_default();
    let act = match spec.ident().to_string().as_str() {
        "relu" | "Relu" => Act::Relu,
        "sigmoid" | "Sigmoid" => Act::Sigmoid,
        "tanh" | "Tanh" => Act::Tanh,
        "gelu" | "Gelu" => return parse_gelu(spec, &args, diag),
        _ => {
            let alpha = match (args.positional.as_slice(), args.named.as_slice()) {
                ([], []) => quote!(0.01),
                ([a], []) => a.to_token_stream(),
                ([], [(n, a)]) if n == "alpha" => a.to_token_stream(),
                _ => {
                    diag.error_range(
                        spec.range(),
                        "`LeakyRelu` takes its negative slope: `LeakyRelu(0.1)`",
                    );
                    return None;
                }
            };
            return Some(Box::new(Act::LeakyRelu(alpha)));
        }
    };
    no_args(spec, diag);
    Some(Box::new(act))
}

/// `gelu`, `Gelu`, `Gelu(approximate = "none")`, `Gelu(approximate = "tanh")`.
fn parse_gelu(spec: &Spec, args: &Args, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let usage = "`Gelu` takes one option, `approximate = \"none\"` (the default, exact) or `approximate = \"tanh\"`";
    let tanh = match (args.positional.as_slice(), args.named.as_slice()) {
        ([], []) => false,
        ([], [(n, e)]) if n == "approximate" => match e {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) if s.value() == "none" || s.value() == "tanh" => s.value() == "tanh",
            _ => {
                diag.error(e.span(), usage);
                return None;
            }
        },
        _ => {
            diag.error_range(spec.range(), usage);
            return None;
        }
    };
    Some(Box::new(Act::Gelu(tanh)))
}

impl Rule for Act {
    fn symbolic(&self) -> bool {
        true
    }

    fn elementwise(&self) -> bool {
        true
    }

    fn is_field(&self) -> bool {
        false
    }

    /// Rule: any input; the output has its shape.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        Ok(s.input.to_vec())
    }

    fn ty(&self, k: &TokenStream, input: &[usize], _out: &[usize]) -> TokenStream {
        let si = shape_ty(k, input);
        match self {
            Act::Relu => quote!(#k::layers::Relu<#si>),
            Act::Sigmoid => quote!(#k::layers::Sigmoid<#si>),
            Act::Tanh => quote!(#k::layers::Tanh<#si>),
            Act::LeakyRelu(_) => quote!(#k::layers::LeakyRelu<#si>),
            Act::Gelu(_) => quote!(#k::layers::Gelu<#si>),
        }
    }

    fn inline(&self, ty: &TokenStream) -> TokenStream {
        match self {
            Act::LeakyRelu(a) => quote!(<#ty>::new((#a) as f64)),
            Act::Gelu(true) => quote!(<#ty>::approximate_tanh()),
            _ => quote!(<#ty as ::core::default::Default>::default()),
        }
    }
}
