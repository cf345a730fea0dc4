//! `MaskedConv2d(out, kernel = k, mask = "A")` or
//! `MaskedConv2d(in, out, kernel = k, mask = "B")`, options `padding`,
//! `dilation`, `groups`, `bias`, `init` as `Conv2d`'s: a PixelCNN masked
//! convolution (`kiln::layers::MaskedConv2d`). The mask is `"A"` (the first
//! layer: the centre pixel excluded) or `"B"` (the default: included); the
//! kernel's sides must be odd (the mask is defined around a centre) and the
//! stride is 1 (no `stride` option). The shape rule and the parameter count
//! are `Conv2d`'s.

use super::args::{check_names, named, pair_tokens};
use super::conv2d::{conv_args, Conv2d};
use super::image::chw;
use super::{Entry, Rule, ShapeIn};
use crate::diag::Diag;
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;

pub const KIND: Entry = Entry {
    names: &["MaskedConv2d"],
    parse,
};

struct MaskedConv2d {
    conv: Conv2d,
    /// `true` for mask type A.
    a: bool,
}

fn parse(spec: &Spec, k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let name = spec.ident().to_string();
    let args = spec.args.clone().unwrap_or_default();
    let allowed = [
        "kernel", "mask", "padding", "dilation", "groups", "bias", "init",
    ];
    if !check_names(spec, &args, &allowed, diag) {
        return None;
    }
    let a = match named(&args, "mask") {
        None => false,
        Some(syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        })) if s.value() == "A" || s.value() == "B" => s.value() == "A",
        Some(e) => {
            diag.error(
                e.span(),
                format!("`{name}`'s `mask` is `\"A\"` (first layer: the centre pixel excluded) or `\"B\"` (later layers, the default)"),
            );
            return None;
        }
    };
    // `conv_args` reads the options `Conv2d` shares; the mask is read above.
    let mut conv_spec = spec.clone();
    if let Some(a) = &mut conv_spec.args {
        a.named.retain(|(n, _)| n != "mask");
    }
    let conv = conv_args(&conv_spec, false, k, diag)?;
    if conv.kernel.0.is_multiple_of(2) || conv.kernel.1.is_multiple_of(2) {
        let at = named(&args, "kernel").map_or(spec.span, |e| e.span());
        diag.error(
            at,
            format!(
                "`{name}`'s kernel {}×{} has no centre pixel for the mask: both sides must be odd",
                conv.kernel.0, conv.kernel.1
            ),
        );
        return None;
    }
    Some(Box::new(MaskedConv2d {
        conv: Conv2d(conv),
        a,
    }))
}

impl Rule for MaskedConv2d {
    fn is_field(&self) -> bool {
        true
    }

    fn explain_out(&self, input: &[usize], out: &[usize]) -> Option<String> {
        self.conv.explain_out(input, out)
    }

    /// Rule: `Conv2d`'s (stride 1).
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        self.conv.out_shape(s)
    }

    /// `Conv2d`'s generic arguments.
    fn ty(&self, k: &TokenStream, input: &[usize], out: &[usize]) -> TokenStream {
        let ((c, h, w), (oc, oh, ow)) = (chw(input), chw(out));
        let c0 = &self.conv.0;
        let (cg, (kh, kw)) = (c / c0.groups.max(1), c0.kernel);
        quote!(#k::layers::MaskedConv2d<E, D, #c, #oc, #cg, #kh, #kw, #h, #w, #oh, #ow>)
    }

    fn config(&self, k: &TokenStream) -> TokenStream {
        let c = &self.conv.0;
        let (p, d, g, b, i) = (
            pair_tokens(&c.padding),
            pair_tokens(&c.dilation),
            c.groups,
            c.bias,
            &c.init,
        );
        let m = if self.a { quote!(A) } else { quote!(B) };
        quote!(#k::layers::MaskedConv2dConfig { mask: #k::layers::MaskType::#m, padding: #p, dilation: #d, groups: #g, bias: #b, init: #i })
    }

    fn config_ty(&self, k: &TokenStream) -> TokenStream {
        quote!(#k::layers::MaskedConv2dConfig)
    }

    /// `Conv2d`'s: every weight is stored, the masked-out ones included
    /// (PyTorch's count for a masked `nn.Conv2d`).
    fn params(&self, input: &[usize], out: &[usize], ty: &TokenStream) -> TokenStream {
        self.conv.params(input, out, ty)
    }
}
