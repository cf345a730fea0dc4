//! The image layer kinds (NCHW): convolution, pooling, batch norm, dropout,
//! transposed convolution, unpooling, upsampling. Like `kinds.rs`, each kind
//! has its argument reading, its shape rule (computed here, at expansion time,
//! so that all of this works on stable Rust), its Rust type and its config.

use crate::diag::{dims, Diag};
use crate::parse::{Args, Spec};
use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::Ident;

/// Names of the image layers (for suggestions).
pub const NAMES: &[&str] = &[
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "GlobalAvgPool",
    "global_avg_pool",
    "BatchNorm1d",
    "BatchNorm2d",
    "Dropout",
    "dropout",
    "ConvTranspose2d",
    "MaxUnpool2d",
    "Upsample",
];

type Pair = (usize, usize);

#[derive(Clone)]
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

#[derive(Clone)]
pub enum ImageKind {
    Conv2d(Conv),
    ConvTranspose2d(Conv),
    MaxPool2d {
        kernel: Pair,
        stride: Pair,
        padding: Pair,
        dilation: Pair,
    },
    AvgPool2d {
        kernel: Pair,
        stride: Pair,
        padding: Pair,
    },
    GlobalAvgPool,
    /// `BatchNorm1d` (rank 1 or 2 input) or `BatchNorm2d` (rank 3), with an
    /// optional declared channel count.
    BatchNorm {
        two_d: bool,
        channels: Option<usize>,
        eps: TokenStream,
        momentum: TokenStream,
    },
    Dropout {
        p: TokenStream,
    },
    Upsample {
        scale: Pair,
        bilinear: bool,
    },
    /// Paired with the `MaxPool2d` field named `pool`.
    MaxUnpool2d {
        pool: Ident,
    },
}

/// Reads `5` or `(5, 3)` as a pair.
fn pair(e: &syn::Expr, what: &str, diag: &mut Diag) -> Option<Pair> {
    let int = |e: &syn::Expr| -> Option<usize> {
        if let syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) = e
        {
            i.base10_parse::<usize>().ok()
        } else {
            None
        }
    };
    match e {
        syn::Expr::Tuple(t) if t.elems.len() == 2 => {
            if let (Some(a), Some(b)) = (int(&t.elems[0]), int(&t.elems[1])) {
                return Some((a, b));
            }
        }
        syn::Expr::Paren(p) => return pair(&p.expr, what, diag),
        _ => {
            if let Some(v) = int(e) {
                return Some((v, v));
            }
        }
    }
    diag.error(e.span(), format!("{what} must be an integer literal or a pair `(h, w)`: shapes are computed when the macro expands"));
    None
}

fn int(e: &syn::Expr, what: &str, diag: &mut Diag) -> Option<usize> {
    if let syn::Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Int(i),
        ..
    }) = e
    {
        if let Ok(v) = i.base10_parse::<usize>() {
            return Some(v);
        }
    }
    diag.error(e.span(), format!("{what} must be an integer literal"));
    None
}

fn boolean(e: &syn::Expr, what: &str, diag: &mut Diag) -> Option<bool> {
    if let syn::Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Bool(b),
        ..
    }) = e
    {
        return Some(b.value);
    }
    diag.error(e.span(), format!("{what} must be `true` or `false`"));
    None
}

/// Rejects named options not in `allowed`.
fn check_names(spec: &Spec, args: &Args, allowed: &[&str], diag: &mut Diag) -> bool {
    let mut ok = true;
    for (n, _) in &args.named {
        if !allowed.contains(&n.to_string().as_str()) {
            let list: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
            diag.error(
                n.span(),
                format!(
                    "`{}` has no option `{n}` (options: {})",
                    spec.ident(),
                    list.join(", ")
                ),
            );
            ok = false;
        }
    }
    ok
}

fn named<'a>(args: &'a Args, name: &str) -> Option<&'a syn::Expr> {
    args.named.iter().find(|(n, _)| n == name).map(|(_, e)| e)
}

