//! `ConvTranspose2d(out, kernel = k)`, the options of `Conv2d` and
//! `output_padding`: the transposed convolution (learned upsampling).

use super::args::pair_tokens;
use super::conv2d::{check_groups, conv_args, Conv};
use super::image::{chw, check_channels, need_image};
use super::{Entry, Rule, ShapeIn};
use crate::diag::Diag;
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["ConvTranspose2d"],
    parse,
};

struct ConvTranspose2d(Conv);

fn parse(spec: &Spec, k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    Some(Box::new(ConvTranspose2d(conv_args(spec, true, k, diag)?)))
}

impl Rule for ConvTranspose2d {
    fn is_field(&self) -> bool {
        true
    }

    /// The size formula with its numbers, and the `output_padding` that
    /// would give one more row or column (a stride-`s` transposed
    /// convolution has `s` inputs' worth of sizes that map to one output).
    fn explain_out(&self, input: &[usize], out: &[usize]) -> Option<String> {
        let c = &self.0;
        let (h, oh, ow) = (*input.get(1)?, *out.get(1)?, *out.get(2)?);
        let (k, s, p, d, op) = (c.kernel.0, c.stride.0, c.padding.0, c.dilation.0, c.output_padding.0);
        let more = if op + 1 < s.max(d) {
            format!("; `output_padding = {}` gives {}×{}", op + 1, oh + 1, ow + 1)
        } else {
            String::new()
        };
        Some(format!(
            "rows: ({h} − 1)×{s} − 2×{p} + {d}×({k} − 1) + {op} + 1 = {oh}{more}"
        ))
    }

    /// Rule: as `Conv2d` for channels and groups; each output side is
    /// `(N − 1)·S + D(K − 1) + OP + 1 − 2P`, which must be positive, with
    /// `OP` below the stride or the dilation.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let (c, who, from) = (&self.0, s.who, s.from);
        let (ci, h, w) = need_image(who, s.input, from)?;
        check_channels(who, c.cin, ci, s.input, from)?;
        check_groups(who, c, ci, from)?;
        let out = |n: usize,
                   k: usize,
                   s: usize,
                   p: usize,
                   d: usize,
                   op: usize|
         -> Result<usize, String> {
            let full = (n - 1) * s + d * (k - 1) + op + 1;
            if s == 0 || k == 0 || d == 0 || full <= 2 * p || (op >= s && op >= d) {
                return Err(format!("`{who}`: stride {s}, kernel {k}, padding {p}, output_padding {op} give no valid output size for input size {n}"));
            }
            Ok(full - 2 * p)
        };
        let oh = out(
            h,
            c.kernel.0,
            c.stride.0,
            c.padding.0,
            c.dilation.0,
            c.output_padding.0,
        )?;
        let ow = out(
            w,
            c.kernel.1,
            c.stride.1,
            c.padding.1,
            c.dilation.1,
            c.output_padding.1,
        )?;
        Ok(vec![c.cout, oh, ow])
    }

    fn ty(&self, k: &TokenStream, input: &[usize], out: &[usize]) -> TokenStream {
        let ((c, h, w), (oc, oh, ow)) = (chw(input), chw(out));
        let (og, (kh, kw)) = (oc / self.0.groups.max(1), self.0.kernel);
        quote!(#k::layers::ConvTranspose2d<E, D, #c, #oc, #og, #kh, #kw, #h, #w, #oh, #ow>)
    }

    fn config(&self, k: &TokenStream) -> TokenStream {
        let c = &self.0;
        let (s, p, op, d, g, b, i) = (
            pair_tokens(&c.stride),
            pair_tokens(&c.padding),
            pair_tokens(&c.output_padding),
            pair_tokens(&c.dilation),
            c.groups,
            c.bias,
            &c.init,
        );
        quote!(#k::layers::ConvTranspose2dConfig { stride: #s, padding: #p, output_padding: #op, dilation: #d, groups: #g, bias: #b, init: #i })
    }

    fn config_ty(&self, k: &TokenStream) -> TokenStream {
        quote!(#k::layers::ConvTranspose2dConfig)
    }

    /// `in × out/groups × kh × kw` weights and `out` biases.
    fn params(&self, input: &[usize], out: &[usize], _ty: &TokenStream) -> TokenStream {
        let c = &self.0;
        let n = input[0] * (out[0] / c.groups.max(1)) * c.kernel.0 * c.kernel.1
            + if c.bias { c.cout } else { 0 };
        quote!(#n)
    }
}
