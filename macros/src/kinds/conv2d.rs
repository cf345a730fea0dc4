//! `Conv2d(out, kernel = k)` or `Conv2d(in, out, kernel = k)`, options
//! `stride`, `padding`, `dilation`, `groups`, `bias`, `init`: a 2-d
//! convolution of an image `[C, H, W]`. The argument reading is shared with
//! `ConvTranspose2d` ([`conv_args`]).

use super::args::{boolean, check_names, init, int, named, pair, pair_tokens, Pair};
use super::image::{chw, check_channels, need_image, window_out};
use super::{Entry, Rule, ShapeIn};
use crate::diag::Diag;
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["Conv2d"],
    parse,
};

/// The arguments of a convolution, plain or transposed.
pub struct Conv {
    pub cin: Option<usize>,
    pub cout: usize,
    pub kernel: Pair,
    pub stride: Pair,
    pub padding: Pair,
    pub dilation: Pair,
    pub output_padding: Pair,
    pub groups: usize,
    pub bias: bool,
    pub init: TokenStream,
}

/// The `Conv2d` kind; `MaskedConv2d` shares its shape rule and parameter count.
pub struct Conv2d(pub Conv);

fn parse(spec: &Spec, k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    Some(Box::new(Conv2d(conv_args(spec, false, k, diag)?)))
}

/// Reads a convolution's arguments (`output_padding` only when transposed).
pub fn conv_args(spec: &Spec, transpose: bool, k: &TokenStream, diag: &mut Diag) -> Option<Conv> {
    let args = spec.args.clone().unwrap_or_default();
    let args = &args;
    let name = spec.ident().to_string();
    let mut allowed = vec![
        "kernel", "stride", "padding", "dilation", "groups", "bias", "init",
    ];
    if transpose {
        allowed.push("output_padding");
    }
    if !check_names(spec, args, &allowed, diag) {
        return None;
    }
    let (cin, cout) = match args.positional.as_slice() {
        [o] => (None, int(o, &format!("`{name}`'s output channels"), diag)?),
        [i, o] => (
            Some(int(i, &format!("`{name}`'s input channels"), diag)?),
            int(o, &format!("`{name}`'s output channels"), diag)?,
        ),
        _ => {
            diag.error(spec.span, format!("`{name}` takes its output channels and a kernel: `{name}(16, kernel = 3)`, or input and output channels: `{name}(6, 16, kernel = 5)`"));
            return None;
        }
    };
    let Some(ke) = named(args, "kernel") else {
        diag.error(
            spec.span,
            format!("`{name}` needs a kernel size: `{name}({cout}, kernel = 3)`"),
        );
        return None;
    };
    let kernel = pair(ke, "`kernel`", diag)?;
    let p = |n: &str, d: Pair, diag: &mut Diag| -> Option<Pair> {
        named(args, n).map_or(Some(d), |e| pair(e, &format!("`{n}`"), diag))
    };
    let stride = p("stride", (1, 1), diag)?;
    let padding = p("padding", (0, 0), diag)?;
    let dilation = p("dilation", (1, 1), diag)?;
    let output_padding = p("output_padding", (0, 0), diag)?;
    let groups = named(args, "groups").map_or(Some(1), |e| int(e, "`groups`", diag))?;
    let bias = named(args, "bias").map_or(Some(true), |e| boolean(e, "`bias`", diag))?;
    let init = match named(args, "init") {
        Some(e) => init(e, k, diag)?,
        None => quote!(#k::Init::TorchDefault),
    };
    Some(Conv {
        cin,
        cout,
        kernel,
        stride,
        padding,
        dilation,
        output_padding,
        groups,
        bias,
        init,
    })
}

/// Rule shared by both convolutions: the groups divide both channel counts.
pub fn check_groups(who: &str, c: &Conv, ci: usize, from: &str) -> Result<(), String> {
    if c.groups == 0 || !ci.is_multiple_of(c.groups) || !c.cout.is_multiple_of(c.groups) {
        return Err(format!(
            "`{who}`: {} groups must divide both the {ci} input channels (from `{from}`) and the {} output channels",
            c.groups, c.cout
        ));
    }
    Ok(())
}

impl Rule for Conv2d {
    fn is_field(&self) -> bool {
        true
    }

    fn explain_out(&self, input: &[usize], _out: &[usize]) -> Option<String> {
        let c = &self.0;
        let (_, h, w) = (input.first()?, *input.get(1)?, *input.get(2)?);
        super::image::explain_windows((h, w), c.kernel, c.stride, c.padding, c.dilation)
    }

    /// Rule: the input is an image with the declared channels (if written),
    /// the groups divide the channels, and each output side is
    /// `(H + 2P − D(K−1) − 1)/S + 1`.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let (c, who, from) = (&self.0, s.who, s.from);
        let (ci, h, w) = need_image(who, s.input, from)?;
        check_channels(who, c.cin, ci, s.input, from)?;
        check_groups(who, c, ci, from)?;
        if c.cout == 0 {
            return Err(format!(
                "`{who}` has zero output channels; every dimension must be at least 1"
            ));
        }
        let oh = window_out(
            who,
            h,
            c.kernel.0,
            c.stride.0,
            c.padding.0,
            c.dilation.0,
            "rows",
        )?;
        let ow = window_out(
            who,
            w,
            c.kernel.1,
            c.stride.1,
            c.padding.1,
            c.dilation.1,
            "columns",
        )?;
        Ok(vec![c.cout, oh, ow])
    }

    fn ty(&self, k: &TokenStream, input: &[usize], out: &[usize]) -> TokenStream {
        let ((c, h, w), (oc, oh, ow)) = (chw(input), chw(out));
        let (cg, (kh, kw)) = (c / self.0.groups.max(1), self.0.kernel);
        quote!(#k::layers::Conv2d<E, D, #c, #oc, #cg, #kh, #kw, #h, #w, #oh, #ow>)
    }

    fn config(&self, k: &TokenStream) -> TokenStream {
        let c = &self.0;
        let (s, p, d, g, b, i) = (
            pair_tokens(&c.stride),
            pair_tokens(&c.padding),
            pair_tokens(&c.dilation),
            c.groups,
            c.bias,
            &c.init,
        );
        quote!(#k::layers::Conv2dConfig { stride: #s, padding: #p, dilation: #d, groups: #g, bias: #b, init: #i })
    }

    fn config_ty(&self, k: &TokenStream) -> TokenStream {
        quote!(#k::layers::Conv2dConfig)
    }

    /// `out × in/groups × kh × kw` weights and `out` biases.
    fn params(&self, input: &[usize], _out: &[usize], _ty: &TokenStream) -> TokenStream {
        let c = &self.0;
        let n = c.cout * (input[0] / c.groups.max(1)) * c.kernel.0 * c.kernel.1
            + if c.bias { c.cout } else { 0 };
        quote!(#n)
    }
}
