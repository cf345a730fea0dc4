//! Syntax of `network!` — no semantics here, only the grammar.
//!
//! ```text
//! Invocation := CRATE ';' Attribute* Visibility 'struct' Ident Generics? '{' Item* '}'
//! Generics   := '<' ('const' Ident ':' 'usize' ('=' Expr)?),+ '>'   // pass-through dimensions
//! Item       := ( 'input' ':' Dims                       // chain form input
//!               | 'input' ':' 'Tokens' '<' Dims ',' Dim '>'         // chain form token ids
//!               | 'input' Ident ':' Dims                 // graph form input
//!               | 'input' Ident ':' 'Tokens' '<' Dims ',' Dim '>'   // token ids, vocabulary
//!               | 'layer' Ident '=' Spec                 // a layer to apply (share) by name
//!               | 'let' Ident (':' Dims)? '=' Expr       // graph binding
//!               | 'output' (Ident '=')? Expr             // graph output
//!               | Step                                   // chain form step
//!               ) (',' | ';')?
//! Step       := (Ident ':')? Spec
//! Spec       := Path ('(' Args ')')? ('->' Dims)?
//! Args       := (Ident '=' Expr | Expr),*
//! Expr       := Sum ('|>' Step)*
//! Sum        := Atom ('+' Atom)*
//! Atom       := '(' Expr ')' | 'concat' '(' Expr,+ (',' 'dim' '=' Int)? ')' | ident '(' Expr ')' | Ident
//! Dims       := '[' Dim,* ']'     // Dim: see dim.rs (`16 * 5 * 5`, `HIDDEN`)
//! ```
//!
//! `CRATE` is the path of the `kiln` facade, passed by `kiln::network!` as
//! `$crate`.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{bracketed, parenthesized, Attribute, Ident, Token, Visibility};

pub struct Invocation {
    pub krate: TokenStream,
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    /// Const generic parameters (`T`), with their defaults if written.
    pub generics: Vec<(Ident, Option<syn::Expr>)>,
    pub items: Vec<Item>,
}

pub enum Item {
    ChainInput {
        span: Span,
        dims: Dims,
        /// As [`Item::Input`]'s.
        vocab: Option<(usize, Span)>,
    },
    Input {
        name: Ident,
        dims: Dims,
        /// `Tokens<[..], V>`: the vocabulary `V` and its span; `None` for a
        /// float input.
        vocab: Option<(usize, Span)>,
    },
    Shared {
        name: Ident,
        spec: Spec,
    },
    Let {
        name: Ident,
        declared: Option<Dims>,
        expr: Expr,
    },
    Output {
        name: Option<Ident>,
        expr: Expr,
        span: Span,
    },
    Step(Step),
}

#[derive(Clone)]
pub struct Dims {
    pub span: Span,
    pub dims: Vec<(usize, Span)>,
}

impl Dims {
    pub fn values(&self) -> Vec<usize> {
        self.dims.iter().map(|d| d.0).collect()
    }
}

#[derive(Clone)]
pub struct Step {
    pub name: Option<Ident>,
    pub spec: Spec,
    /// Written as a call, `relu(h)`: its tokens surround its input's.
    pub call: bool,
}

impl Step {
    pub fn span(&self) -> Span {
        match &self.name {
            Some(n) => n.span().join(self.spec.span).unwrap_or(self.spec.span),
            None => self.spec.span,
        }
    }
    /// First and last token (`fc1` … `)`), for messages that underline the
    /// whole step on stable Rust, where spans cannot be joined.
    pub fn range(&self) -> (Span, Span) {
        match &self.name {
            Some(n) => (n.span(), self.spec.end),
            None => self.spec.range(),
        }
    }
}

#[derive(Clone)]
pub struct Spec {
    pub path: syn::Path,
    pub args: Option<Args>,
    pub out: Option<Dims>,
    pub span: Span,
    /// The spec's last token: its `(..)` or `-> [..]` group, else its name.
    pub end: Span,
}

