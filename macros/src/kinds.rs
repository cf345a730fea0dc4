//! The built-in layer kinds: how each reads its arguments, the rule that gives
//! its output shape, and the Rust type and constructor it becomes. Adding a
//! layer kind means adding one arm to each `match` here and nothing elsewhere.

use crate::diag::{dims, numel_expl, suggest, Diag};
use crate::parse::Spec;
use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::Ident;

/// Every name a layer can be written with (for suggestions).
pub const BUILTINS: &[&str] = &[
    "Linear",
    "relu",
    "Relu",
    "sigmoid",
    "Sigmoid",
    "tanh",
    "Tanh",
    "leaky_relu",
    "LeakyRelu",
    "softmax",
    "Softmax",
    "flatten",
    "Flatten",
];

/// Initialiser names accepted by `init = …`.
const INITS: &[(&str, &str)] = &[
    ("torch_default", "TorchDefault"),
    ("xavier_uniform", "XavierUniform"),
    ("xavier_normal", "XavierNormal"),
    ("lecun_normal", "LecunNormal"),
    ("he_normal", "HeNormal"),
    ("he_uniform", "HeUniform"),
    ("kaiming_normal", "HeNormal"),
    ("kaiming_uniform", "HeUniform"),
    ("zeros", "Zeros"),
];

#[derive(Clone)]
pub enum Act {
    Relu,
    Sigmoid,
    Tanh,
    LeakyRelu(TokenStream),
}

#[derive(Clone)]
pub enum Kind {
    /// `Linear(out)` or `Linear(in, out)` (PyTorch's argument order); `inp`
    /// is the declared input width, checked against the inferred one.
    Linear {
        inp: Option<usize>,
        out: usize,
        bias: bool,
        init: TokenStream,
    },
    Act(Act),
    Softmax,
    Flatten,
    /// Convolution, pooling, normalisation… (see `image.rs`).
    Image(crate::image::ImageKind),
    /// A network from another invocation, with its declared output shape.
    Subnet {
        path: syn::Path,
        out: Vec<usize>,
    },
}

fn lit_usize(e: &syn::Expr, what: &str, diag: &mut Diag) -> Option<usize> {
    if let syn::Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Int(i),
        ..
    }) = e
    {
        if let Ok(v) = i.base10_parse::<usize>() {
            return Some(v);
        }
    }
    diag.error(
        syn::spanned::Spanned::span(e),
        format!("{what} must be an integer literal: shapes are computed when the macro expands"),
    );
    None
}

fn lit_bool(e: &syn::Expr, what: &str, diag: &mut Diag) -> Option<bool> {
    if let syn::Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Bool(b),
        ..
    }) = e
    {
        return Some(b.value);
    }
    diag.error(
        syn::spanned::Spanned::span(e),
        format!("{what} must be `true` or `false`"),
    );
    None
}

