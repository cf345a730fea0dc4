//! Dimensions: numbers the macro knows, and names it does not.
//!
//! A dimension is written as an integer expression (`16 * 5 * 5`, evaluated
//! here), a named constant (`HIDDEN`, whose value only the compiler knows), a
//! const generic parameter of the network (`T`), or an expression over those
//! (`2 * HIDDEN`). Shapes stay `Vec<usize>` through the pipeline: a dimension
//! the macro cannot evaluate is *interned* as a symbol, a `usize` at or above
//! [`SYM`] that indexes this expansion's table (one table per thread,
//! cleared by [`reset`] when an expansion starts). Two symbols are equal
//! exactly when they are written alike, so `HIDDEN` always meets `HIDDEN`.
//!
//! Where a rule compares two dimensions and one of them is a symbol that
//! differs from the other, the macro cannot decide: [`same`] then answers
//! "yes" and records the pair, and the caller ([`take_deferred`]) turns it
//! into a type equality that the compiler checks, so a mismatch is a type
//! error naming both values. Kinds whose output sizes need numbers (a
//! convolution's `(H + 2P − K)/S + 1`) refuse symbolic inputs with a message
//! asking for a literal or an integer expression.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use std::cell::RefCell;
use syn::spanned::Spanned;

/// The first symbol: no real dimension comes near it (shapes are products of
/// a few dimensions and must fit in memory).
pub const SYM: usize = usize::MAX / 2;

#[derive(Clone)]
struct Symbol {
    /// As messages show it (`HIDDEN`, `2 * HIDDEN`, `16×T`).
    text: String,
    /// As an expression of the generated code.
    tokens: TokenStream,
    /// Mentions a const generic parameter of the network.
    generic: bool,
}

#[derive(Default)]
struct Table {
    syms: Vec<Symbol>,
    /// The network's const generic parameters.
    generics: Vec<String>,
    /// Pairs of shapes [`same`] could not compare.
    deferred: Vec<(Vec<usize>, Vec<usize>)>,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table::default());
}

/// Starts an expansion with an empty table. A table left by an expansion
/// that did not reach [`finish`] is forgotten, not dropped: its tokens are
/// handles of a finished macro call, which the compiler no longer accepts.
pub fn reset() {
    TABLE.with(|t| std::mem::forget(t.take()));
}

/// Names the network's const generic parameters (before any dimension is
/// read).
pub fn set_generics(generics: Vec<String>) {
    TABLE.with(|t| t.borrow_mut().generics = generics);
}

/// Ends an expansion, dropping its symbols while their tokens are valid.
pub fn finish() {
    TABLE.with(|t| drop(t.take()));
}

fn intern(text: String, tokens: TokenStream, generic: bool) -> usize {
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        if let Some(i) = t.syms.iter().position(|s| s.text == text) {
            return SYM + i;
        }
        t.syms.push(Symbol {
            text,
            tokens,
            generic,
        });
        SYM + t.syms.len() - 1
    })
}

fn symbol(d: usize) -> Option<Symbol> {
    if d < SYM {
        return None;
    }
    TABLE.with(|t| t.borrow().syms.get(d - SYM).cloned())
}

/// Whether the macro knows the dimension's value.
pub fn is_known(d: usize) -> bool {
    d < SYM
}

/// Whether every dimension of a shape is known.
pub fn all_known(s: &[usize]) -> bool {
    s.iter().all(|d| is_known(*d))
}

/// Whether the dimension mentions a const generic parameter.
pub fn is_generic(d: usize) -> bool {
    symbol(d).is_some_and(|s| s.generic)
}

/// The dimension as messages write it: `400`, `HIDDEN`.
pub fn text(d: usize) -> String {
    match symbol(d) {
        Some(s) => s.text,
        None => d.to_string(),
    }
}