impl Spec {
    /// First and last token (`Linear` … `)`), for messages.
    pub fn range(&self) -> (Span, Span) {
        let start = match &self.path.leading_colon {
            Some(c) => c.spans[0],
            None => self
                .path
                .segments
                .first()
                .map_or(self.span, |s| s.ident.span()),
        };
        (start, self.end)
    }
    /// The last segment of the path (`Linear` in `kiln::Linear`).
    pub fn ident(&self) -> &Ident {
        &self
            .path
            .segments
            .last()
            .expect("kiln-macros internal error: empty path")
            .ident
    }
    /// The spec as the user wrote it, for messages and summaries.
    pub fn text(&self) -> String {
        let p: Vec<String> = self
            .path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect();
        let mut s = p.join("::");
        if let Some(a) = &self.args {
            s.push('(');
            let mut parts: Vec<String> = a.positional.iter().map(expr_text).collect();
            parts.extend(
                a.named
                    .iter()
                    .map(|(n, e)| format!("{n} = {}", expr_text(e))),
            );
            s.push_str(&parts.join(", "));
            s.push(')');
        }
        s
    }
}

fn expr_text(e: &syn::Expr) -> String {
    quote::quote!(#e)
        .to_string()
        .replace(" . ", ".")
        .replace("- ", "-")
}

#[derive(Clone, Default)]
pub struct Args {
    pub positional: Vec<syn::Expr>,
    pub named: Vec<(Ident, syn::Expr)>,
    pub span: Option<Span>,
}

#[derive(Clone)]
pub enum Expr {
    Var(Ident),
    /// `a + b`, with the span of `+`.
    Add(Box<Expr>, Box<Expr>, Span),
    /// `concat(..)`, with the spans of `concat` and of its parentheses, and
    /// the dimension it joins along (`dim = 1`; 0 if not written; negative
    /// counts from the last, as PyTorch's).
    Concat(Vec<Expr>, Span, Span, i64),
    /// `expr |> step`, or `relu(expr)` written as a call.
    Apply(Box<Expr>, Step),
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Var(i) => i.span(),
            Expr::Add(_, _, s) | Expr::Concat(_, s, _, _) => *s,
            Expr::Apply(_, st) => st.span(),
        }
    }
    /// First and last token of the expression, for messages.
    pub fn range(&self) -> (Span, Span) {
        match self {
            Expr::Var(i) => (i.span(), i.span()),
            Expr::Add(a, b, _) => (a.range().0, b.range().1),
            Expr::Concat(_, s, e, _) => (*s, *e),
            Expr::Apply(_, st) if st.call => st.range(),
            Expr::Apply(a, st) => (a.range().0, st.range().1),
        }
    }
}

impl Parse for Invocation {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // The crate path, up to the first `;`.
        let mut krate = TokenStream::new();
        while !input.peek(Token![;]) {
            let tt: TokenTree = input.parse()?;
            krate.extend([tt]);
        }
        input.parse::<Token![;]>()?;
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input.parse::<Token![struct]>()?;
        let name: Ident = input.parse()?;
        let mut generics = Vec::new();
        if input.peek(Token![<]) {
            let g: syn::Generics = input.parse()?;
            for p in &g.params {
                match p {
                    syn::GenericParam::Const(c)
                        if matches!(&c.ty, syn::Type::Path(t) if t.path.is_ident("usize")) =>
                    {
                        generics.push((c.ident.clone(), c.default.clone()));
                    }
                    other => {
                        return Err(syn::Error::new(
                            other.span(),
                            "a network's generic parameters are dimensions, `const T: usize` (its element type `E` and device `D` come first and are always there)",
                        ))
                    }
                }
            }
            crate::dim::set_generics(generics.iter().map(|(i, _)| i.to_string()).collect());
        }
        let body;
        syn::braced!(body in input);
        let mut items = Vec::new();
        while !body.is_empty() {
            items.push(body.parse()?);
            if body.peek(Token![,]) {
                body.parse::<Token![,]>()?;
            } else if body.peek(Token![;]) {
                body.parse::<Token![;]>()?;
            } else if !body.is_empty() {
                return Err(body.error("expected `,` or `;` between layers"));
            }
        }
        Ok(Invocation {
            krate,
            attrs,
            vis,
            name,
            generics,
            items,
        })
    }
}