/// Reads `init = he_normal` (or `init = normal(0.02)`).
fn init_arg(e: &syn::Expr, k: &TokenStream, diag: &mut Diag) -> Option<TokenStream> {
    match e {
        syn::Expr::Path(p) if p.path.get_ident().is_some() => {
            let name = p.path.get_ident()?.to_string();
            if let Some((_, v)) = INITS.iter().find(|(n, _)| *n == name) {
                let v = Ident::new(v, Span::call_site());
                return Some(quote!(#k::Init::#v));
            }
            let hint = suggest(&name, INITS.iter().map(|(n, _)| *n).chain(["normal"]))
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            diag.error(p.span_of(), format!("unknown initialiser `{name}`{hint}"));
            None
        }
        syn::Expr::Call(c)
            if matches!(&*c.func, syn::Expr::Path(p) if p.path.is_ident("normal"))
                && c.args.len() == 1 =>
        {
            let a = &c.args[0];
            Some(quote!(#k::Init::Normal((#a) as f64)))
        }
        _ => {
            diag.error(
                syn::spanned::Spanned::span(e),
                "expected an initialiser such as `he_normal` or `normal(0.01)`",
            );
            None
        }
    }
}

trait SpanOf {
    fn span_of(&self) -> Span;
}
impl SpanOf for syn::ExprPath {
    fn span_of(&self) -> Span {
        syn::spanned::Spanned::span(self)
    }
}

/// A size argument: an integer literal of at least 1.
fn lit_size(e: &syn::Expr, what: &str, diag: &mut Diag) -> Option<usize> {
    let v = lit_usize(e, what, diag)?;
    if v == 0 {
        diag.error(
            syn::spanned::Spanned::span(e),
            format!("{what} is 0; a zero-sized dimension is not allowed, every dimension must be at least 1"),
        );
        return None;
    }
    Some(v)
}

/// Checks that a spec has no more than the allowed arguments.
fn no_args(spec: &Spec, diag: &mut Diag) {
    if let Some(a) = &spec.args {
        if !a.positional.is_empty() || !a.named.is_empty() {
            match a.span {
                Some(s) => diag.error(s, format!("`{}` takes no arguments", spec.ident())),
                None => diag.error_range(
                    spec.range(),
                    format!("`{}` takes no arguments", spec.ident()),
                ),
            }
        }
    }
}

/// Turns a written layer into a [`Kind`], reporting unknown names and bad arguments.
pub fn resolve(spec: &Spec, k: &TokenStream, diag: &mut Diag) -> Option<Kind> {
    let name = spec.ident().to_string();
    let args = spec.args.clone().unwrap_or_default();
    let kind = match name.as_str() {
        "Linear" => {
            let (inp, out) = match args.positional.as_slice() {
                [o] => (None, lit_size(o, "`Linear`'s output size", diag)?),
                [i, o] => {
                    let i = lit_size(i, "`Linear`'s input size", diag);
                    let o = lit_size(o, "`Linear`'s output size", diag);
                    (Some(i?), o?)
                }
                _ => {
                    diag.error_range(
                        spec.range(),
                        "`Linear` takes its number of output features, `Linear(256)`, or input and output features, `Linear(784, 256)`",
                    );
                    return None;
                }
            };
            let mut bias = true;
            let mut init = quote!(#k::Init::TorchDefault);
            for (n, e) in &args.named {
                match n.to_string().as_str() {
                    "bias" => bias = lit_bool(e, "`bias`", diag)?,
                    "init" => init = init_arg(e, k, diag)?,
                    other => {
                        diag.error(
                            n.span(),
                            format!("`Linear` has no option `{other}` (options: `bias`, `init`)"),
                        );
                        return None;
                    }
                }
            }
            Kind::Linear {
                inp,
                out,
                bias,
                init,
            }
        }
        "relu" | "Relu" => {
            no_args(spec, diag);
            Kind::Act(Act::Relu)
        }
        "sigmoid" | "Sigmoid" => {
            no_args(spec, diag);
            Kind::Act(Act::Sigmoid)
        }
        "tanh" | "Tanh" => {
            no_args(spec, diag);
            Kind::Act(Act::Tanh)
        }
        "leaky_relu" | "LeakyRelu" => {
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
            Kind::Act(Act::LeakyRelu(alpha))
        }
        "softmax" | "Softmax" => {
            no_args(spec, diag);
            Kind::Softmax
        }
        "flatten" | "Flatten" => {
            no_args(spec, diag);
            Kind::Flatten
        }
        _ => {
            match crate::image::resolve(spec, k, |e, d| init_arg(e, k, d), diag) {
                Ok(Some(kind)) => return Some(Kind::Image(kind)),
                Err(()) => return None,
                Ok(None) => {}
            }
            if let Some(out) = &spec.out {
                if spec.args.is_some() {
                    diag.error_range(spec.range(), format!("`{name}` is used as a network from another `network!`; such a layer takes no arguments"));
                    return None;
                }
                return Some(Kind::Subnet {
                    path: spec.path.clone(),
                    out: out.values(),
                });
            }
            let hint = match suggest(&name, BUILTINS.iter().chain(crate::image::NAMES).copied()) {
                Some(s) => format!("; did you mean `{s}`?"),
                None if name.starts_with(char::is_uppercase) => format!(
                    "; to use a network declared by another `network!`, write its output shape: `{name} -> [..]`"
                ),
                None => format!("; built-in layers are: {}", BUILTINS.join(", ")),
            };
            diag.error(spec.ident().span(), format!("unknown layer `{name}`{hint}"));
            return None;
        }
    };
    if spec.out.is_some() && !matches!(kind, Kind::Subnet { .. }) {
        diag.error_range(spec.range(), format!("`-> [..]` declares the output of a network from another `network!`; `{name}` is built in and its shape is inferred"));
    }
    Some(kind)
}

impl Kind {
    /// Whether the layer owns parameters or buffers (and so becomes a field).
    pub fn has_state(&self) -> bool {
        matches!(
            self,
            Kind::Linear { .. } | Kind::Subnet { .. } | Kind::Image(_)
        )
    }

    /// The output shape for an input of shape `input`, or a message saying
    /// why the input does not fit (`who` names the layer, `from` the value
    /// feeding it, and `origin` the dimensions that value's features come
    /// from, so that a flattened input reads `400 = 16×5×5`).
    pub fn out_shape(
        &self,
        who: &str,
        input: &[usize],
        from: &str,
        origin: &[usize],
    ) -> Result<Vec<usize>, String> {
        match self {
            Kind::Linear { inp, out, .. } => {
                if *out == 0 || *inp == Some(0) {
                    return Err(format!(
                        "`{who}` has a zero-sized dimension; every dimension must be at least 1"
                    ));
                }
                if input.len() != 1 {
                    return Err(format!(
                        "`{who}` expects a vector of features but `{from}` gives shape {} ({} values); insert `flatten` before it",
                        dims(input),
                        numel_expl(input)
                    ));
                }
                if let Some(i) = inp {
                    if *i != input[0] {
                        return Err(format!(
                            "`{who}` expects {i} input features but `{from}` gives {}",
                            numel_expl(origin)
                        ));
                    }
                }
                Ok(vec![*out])
            }
            Kind::Act(_) => Ok(input.to_vec()),
            Kind::Softmax => {
                if input.len() != 1 {
                    return Err(format!(
                        "`{who}` normalises a vector of scores but `{from}` gives shape {}",
                        dims(input)
                    ));
                }
                Ok(input.to_vec())
            }
            Kind::Flatten => Ok(vec![input.iter().product()]),
            Kind::Subnet { out, .. } => Ok(out.clone()),
            Kind::Image(i) => i.out_shape(who, input, from),
        }
    }

    /// The layer's Rust type.
    pub fn ty(&self, k: &TokenStream, input: &[usize], out: &[usize]) -> TokenStream {
        let si = shape_ty(k, input);
        match self {
            Kind::Linear { out: o, .. } => {
                let i = input.iter().product::<usize>();
                quote!(#k::layers::Linear<E, D, #i, #o>)
            }
            Kind::Act(Act::Relu) => quote!(#k::layers::Relu<#si>),
            Kind::Act(Act::Sigmoid) => quote!(#k::layers::Sigmoid<#si>),
            Kind::Act(Act::Tanh) => quote!(#k::layers::Tanh<#si>),
            Kind::Act(Act::LeakyRelu(_)) => quote!(#k::layers::LeakyRelu<#si>),
            Kind::Softmax => quote!(#k::layers::Softmax<#si>),
            Kind::Flatten => {
                let so = shape_ty(k, out);
                quote!(#k::layers::Flatten<#si, #so>)
            }
            Kind::Subnet { path, .. } => quote!(#path<E, D>),
            Kind::Image(i) => i.ty(k, input, out),
        }
    }

    /// The configuration passed to `Build::build` (layers with state).
    pub fn config(&self, k: &TokenStream) -> TokenStream {
        match self {
            Kind::Linear { bias, init, .. } => {
                quote!(#k::layers::LinearConfig { bias: #bias, init: #init })
            }
            Kind::Image(i) => i.config(k),
            _ => quote!(()),
        }
    }

    /// An expression building a stateless layer in place.
    pub fn inline(&self, ty: &TokenStream) -> TokenStream {
        match self {
            Kind::Act(Act::LeakyRelu(a)) => quote!(<#ty>::new((#a) as f64)),
            _ => quote!(<#ty as ::core::default::Default>::default()),
        }
    }

    /// Trainable parameters, as a constant expression.
    pub fn params(&self, input: &[usize], out: &[usize], ty: &TokenStream) -> TokenStream {
        match self {
            Kind::Linear { out, bias, .. } => {
                let i: usize = input.iter().product();
                let n = i * out + if *bias { *out } else { 0 };
                quote!(#n)
            }
            Kind::Subnet { .. } => quote!(<#ty>::PARAMS),
            Kind::Image(i) => {
                let n = i.params(input, out);
                quote!(#n)
            }
            _ => quote!(0usize),
        }
    }
}

/// `S1<…>`…`S4<…>` for a shape.
pub fn shape_ty(k: &TokenStream, d: &[usize]) -> TokenStream {
    match d {
        [a] => quote!(#k::S1<#a>),
        [a, b] => quote!(#k::S2<#a, #b>),
        [a, b, c] => quote!(#k::S3<#a, #b, #c>),
        [a, b, c, e] => quote!(#k::S4<#a, #b, #c, #e>),
        _ => quote!(()),
    }
}
