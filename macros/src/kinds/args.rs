//! Readers of layer arguments shared by several kinds, each reporting its
//! own mistakes at the argument's span.

use crate::diag::{suggest, Diag};
use crate::dim;
use crate::parse::{Args, Spec};
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::Ident;

/// A pair of sizes, `(h, w)`.
pub type Pair = (usize, usize);

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

/// The value of an integer expression the macro can compute (`5`,
/// `16 * 5 * 5`), or `None` (a named constant, or not a dimension).
fn int_lit(e: &syn::Expr) -> Option<usize> {
    dim::eval(e).ok().filter(|d| dim::is_known(*d))
}

/// Why a named constant cannot stand here.
const NEEDS_NUMBER: &str = "this layer's shape is computed when the macro expands, which cannot see the value of a named constant; write a literal or an integer expression (`16 * 5 * 5`)";

/// A dimension the macro computes: a literal or an integer expression.
fn known(e: &syn::Expr, what: &str, diag: &mut Diag) -> Option<usize> {
    match dim::eval(e) {
        Ok(v) if dim::is_known(v) => Some(v),
        Ok(_) => {
            diag.error(
                e.span(),
                format!("{what} must be an integer literal or expression: {NEEDS_NUMBER}"),
            );
            None
        }
        Err(err) => {
            diag.push(err);
            None
        }
    }
}

/// A size argument of a layer that only passes it into its type (`Linear`'s
/// widths): an integer expression of at least 1, or a named constant (see
/// `dim.rs`).
pub fn size(e: &syn::Expr, what: &str, diag: &mut Diag) -> Option<usize> {
    let v = match dim::eval(e) {
        Ok(v) => v,
        Err(err) => {
            diag.push(err);
            return None;
        }
    };
    if v == 0 {
        diag.error(
            e.span(),
            format!("{what} is 0; a zero-sized dimension is not allowed, every dimension must be at least 1"),
        );
        return None;
    }
    Some(v)
}

/// An integer literal or expression (image layers' sizes).
pub fn int(e: &syn::Expr, what: &str, diag: &mut Diag) -> Option<usize> {
    known(e, what, diag)
}

/// `true` or `false`.
pub fn boolean(e: &syn::Expr, what: &str, diag: &mut Diag) -> Option<bool> {
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

/// Reads `5` or `(5, 3)` as a pair.
pub fn pair(e: &syn::Expr, what: &str, diag: &mut Diag) -> Option<Pair> {
    match e {
        syn::Expr::Tuple(t) if t.elems.len() == 2 => {
            if let (Some(a), Some(b)) = (int_lit(&t.elems[0]), int_lit(&t.elems[1])) {
                return Some((a, b));
            }
        }
        syn::Expr::Paren(p) => return pair(&p.expr, what, diag),
        _ => {
            if let Some(v) = int_lit(e) {
                return Some((v, v));
            }
        }
    }
    diag.error(
        e.span(),
        format!("{what} must be an integer (a literal or an expression) or a pair `(h, w)`: {NEEDS_NUMBER}"),
    );
    None
}

/// `(a, b)` as tokens.
pub fn pair_tokens(p: &Pair) -> TokenStream {
    let (a, b) = p;
    quote!((#a, #b))
}

/// Reads `init = he_normal` (or `init = normal(0.02)`).
pub fn init(e: &syn::Expr, k: &TokenStream, diag: &mut Diag) -> Option<TokenStream> {
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
            diag.error(p.span(), format!("unknown initialiser `{name}`{hint}"));
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
                e.span(),
                "expected an initialiser such as `he_normal` or `normal(0.01)`",
            );
            None
        }
    }
}

/// Reports any argument given to a layer that takes none (and carries on).
pub fn no_args(spec: &Spec, diag: &mut Diag) {
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

/// Rejects named options not in `allowed`.
pub fn check_names(spec: &Spec, args: &Args, allowed: &[&str], diag: &mut Diag) -> bool {
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

/// The named option `name`, if given.
pub fn named<'a>(args: &'a Args, name: &str) -> Option<&'a syn::Expr> {
    args.named.iter().find(|(n, _)| n == name).map(|(_, e)| e)
}