/// An input's type: `[..]` (floats) or `Tokens<[..], V>` (token ids with
/// vocabulary `V`, returned with its span).
fn parse_input_type(input: ParseStream) -> syn::Result<(Dims, Option<(usize, Span)>)> {
    if !(peek_kw(input, "Tokens") && input.peek2(Token![<])) {
        return Ok((input.parse()?, None));
    }
    input.parse::<Ident>()?;
    input.parse::<Token![<]>()?;
    let dims: Dims = input.parse()?;
    input.parse::<Token![,]>()?;
    // The vocabulary runs to the closing `>` (a bracketed or braced
    // expression is one token tree).
    let mut ts = TokenStream::new();
    while !input.is_empty() && !input.peek(Token![>]) {
        let tt: TokenTree = input.parse()?;
        ts.extend([tt]);
    }
    let close = input.parse::<Token![>]>()?;
    if ts.is_empty() {
        return Err(syn::Error::new(
            close.span,
            "write the vocabulary size: `Tokens<[T], 27>`",
        ));
    }
    let e: syn::Expr = syn::parse2(ts)?;
    let v = crate::dim::eval(&e)?;
    Ok((dims, Some((v, e.span()))))
}

fn peek_kw(input: ParseStream, kw: &str) -> bool {
    input.cursor().ident().is_some_and(|(i, _)| i == kw)
}

impl Parse for Item {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if peek_kw(input, "input")
            && (input.peek2(Token![:]) && !input.peek2(Token![::]) || input.peek2(Ident))
        {
            let kw: Ident = input.parse()?;
            if input.peek(Token![:]) {
                input.parse::<Token![:]>()?;
                let (dims, vocab) = parse_input_type(input)?;
                return Ok(Item::ChainInput {
                    span: kw.span(),
                    dims,
                    vocab,
                });
            }
            let name: Ident = input.parse()?;
            input.parse::<Token![:]>()?;
            let (dims, vocab) = parse_input_type(input)?;
            return Ok(Item::Input { name, dims, vocab });
        }
        if peek_kw(input, "layer") && input.peek2(Ident) {
            input.parse::<Ident>()?;
            let name: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            return Ok(Item::Shared {
                name,
                spec: input.parse()?,
            });
        }
        if input.peek(Token![let]) {
            input.parse::<Token![let]>()?;
            let name: Ident = input.parse()?;
            let declared = if input.peek(Token![:]) {
                input.parse::<Token![:]>()?;
                Some(input.parse()?)
            } else {
                None
            };
            input.parse::<Token![=]>()?;
            return Ok(Item::Let {
                name,
                declared,
                expr: input.parse()?,
            });
        }
        if peek_kw(input, "output")
            && !input.peek2(Token![:])
            && !input.peek2(Token![,])
            && !input.peek2(Token![;])
        {
            let kw: Ident = input.parse()?;
            let name = if input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
                let n: Ident = input.parse()?;
                input.parse::<Token![=]>()?;
                Some(n)
            } else {
                None
            };
            let expr: Expr = input.parse()?;
            let span = kw.span().join(expr.span()).unwrap_or(kw.span());
            return Ok(Item::Output { name, expr, span });
        }
        Ok(Item::Step(input.parse()?))
    }
}

impl Parse for Step {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name = if input.peek(Ident) && input.peek2(Token![:]) && !input.peek2(Token![::]) {
            let n: Ident = input.parse()?;
            input.parse::<Token![:]>()?;
            Some(n)
        } else {
            None
        };
        Ok(Step {
            name,
            spec: input.parse()?,
            call: false,
        })
    }
}