fn conv_args(
    spec: &Spec,
    args: &Args,
    transpose: bool,
    k: &TokenStream,
    init: impl Fn(&syn::Expr, &mut Diag) -> Option<TokenStream>,
    diag: &mut Diag,
) -> Option<Conv> {
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
        Some(e) => init(e, diag)?,
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

/// Reads an image layer, or `None` (with an error reported) if the name is
/// not one or the arguments are wrong. `Ok(None)` means "not an image layer".
pub fn resolve(
    spec: &Spec,
    k: &TokenStream,
    init: impl Fn(&syn::Expr, &mut Diag) -> Option<TokenStream>,
    diag: &mut Diag,
) -> Result<Option<ImageKind>, ()> {
    let name = spec.ident().to_string();
    let args = spec.args.clone().unwrap_or_default();
    let none = |o: Option<ImageKind>| o.map(Some).ok_or(());
    match name.as_str() {
        "Conv2d" => none(conv_args(spec, &args, false, k, init, diag).map(ImageKind::Conv2d)),
        "ConvTranspose2d" => {
            none(conv_args(spec, &args, true, k, init, diag).map(ImageKind::ConvTranspose2d))
        }
        "MaxPool2d" | "AvgPool2d" => {
            let allowed: &[&str] = if name == "MaxPool2d" {
                &["kernel", "stride", "padding", "dilation"]
            } else {
                &["kernel", "stride", "padding"]
            };
            if !check_names(spec, &args, allowed, diag) {
                return Err(());
            }
            let kernel = match (args.positional.as_slice(), named(&args, "kernel")) {
                ([e], None) | ([], Some(e)) => pair(e, "the kernel size", diag).ok_or(())?,
                _ => {
                    diag.error(spec.span, format!("`{name}` takes its kernel size: `{name}(2)` or `{name}(kernel = (2, 2), stride = 1)`"));
                    return Err(());
                }
            };
            let p = |n: &str, d: Pair, diag: &mut Diag| {
                named(&args, n).map_or(Some(d), |e| pair(e, &format!("`{n}`"), diag))
            };
            let stride = p("stride", kernel, diag).ok_or(())?;
            let padding = p("padding", (0, 0), diag).ok_or(())?;
            if name == "MaxPool2d" {
                let dilation = p("dilation", (1, 1), diag).ok_or(())?;
                Ok(Some(ImageKind::MaxPool2d {
                    kernel,
                    stride,
                    padding,
                    dilation,
                }))
            } else {
                Ok(Some(ImageKind::AvgPool2d {
                    kernel,
                    stride,
                    padding,
                }))
            }
        }
        "GlobalAvgPool" | "global_avg_pool" => {
            if spec
                .args
                .as_ref()
                .is_some_and(|a| !a.positional.is_empty() || !a.named.is_empty())
            {
                diag.error(spec.span, format!("`{name}` takes no arguments"));
                return Err(());
            }
            Ok(Some(ImageKind::GlobalAvgPool))
        }
        "BatchNorm1d" | "BatchNorm2d" => {
            if !check_names(spec, &args, &["eps", "momentum"], diag) {
                return Err(());
            }
            let channels = match args.positional.as_slice() {
                [] => None,
                [c] => Some(int(c, "the number of channels", diag).ok_or(())?),
                _ => {
                    diag.error(
                        spec.span,
                        format!("`{name}` takes at most its number of channels: `{name}(16)`"),
                    );
                    return Err(());
                }
            };
            let eps = named(&args, "eps").map_or(quote!(1e-5), |e| quote!(#e));
            let momentum = named(&args, "momentum").map_or(quote!(0.1), |e| quote!(#e));
            Ok(Some(ImageKind::BatchNorm {
                two_d: name == "BatchNorm2d",
                channels,
                eps,
                momentum,
            }))
        }
        "Dropout" | "dropout" => {
            if !check_names(spec, &args, &["p"], diag) {
                return Err(());
            }
            let p = match (args.positional.as_slice(), named(&args, "p")) {
                ([e], None) | ([], Some(e)) => quote!(#e),
                ([], None) => quote!(0.5),
                _ => {
                    diag.error(
                        spec.span,
                        "`Dropout` takes its drop probability: `Dropout(0.5)`",
                    );
                    return Err(());
                }
            };
            Ok(Some(ImageKind::Dropout { p }))
        }
        "Upsample" => {
            if !check_names(spec, &args, &["scale", "mode"], diag) {
                return Err(());
            }
            let scale = match (args.positional.as_slice(), named(&args, "scale")) {
                ([e], None) | ([], Some(e)) => pair(e, "the scale factor", diag).ok_or(())?,
                ([], None) => (2, 2),
                _ => {
                    diag.error(
                        spec.span,
                        "`Upsample` takes its integer scale factor: `Upsample(2, mode = bilinear)`",
                    );
                    return Err(());
                }
            };
            let bilinear = match named(&args, "mode") {
                None => false,
                Some(syn::Expr::Path(p)) if p.path.is_ident("nearest") => false,
                Some(syn::Expr::Path(p)) if p.path.is_ident("bilinear") => true,
                Some(e) => {
                    diag.error(e.span(), "`mode` is `nearest` or `bilinear`");
                    return Err(());
                }
            };
            Ok(Some(ImageKind::Upsample { scale, bilinear }))
        }
        "MaxUnpool2d" => match (args.positional.as_slice(), args.named.is_empty()) {
            ([syn::Expr::Path(p)], true) if p.path.get_ident().is_some() => {
                Ok(Some(ImageKind::MaxUnpool2d {
                    pool: p.path.get_ident().cloned().ok_or(())?,
                }))
            }
            _ => {
                diag.error(spec.span, "`MaxUnpool2d` names the `MaxPool2d` whose positions it restores: `MaxUnpool2d(pool1)`");
                Err(())
            }
        },
        _ => Ok(None),
    }
}

fn need_image(who: &str, input: &[usize], from: &str) -> Result<(usize, usize, usize), String> {
    match input {
        [c, h, w] => Ok((*c, *h, *w)),
        _ => Err(format!(
            "`{who}` needs an image [C, H, W] but `{from}` gives {}{}",
            dims(input),
            if input.len() == 1 {
                "; it must come before `flatten`"
            } else {
                ""
            }
        )),
    }
}

/// `(H + 2p − d·(k − 1) − 1)/s + 1`, or why the window does not fit.
fn window_out(
    who: &str,
    n: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    axis: &str,
) -> Result<usize, String> {
    if k == 0 || s == 0 || d == 0 {
        return Err(format!(
            "`{who}`: kernel, stride and dilation must be at least 1"
        ));
    }
    let span = d * (k - 1) + 1;
    if n + 2 * p < span {
        return Err(format!(
            "`{who}`: the kernel spans {span} {axis} (kernel {k}, dilation {d}) but the padded input has only {} ({n} + 2×{p})",
            n + 2 * p
        ));
    }
    Ok((n + 2 * p - span) / s + 1)
}

impl ImageKind {
    /// The output shape, or why the input does not fit.
    pub fn out_shape(&self, who: &str, input: &[usize], from: &str) -> Result<Vec<usize>, String> {
        match self {
            ImageKind::Conv2d(c) => {
                let (ci, h, w) = need_image(who, input, from)?;
                check_channels(who, c.cin, ci, input, from)?;
                if c.groups == 0 || ci % c.groups != 0 || c.cout % c.groups != 0 {
                    return Err(format!(
                        "`{who}`: {} groups must divide both the {ci} input channels (from `{from}`) and the {} output channels",
                        c.groups, c.cout
                    ));
                }
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
            ImageKind::ConvTranspose2d(c) => {
                let (ci, h, w) = need_image(who, input, from)?;
                check_channels(who, c.cin, ci, input, from)?;
                if c.groups == 0 || ci % c.groups != 0 || c.cout % c.groups != 0 {
                    return Err(format!(
                        "`{who}`: {} groups must divide both the {ci} input channels (from `{from}`) and the {} output channels",
                        c.groups, c.cout
                    ));
                }
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
            ImageKind::MaxPool2d {
                kernel,
                stride,
                padding,
                dilation,
            } => {
                let (c, h, w) = need_image(who, input, from)?;
                Ok(vec![
                    c,
                    window_out(who, h, kernel.0, stride.0, padding.0, dilation.0, "rows")?,
                    window_out(who, w, kernel.1, stride.1, padding.1, dilation.1, "columns")?,
                ])
            }
            ImageKind::AvgPool2d {
                kernel,
                stride,
                padding,
            } => {
                let (c, h, w) = need_image(who, input, from)?;
                Ok(vec![
                    c,
                    window_out(who, h, kernel.0, stride.0, padding.0, 1, "rows")?,
                    window_out(who, w, kernel.1, stride.1, padding.1, 1, "columns")?,
                ])
            }
            ImageKind::GlobalAvgPool => {
                let (c, _, _) = need_image(who, input, from)?;
                Ok(vec![c])
            }
            ImageKind::BatchNorm {
                two_d, channels, ..
            } => {
                let ok = if *two_d {
                    input.len() == 3
                } else {
                    input.len() == 1 || input.len() == 2
                };
                if !ok {
                    return Err(if *two_d {
                        format!(
                            "`{who}` normalises the channels of an image [C, H, W] but `{from}` gives {}{}",
                            dims(input),
                            if input.len() == 1 { "; use `BatchNorm1d` after `flatten`" } else { "" }
                        )
                    } else {
                        format!("`{who}` normalises features [C] or [C, L] but `{from}` gives {}; use `BatchNorm2d` for images", dims(input))
                    });
                }
                check_channels(who, *channels, input[0], input, from)?;
                Ok(input.to_vec())
            }
            ImageKind::Dropout { .. } => Ok(input.to_vec()),
            ImageKind::Upsample { scale, .. } => {
                let (c, h, w) = need_image(who, input, from)?;
                if scale.0 == 0 || scale.1 == 0 {
                    return Err(format!("`{who}`: the scale factor must be at least 1"));
                }
                Ok(vec![c, h * scale.0, w * scale.1])
            }
            // Checked against the paired pool in shape inference.
            ImageKind::MaxUnpool2d { .. } => Ok(input.to_vec()),
        }
    }

    /// The Rust type for input shape `i` and output shape `o`.
    pub fn ty(&self, k: &TokenStream, i: &[usize], o: &[usize]) -> TokenStream {
        let s = crate::kinds::shape_ty(k, i);
        let (c, h, w) = (
            i.first().copied().unwrap_or(0),
            i.get(1).copied().unwrap_or(0),
            i.get(2).copied().unwrap_or(0),
        );
        let (oc, oh, ow) = (
            o.first().copied().unwrap_or(0),
            o.get(1).copied().unwrap_or(0),
            o.get(2).copied().unwrap_or(0),
        );
        match self {
            ImageKind::Conv2d(cv) => {
                let (cg, (kh, kw)) = (c / cv.groups.max(1), cv.kernel);
                quote!(#k::layers::Conv2d<E, D, #c, #oc, #cg, #kh, #kw, #h, #w, #oh, #ow>)
            }
            ImageKind::ConvTranspose2d(cv) => {
                let (og, (kh, kw)) = (oc / cv.groups.max(1), cv.kernel);
                quote!(#k::layers::ConvTranspose2d<E, D, #c, #oc, #og, #kh, #kw, #h, #w, #oh, #ow>)
            }
            ImageKind::MaxPool2d { .. } => quote!(#k::layers::MaxPool2d<#c, #h, #w, #oh, #ow>),
            ImageKind::AvgPool2d { .. } => quote!(#k::layers::AvgPool2d<#c, #h, #w, #oh, #ow>),
            ImageKind::GlobalAvgPool => quote!(#k::layers::GlobalAvgPool<#c, #h, #w>),
            ImageKind::BatchNorm { .. } => quote!(#k::layers::BatchNorm<E, D, #s, #c>),
            ImageKind::Dropout { .. } => quote!(#k::layers::Dropout<#s>),
            ImageKind::Upsample { .. } => quote!(#k::layers::Upsample<#c, #h, #w, #oh, #ow>),
            ImageKind::MaxUnpool2d { .. } => quote!(#k::layers::MaxUnpool2d<#c, #h, #w, #oh, #ow>),
        }
    }

    /// The value passed to `Build::build`.
    pub fn config(&self, k: &TokenStream) -> TokenStream {
        let pr = |p: &Pair| {
            let (a, b) = p;
            quote!((#a, #b))
        };
        match self {
            ImageKind::Conv2d(c) => {
                let (s, p, d, g, b, i) = (
                    pr(&c.stride),
                    pr(&c.padding),
                    pr(&c.dilation),
                    c.groups,
                    c.bias,
                    &c.init,
                );
                quote!(#k::layers::Conv2dConfig { stride: #s, padding: #p, dilation: #d, groups: #g, bias: #b, init: #i })
            }
            ImageKind::ConvTranspose2d(c) => {
                let (s, p, op, d, g, b, i) = (
                    pr(&c.stride),
                    pr(&c.padding),
                    pr(&c.output_padding),
                    pr(&c.dilation),
                    c.groups,
                    c.bias,
                    &c.init,
                );
                quote!(#k::layers::ConvTranspose2dConfig { stride: #s, padding: #p, output_padding: #op, dilation: #d, groups: #g, bias: #b, init: #i })
            }
            ImageKind::MaxPool2d {
                kernel,
                stride,
                padding,
                dilation,
            } => {
                let (kk, s, p, d) = (pr(kernel), pr(stride), pr(padding), pr(dilation));
                quote!(#k::layers::Pool2dConfig { kernel: #kk, stride: #s, padding: #p, dilation: #d })
            }
            ImageKind::AvgPool2d {
                kernel,
                stride,
                padding,
            } => {
                let (kk, s, p) = (pr(kernel), pr(stride), pr(padding));
                quote!(#k::layers::Pool2dConfig { kernel: #kk, stride: #s, padding: #p, dilation: (1, 1) })
            }
            ImageKind::BatchNorm { eps, momentum, .. } => {
                quote!(#k::layers::BatchNormConfig { eps: (#eps) as f64, momentum: (#momentum) as f64 })
            }
            ImageKind::Dropout { p } => quote!(#k::layers::DropoutConfig { p: (#p) as f64 }),
            ImageKind::Upsample { scale, bilinear } => {
                let s = pr(scale);
                let m = if *bilinear {
                    quote!(Bilinear)
                } else {
                    quote!(Nearest)
                };
                quote!(#k::layers::UpsampleConfig { scale: #s, mode: #k::device::UpsampleMode::#m })
            }
            ImageKind::GlobalAvgPool | ImageKind::MaxUnpool2d { .. } => quote!(()),
        }
    }

    /// Trainable parameters for input shape `i` and output shape `o`.
    pub fn params(&self, i: &[usize], o: &[usize]) -> usize {
        match self {
            ImageKind::Conv2d(c) => {
                c.cout * (i[0] / c.groups.max(1)) * c.kernel.0 * c.kernel.1
                    + if c.bias { c.cout } else { 0 }
            }
            ImageKind::ConvTranspose2d(c) => {
                i[0] * (o[0] / c.groups.max(1)) * c.kernel.0 * c.kernel.1
                    + if c.bias { c.cout } else { 0 }
            }
            ImageKind::BatchNorm { .. } => 2 * i[0],
            _ => 0,
        }
    }
}

fn check_channels(
    who: &str,
    declared: Option<usize>,
    got: usize,
    input: &[usize],
    from: &str,
) -> Result<(), String> {
    match declared {
        Some(d) if d != got => Err(format!(
            "`{who}` expects {d} input channels but `{from}` gives {got} (shape {})",
            dims(input)
        )),
        Some(0) => Err(format!(
            "`{who}` has zero channels; every dimension must be at least 1"
        )),
        _ => Ok(()),
    }
}
