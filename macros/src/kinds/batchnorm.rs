//! `BatchNorm1d` (features `[C]` or `[C, L]`) and `BatchNorm2d` (images
//! `[C, H, W]`), an optional declared channel count, options `eps = 1e-5`,
//! `momentum = 0.1`.

use super::args::{check_names, int, named};
use super::image::check_channels;
use super::{shape_ty, Entry, Rule, ShapeIn};
use crate::diag::{dims, Diag};
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["BatchNorm1d", "BatchNorm2d"],
    parse,
};

struct BatchNorm {
    two_d: bool,
    channels: Option<usize>,
    eps: TokenStream,
    momentum: TokenStream,
}

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let name = spec.ident().to_string();
    let args = spec.args.clone().unwrap_or_default();
    if !check_names(spec, &args, &["eps", "momentum"], diag) {
        return None;
    }
    let channels = match args.positional.as_slice() {
        [] => None,
        [c] => Some(int(c, "the number of channels", diag)?),
        _ => {
            diag.error(
                spec.span,
                format!("`{name}` takes at most its number of channels: `{name}(16)`"),
            );
            return None;
        }
    };
    let eps = named(&args, "eps").map_or(quote!(1e-5), |e| quote!(#e));
    let momentum = named(&args, "momentum").map_or(quote!(0.1), |e| quote!(#e));
    Some(Box::new(BatchNorm {
        two_d: name == "BatchNorm2d",
        channels,
        eps,
        momentum,
    }))
}

impl Rule for BatchNorm {
    fn is_field(&self) -> bool {
        true
    }

    /// Rule: `BatchNorm2d` takes an image, `BatchNorm1d` features of rank 1
    /// or 2; the first dimension has the declared channels (if written); the
    /// output has the input's shape.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let ShapeIn {
            who, input, from, ..
        } = *s;
        let ok = if self.two_d {
            input.len() == 3
        } else {
            input.len() == 1 || input.len() == 2
        };
        if !ok {
            return Err(if self.two_d {
                format!(
                    "`{who}` normalises the channels of an image [C, H, W] but `{from}` gives {}{}",
                    dims(input),
                    if input.len() == 1 {
                        "; use `BatchNorm1d` after `flatten`"
                    } else {
                        ""
                    }
                )
            } else {
                format!("`{who}` normalises features [C] or [C, L] but `{from}` gives {}; use `BatchNorm2d` for images", dims(input))
            });
        }
        check_channels(who, self.channels, input[0], input, from)?;
        Ok(input.to_vec())
    }

    fn ty(&self, k: &TokenStream, input: &[usize], _out: &[usize]) -> TokenStream {
        let s = shape_ty(k, input);
        let c = input.first().copied().unwrap_or(0);
        quote!(#k::layers::BatchNorm<E, D, #s, #c>)
    }

    fn config(&self, k: &TokenStream) -> TokenStream {
        let (eps, momentum) = (&self.eps, &self.momentum);
        quote!(#k::layers::BatchNormConfig { eps: (#eps) as f64, momentum: (#momentum) as f64 })
    }

    fn config_ty(&self, k: &TokenStream) -> TokenStream {
        quote!(#k::layers::BatchNormConfig)
    }

    /// A scale and a shift per channel (running statistics are buffers).
    fn params(&self, input: &[usize], _out: &[usize], _ty: &TokenStream) -> TokenStream {
        let n = 2 * input[0];
        quote!(#n)
    }
}