impl Parse for Spec {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let path = syn::Path::parse_mod_style(input)?;
        let mut span = path.span();
        let mut end = path.segments.last().map_or(span, |s| s.ident.span());
        let args = if input.peek(syn::token::Paren) {
            let content;
            let p = parenthesized!(content in input);
            let mut a = Args {
                span: Some(p.span.join()),
                ..Args::default()
            };
            while !content.is_empty() {
                if content.peek(Ident) && content.peek2(Token![=]) && !content.peek2(Token![==]) {
                    let n: Ident = content.parse()?;
                    content.parse::<Token![=]>()?;
                    a.named.push((n, content.parse()?));
                } else {
                    a.positional.push(content.parse()?);
                }
                if !content.is_empty() {
                    content.parse::<Token![,]>()?;
                }
            }
            span = span.join(p.span.join()).unwrap_or(span);
            end = p.span.join();
            Some(a)
        } else {
            None
        };
        let out = if input.peek(Token![->]) {
            input.parse::<Token![->]>()?;
            let d: Dims = input.parse()?;
            span = span.join(d.span).unwrap_or(span);
            end = d.span;
            Some(d)
        } else {
            None
        };
        Ok(Spec {
            path,
            args,
            out,
            span,
            end,
        })
    }
}

impl Parse for Dims {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let content;
        let b = bracketed!(content in input);
        let exprs: Punctuated<syn::Expr, Token![,]> =
            content.parse_terminated(syn::Expr::parse, Token![,])?;
        let dims = exprs
            .iter()
            .map(|e| Ok((crate::dim::eval(e)?, e.span())))
            .collect::<syn::Result<Vec<_>>>()?;
        Ok(Dims {
            span: b.span.join(),
            dims,
        })
    }
}

impl Parse for Expr {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut e = parse_sum(input)?;
        while input.peek(Token![|]) && input.peek2(Token![>]) {
            input.parse::<Token![|]>()?;
            input.parse::<Token![>]>()?;
            let step: Step = input.parse()?;
            e = Expr::Apply(Box::new(e), step);
        }
        Ok(e)
    }
}

fn parse_sum(input: ParseStream) -> syn::Result<Expr> {
    let mut e = parse_atom(input)?;
    while input.peek(Token![+]) {
        let plus: Token![+] = input.parse()?;
        let rhs = parse_atom(input)?;
        let span = e.span().join(rhs.span()).unwrap_or(plus.span);
        e = Expr::Add(Box::new(e), Box::new(rhs), span);
    }
    Ok(e)
}

fn parse_atom(input: ParseStream) -> syn::Result<Expr> {
    if input.peek(syn::token::Paren) {
        let content;
        parenthesized!(content in input);
        return content.parse();
    }
    let name: Ident = input.parse()?;
    if input.peek(syn::token::Paren) {
        let content;
        let p = parenthesized!(content in input);
        let span = name.span().join(p.span.join()).unwrap_or(name.span());
        if name == "concat" {
            let mut parts = Vec::new();
            let mut dim = 0i64;
            while !content.is_empty() {
                if peek_kw(&content, "dim") && content.peek2(Token![=]) {
                    content.parse::<Ident>()?;
                    content.parse::<Token![=]>()?;
                    let neg = content.peek(Token![-]);
                    if neg {
                        content.parse::<Token![-]>()?;
                    }
                    let v: syn::LitInt = content.parse()?;
                    let v = v.base10_parse::<i64>()?;
                    dim = if neg { -v } else { v };
                } else {
                    parts.push(content.parse()?);
                }
                if !content.is_empty() {
                    content.parse::<Token![,]>()?;
                }
            }
            return Ok(Expr::Concat(parts, span, p.span.join(), dim));
        }
        let args: Punctuated<Expr, Token![,]> = content.parse_terminated(Expr::parse, Token![,])?;
        let mut args: Vec<Expr> = args.into_iter().collect();
        if args.len() != 1 {
            return Err(syn::Error::new(
                span,
                format!(
                    "`{name}(…)` applies a layer to one tensor; write `x |> {name}` or `{name}(x)`"
                ),
            ));
        }
        let spec = Spec {
            path: name.clone().into(),
            args: None,
            out: None,
            span: name.span(),
            end: p.span.join(),
        };
        let step = Step {
            name: None,
            spec,
            call: true,
        };
        return Ok(Expr::Apply(Box::new(args.remove(0)), step));
    }
    Ok(Expr::Var(name))
}
