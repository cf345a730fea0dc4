//! Pooling: `MaxPool2d(k)` (options `stride` = k, `padding`, `dilation`),
//! `AvgPool2d(k)` (options `stride`, `padding`) and `GlobalAvgPool` (no
//! arguments, `[C, H, W]` to `[C]`).

use super::args::{check_names, named, pair, pair_tokens, Pair};
use super::image::{chw, need_image, window_out};
use super::{Call, Entry, Rule, ShapeIn};
use crate::diag::Diag;
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["MaxPool2d", "AvgPool2d", "GlobalAvgPool", "global_avg_pool"],
    parse,
};

enum Pool {
    Max {
        kernel: Pair,
        stride: Pair,
        padding: Pair,
        dilation: Pair,
    },
    Avg {
        kernel: Pair,
        stride: Pair,
        padding: Pair,
    },
    Global,
}

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let name = spec.ident().to_string();
    let args = spec.args.clone().unwrap_or_default();
    if name == "GlobalAvgPool" || name == "global_avg_pool" {
        if spec
            .args
            .as_ref()
            .is_some_and(|a| !a.positional.is_empty() || !a.named.is_empty())
        {
            diag.error(spec.span, format!("`{name}` takes no arguments"));
            return None;
        }
        return Some(Box::new(Pool::Global));
    }
    let allowed: &[&str] = if name == "MaxPool2d" {
        &["kernel", "stride", "padding", "dilation"]
    } else {
        &["kernel", "stride", "padding"]
    };
    if !check_names(spec, &args, allowed, diag) {
        return None;
    }
    let kernel = match (args.positional.as_slice(), named(&args, "kernel")) {
        ([e], None) | ([], Some(e)) => pair(e, "the kernel size", diag)?,
        _ => {
            diag.error(spec.span, format!("`{name}` takes its kernel size: `{name}(2)` or `{name}(kernel = (2, 2), stride = 1)`"));
            return None;
        }
    };
    let p = |n: &str, d: Pair, diag: &mut Diag| {
        named(&args, n).map_or(Some(d), |e| pair(e, &format!("`{n}`"), diag))
    };
    let stride = p("stride", kernel, diag)?;
    let padding = p("padding", (0, 0), diag)?;
    if name == "MaxPool2d" {
        let dilation = p("dilation", (1, 1), diag)?;
        Some(Box::new(Pool::Max {
            kernel,
            stride,
            padding,
            dilation,
        }))
    } else {
        Some(Box::new(Pool::Avg {
            kernel,
            stride,
            padding,
        }))
    }
}

impl Rule for Pool {
    /// A field: the window geometry is checked once, when it is built.
    fn is_field(&self) -> bool {
        true
    }

    fn explain_out(&self, input: &[usize], _out: &[usize]) -> Option<String> {
        let (h, w) = (*input.get(1)?, *input.get(2)?);
        match self {
            Pool::Max {
                kernel,
                stride,
                padding,
                dilation,
            } => super::image::explain_windows((h, w), *kernel, *stride, *padding, *dilation),
            Pool::Avg {
                kernel,
                stride,
                padding,
            } => super::image::explain_windows((h, w), *kernel, *stride, *padding, (1, 1)),
            Pool::Global => None,
        }
    }

    /// Rule: the input is an image; each output side is
    /// `(H + 2P − D(K−1) − 1)/S + 1` (global pooling keeps the channels).
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let who = s.who;
        let (c, h, w) = need_image(who, s.input, s.from)?;
        let (kernel, stride, padding, dilation) = match self {
            Pool::Max {
                kernel,
                stride,
                padding,
                dilation,
            } => (kernel, stride, padding, *dilation),
            Pool::Avg {
                kernel,
                stride,
                padding,
            } => (kernel, stride, padding, (1, 1)),
            Pool::Global => return Ok(vec![c]),
        };
        Ok(vec![
            c,
            window_out(who, h, kernel.0, stride.0, padding.0, dilation.0, "rows")?,
            window_out(who, w, kernel.1, stride.1, padding.1, dilation.1, "columns")?,
        ])
    }

    fn ty(&self, k: &TokenStream, input: &[usize], out: &[usize]) -> TokenStream {
        let ((c, h, w), (_, oh, ow)) = (chw(input), chw(out));
        match self {
            Pool::Max { .. } => quote!(#k::layers::MaxPool2d<#c, #h, #w, #oh, #ow>),
            Pool::Avg { .. } => quote!(#k::layers::AvgPool2d<#c, #h, #w, #oh, #ow>),
            Pool::Global => quote!(#k::layers::GlobalAvgPool<#c, #h, #w>),
        }
    }

    fn config(&self, k: &TokenStream) -> TokenStream {
        let pr = pair_tokens;
        match self {
            Pool::Max {
                kernel,
                stride,
                padding,
                dilation,
            } => {
                let (kk, s, p, d) = (pr(kernel), pr(stride), pr(padding), pr(dilation));
                quote!(#k::layers::Pool2dConfig { kernel: #kk, stride: #s, padding: #p, dilation: #d })
            }
            Pool::Avg {
                kernel,
                stride,
                padding,
            } => {
                let (kk, s, p) = (pr(kernel), pr(stride), pr(padding));
                quote!(#k::layers::Pool2dConfig { kernel: #kk, stride: #s, padding: #p, dilation: (1, 1) })
            }
            Pool::Global => quote!(()),
        }
    }

    fn config_ty(&self, k: &TokenStream) -> TokenStream {
        match self {
            Pool::Global => quote!(()),
            _ => quote!(#k::layers::Pool2dConfig),
        }
    }

    /// Max pooling's cache (the argmax positions) is named, so that a
    /// `MaxUnpool2d` paired with it can read it (see `unpool.rs`).
    fn bounds(&self, c: &Call) -> TokenStream {
        let Call { k, si, so, .. } = c;
        match self {
            Pool::Max { .. } => {
                let ((ch, h, w), (_, oh, ow)) = (chw(c.input), chw(c.out));
                quote!(#k::Layer<E, D, In = #si, Out = #so, Cache = #k::layers::PoolIndices<D, #ch, #h, #w, #oh, #ow>>)
            }
            _ => quote!(#k::Layer<E, D, In = #si, Out = #so>),
        }
    }
}
