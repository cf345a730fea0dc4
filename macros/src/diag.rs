//! A collector of spanned errors, so one build reports every mistake.
//! Dropping it without calling [`Diag::finish`] is a bug in the macro and
//! panics, so no error is ever lost.

use proc_macro2::{Punct, Spacing, Span, TokenStream, TokenTree};
use std::fmt::Display;

pub struct Diag {
    errors: Option<Vec<syn::Error>>,
}

impl Diag {
    pub fn new() -> Self {
        Diag {
            errors: Some(Vec::new()),
        }
    }
    /// Records an error at `span`.
    pub fn error(&mut self, span: Span, msg: impl Display) {
        self.push(syn::Error::new(span, msg));
    }
    /// Records an error underlining everything from `start` to `end` (first
    /// and last token of a layer or an expression). Stable Rust cannot join
    /// two spans, but an error spanned by a token sequence covers the range.
    pub fn error_range(&mut self, (start, end): (Span, Span), msg: impl Display) {
        let punct = |span| {
            let mut p = Punct::new('.', Spacing::Alone);
            p.set_span(span);
            TokenTree::Punct(p)
        };
        let tokens: TokenStream = [punct(start), punct(end)].into_iter().collect();
        self.push(syn::Error::new_spanned(tokens, msg));
    }
    pub fn push(&mut self, e: syn::Error) {
        self.errors
            .as_mut()
            .expect("kiln-macros internal error: Diag used after finish")
            .push(e);
    }
    /// How many errors have been reported so far (a stage compares counts to
    /// know whether its own checks failed).
    pub fn count(&self) -> usize {
        self.errors.as_ref().map_or(0, Vec::len)
    }
    /// All errors combined into one, or `Ok`.
    pub fn finish(mut self) -> syn::Result<()> {
        let errors = self.errors.take().unwrap_or_default();
        let mut it = errors.into_iter();
        match it.next() {
            None => Ok(()),
            Some(mut first) => {
                for e in it {
                    first.combine(e);
                }
                Err(first)
            }
        }
    }
}

impl Drop for Diag {
    fn drop(&mut self) {
        if self.errors.is_some() && !std::thread::panicking() {
            panic!("kiln-macros internal error: Diag dropped without finish()");
        }
    }
}

/// Edit distance between two names, ignoring case (for "did you mean …?"):
/// insertions, deletions, substitutions and swaps of two neighbouring letters
/// (`rleu` → `relu`, `Lienar` → `Linear`) each count 1 (optimal string
/// alignment distance).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let sub = d[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = sub.min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The closest candidate within a distance of a third of the name's length.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Formats dimensions like `[16, 5, 5]`.
pub fn dims(d: &[usize]) -> String {
    let v: Vec<String> = d.iter().map(|x| crate::dim::text(*x)).collect();
    format!("[{}]", v.join(", "))
}

/// Formats dimensions with their product when there is more than one: `400 = 16×5×5`.
pub fn numel_expl(d: &[usize]) -> String {
    let n = match crate::dim::product(d) {
        Ok(n) => crate::dim::text(n),
        Err(_) => "?".to_string(),
    };
    if d.len() > 1 {
        let v: Vec<String> = d.iter().map(|x| crate::dim::text(*x)).collect();
        format!("{n} = {}", v.join("×"))
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_count_once() {
        assert_eq!(distance("rleu", "relu"), 1);
        assert_eq!(distance("Lienar", "Linear"), 1);
        assert_eq!(distance("flaten", "flatten"), 1);
        assert_eq!(distance("abc", "abc"), 0);
        assert_eq!(distance("", "relu"), 4);
    }

    #[test]
    fn suggestions() {
        let builtins = ["Linear", "relu", "flatten"];
        assert_eq!(suggest("rleu", builtins), Some("relu"));
        assert_eq!(suggest("Lienar", builtins), Some("Linear"));
        assert_eq!(suggest("linear", builtins), Some("Linear"));
        assert_eq!(suggest("conv", builtins), None);
    }
}