/// The dimension as a constant expression of the generated code, fit for a
/// const generic argument or a `usize` expression: `400usize`, `{ HIDDEN }`.
pub fn tokens(d: usize) -> TokenStream {
    match symbol(d) {
        Some(s) => {
            let t = s.tokens;
            quote!({ #t })
        }
        None => d.to_token_stream(),
    }
}

/// An arithmetic operator of dimension expressions.
#[derive(Clone, Copy)]
pub enum OpKind {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl OpKind {
    fn sym(self) -> &'static str {
        match self {
            OpKind::Add => "+",
            OpKind::Sub => "-",
            OpKind::Mul => "*",
            OpKind::Div => "/",
            OpKind::Rem => "%",
        }
    }
}

/// `a op b`: a number when both are known, else a symbol for the expression
/// (an error when it would compute with a generic parameter).
pub fn op(a: usize, o: OpKind, b: usize) -> Result<usize, String> {
    if is_known(a) && is_known(b) {
        let r = match o {
            OpKind::Add => a.checked_add(b),
            OpKind::Sub => a.checked_sub(b),
            OpKind::Mul => a.checked_mul(b),
            OpKind::Div => a.checked_div(b),
            OpKind::Rem => a.checked_rem(b),
        };
        return match r {
            Some(v) if v < SYM => Ok(v),
            _ => Err(format!(
                "`{a} {} {b}` is not a dimension (it overflows, is negative or divides by zero)",
                o.sym()
            )),
        };
    }
    if is_generic(a) || is_generic(b) {
        let g = if is_generic(a) { text(a) } else { text(b) };
        return Err(format!(
            "arithmetic on the generic dimension `{g}` is not supported: stable Rust cannot compute with a const generic parameter in a type; make this dimension concrete (a literal, an integer expression or a named constant)"
        ));
    }
    let (ta, tb) = (tokens(a), tokens(b));
    let tokens = match o {
        OpKind::Add => quote!(#ta + #tb),
        OpKind::Sub => quote!(#ta - #tb),
        OpKind::Mul => quote!(#ta * #tb),
        OpKind::Div => quote!(#ta / #tb),
        OpKind::Rem => quote!(#ta % #tb),
    };
    let wrap = |d: usize| {
        if symbol(d).is_some_and(|s| s.text.contains(' ')) {
            format!("({})", text(d))
        } else {
            text(d)
        }
    };
    Ok(intern(
        format!("{} {} {}", wrap(a), o.sym(), wrap(b)),
        tokens,
        false,
    ))
}

/// The number of elements of a shape (a symbol when a dimension is one).
pub fn product(s: &[usize]) -> Result<usize, String> {
    s.iter().try_fold(1, |acc, &d| {
        if acc == 1 {
            Ok(d)
        } else {
            op(acc, OpKind::Mul, d)
        }
    })
}

/// Whether two dimensions are equal as far as the macro can tell: known
/// numbers are compared, a symbol equals itself, and a pair the macro cannot
/// decide counts as equal and is recorded for the compiler to check.
pub fn same(a: usize, b: usize) -> bool {
    same_shape(&[a], &[b])
}

/// [`same`] for whole shapes (ranks must agree).
pub fn same_shape(a: &[usize], b: &[usize]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut undecided = false;
    for (&x, &y) in a.iter().zip(b) {
        if x == y {
            continue;
        }
        if is_known(x) && is_known(y) {
            return false;
        }
        undecided = true;
    }
    if undecided {
        TABLE.with(|t| t.borrow_mut().deferred.push((a.to_vec(), b.to_vec())));
    }
    true
}

/// The comparisons [`same`] left to the compiler since the last call.
pub fn take_deferred() -> Vec<(Vec<usize>, Vec<usize>)> {
    TABLE.with(|t| std::mem::take(&mut t.borrow_mut().deferred))
}

/// Evaluates a dimension written by the user: integer literals and `+ - * /
/// %` over them are computed; a path (`HIDDEN`, `consts::HIDDEN`, the
/// network's `T`) is a symbol; anything else is an error at its span.
pub fn eval(e: &syn::Expr) -> Result<usize, syn::Error> {
    match e {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) => {
            let v = i.base10_parse::<usize>()?;
            if v >= SYM {
                return Err(syn::Error::new(i.span(), "this dimension is too large"));
            }
            Ok(v)
        }
        syn::Expr::Paren(p) => eval(&p.expr),
        syn::Expr::Group(g) => eval(&g.expr),
        syn::Expr::Block(b) if b.block.stmts.len() == 1 => match &b.block.stmts[0] {
            syn::Stmt::Expr(e, None) => eval(e),
            _ => Err(not_a_dim(e)),
        },
        syn::Expr::Path(p) if p.qself.is_none() => {
            let text = p
                .path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect::<Vec<_>>()
                .join("::");
            let generic =
                p.path.get_ident().is_some() && TABLE.with(|t| t.borrow().generics.contains(&text));
            Ok(intern(text, p.to_token_stream(), generic))
        }
        syn::Expr::Binary(b) => {
            let o = match b.op {
                syn::BinOp::Add(_) => OpKind::Add,
                syn::BinOp::Sub(_) => OpKind::Sub,
                syn::BinOp::Mul(_) => OpKind::Mul,
                syn::BinOp::Div(_) => OpKind::Div,
                syn::BinOp::Rem(_) => OpKind::Rem,
                _ => return Err(not_a_dim(e)),
            };
            let (l, r) = (eval(&b.left)?, eval(&b.right)?);
            op(l, o, r).map_err(|m| syn::Error::new(e.span(), m))
        }
        _ => Err(not_a_dim(e)),
    }
}

fn not_a_dim(e: &syn::Expr) -> syn::Error {
    syn::Error::new(
        e.span(),
        "a dimension is an integer literal, a named constant, or `+ - * / %` over those (`16 * 5 * 5`, `2 * HIDDEN`)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> syn::Expr {
        syn::parse_str(s).unwrap()
    }

    #[test]
    fn expressions_are_evaluated() {
        reset();
        assert_eq!(eval(&e("16 * 5 * 5")).unwrap(), 400);
        assert_eq!(eval(&e("(2 + 6) / 4 % 3")).unwrap(), 2);
        assert!(eval(&e("3 - 4")).is_err());
        assert!(eval(&e("1 / 0")).is_err());
        assert!(eval(&e("f(3)")).is_err());
        finish();
    }

    #[test]
    fn names_are_symbols_equal_when_written_alike() {
        reset();
        let h = eval(&e("HIDDEN")).unwrap();
        let w = eval(&e("WIDTH")).unwrap();
        assert!(!is_known(h));
        assert_eq!(eval(&e("HIDDEN")).unwrap(), h);
        assert_eq!(text(eval(&e("2 * HIDDEN")).unwrap()), "2 * HIDDEN");
        assert_eq!(
            eval(&e("2 * HIDDEN")).unwrap(),
            eval(&e("2*HIDDEN")).unwrap()
        );
        // Known numbers decide; a symbol against anything else is deferred.
        assert!(!same(3, 4));
        assert!(same(h, h));
        assert!(take_deferred().is_empty());
        assert!(same(h, w));
        assert_eq!(take_deferred(), vec![(vec![h], vec![w])]);
        finish();
    }

    #[test]
    fn arithmetic_on_a_generic_dimension_is_refused() {
        reset();
        set_generics(vec!["T".into()]);
        let t = eval(&e("T")).unwrap();
        assert!(is_generic(t));
        let err = eval(&e("T * 16")).unwrap_err().to_string();
        assert!(err.contains("generic dimension `T`"), "{err}");
        assert!(product(&[t, 16]).is_err());
        assert_eq!(product(&[t]).unwrap(), t);
        finish();
    }
}
