//! `PReLU` (one learned slope, PyTorch's `nn.PReLU()`), `PReLU(C)` /
//! `PReLU(num_parameters = C)` (one slope per channel: the first per-sample
//! dimension, checked), option `init = 0.25`. The output has the input's
//! shape.

use super::args::{check_names, int, named};
use super::{shape_ty, Entry, Rule, ShapeIn};
use crate::diag::{dims, Diag};
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["PReLU", "PRelu", "prelu"],
    parse,
};

struct PRelu {
    /// `None` for one shared slope.
    channels: Option<usize>,
    init: TokenStream,
}

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let name = spec.ident().to_string();
    let args = spec.args.clone().unwrap_or_default();
    if !check_names(spec, &args, &["num_parameters", "init"], diag) {
        return None;
    }
    let count = match (args.positional.as_slice(), named(&args, "num_parameters")) {
        ([], None) => None,
        ([c], None) | ([], Some(c)) => Some(int(c, "the number of slopes", diag)?),
        _ => {
            diag.error(
                spec.span,
                format!("`{name}` takes at most its number of slopes: `{name}`, `{name}(16)` or `{name}(num_parameters = 16)`"),
            );
            return None;
        }
    };
    let channels = match count {
        Some(0) => {
            diag.error(spec.span, format!("`{name}(0)`: the number of slopes must be at least 1"));
            return None;
        }
        Some(1) | None => None,
        c => c,
    };
    let init = named(&args, "init").map_or(quote!(0.25), |e| quote!(#e));
    Some(Box::new(PRelu { channels, init }))
}

impl Rule for PRelu {
    fn is_field(&self) -> bool {
        true
    }

    /// Rule: any input; with `C` slopes its first dimension is `C`; the output
    /// has the input's shape.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let ShapeIn {
            who, input, from, ..
        } = *s;
        if let Some(c) = self.channels {
            if input.first() != Some(&c) {
                return Err(format!(
                    "`{who}` has {c} slopes, one per channel, but `{from}` gives {} channels (shape {}); the channel is the first dimension",
                    input.first().copied().unwrap_or(0),
                    dims(input)
                ));
            }
        }
        Ok(input.to_vec())
    }

    fn ty(&self, k: &TokenStream, input: &[usize], _out: &[usize]) -> TokenStream {
        let s = shape_ty(k, input);
        let c = self.channels.unwrap_or(1);
        quote!(#k::layers::PRelu<E, D, #s, #c>)
    }

    fn config(&self, k: &TokenStream) -> TokenStream {
        let init = &self.init;
        quote!(#k::layers::PReluConfig { init: (#init) as f64 })
    }

    fn config_ty(&self, k: &TokenStream) -> TokenStream {
        quote!(#k::layers::PReluConfig)
    }

    /// One slope per channel.
    fn params(&self, _input: &[usize], _out: &[usize], _ty: &TokenStream) -> TokenStream {
        let n = self.channels.unwrap_or(1);
        quote!(#n)
    }
}
