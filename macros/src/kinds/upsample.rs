//! `Upsample(scale)` (default 2; also `scale = …`), option
//! `mode = nearest | bilinear`: integer upsampling of an image.

use super::args::{check_names, named, pair, pair_tokens, Pair};
use super::image::{chw, need_image};
use super::{Entry, Rule, ShapeIn};
use crate::diag::Diag;
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;

pub const KIND: Entry = Entry {
    names: &["Upsample"],
    parse,
};

struct Upsample {
    scale: Pair,
    bilinear: bool,
}

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let args = spec.args.clone().unwrap_or_default();
    if !check_names(spec, &args, &["scale", "mode"], diag) {
        return None;
    }
    let scale = match (args.positional.as_slice(), named(&args, "scale")) {
        ([e], None) | ([], Some(e)) => pair(e, "the scale factor", diag)?,
        ([], None) => (2, 2),
        _ => {
            diag.error(
                spec.span,
                "`Upsample` takes its integer scale factor: `Upsample(2, mode = bilinear)`",
            );
            return None;
        }
    };
    let bilinear = match named(&args, "mode") {
        None => false,
        Some(syn::Expr::Path(p)) if p.path.is_ident("nearest") => false,
        Some(syn::Expr::Path(p)) if p.path.is_ident("bilinear") => true,
        Some(e) => {
            diag.error(e.span(), "`mode` is `nearest` or `bilinear`");
            return None;
        }
    };
    Some(Box::new(Upsample { scale, bilinear }))
}

impl Rule for Upsample {
    fn is_field(&self) -> bool {
        true
    }

    /// Rule: the input is an image; each side is multiplied by its factor.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let (c, h, w) = need_image(s.who, s.input, s.from)?;
        if self.scale.0 == 0 || self.scale.1 == 0 {
            return Err(format!(
                "`{}`: the scale factor must be at least 1",
                s.who
            ));
        }
        Ok(vec![c, h * self.scale.0, w * self.scale.1])
    }

    fn ty(&self, k: &TokenStream, input: &[usize], out: &[usize]) -> TokenStream {
        let ((c, h, w), (_, oh, ow)) = (chw(input), chw(out));
        quote!(#k::layers::Upsample<#c, #h, #w, #oh, #ow>)
    }

    fn config(&self, k: &TokenStream) -> TokenStream {
        let s = pair_tokens(&self.scale);
        let m = if self.bilinear {
            quote!(Bilinear)
        } else {
            quote!(Nearest)
        };
        quote!(#k::layers::UpsampleConfig { scale: #s, mode: #k::device::UpsampleMode::#m })
    }

    fn config_ty(&self, k: &TokenStream) -> TokenStream {
        quote!(#k::layers::UpsampleConfig)
    }
}
