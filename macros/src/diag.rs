//! A collector of spanned errors, so one build reports every mistake.
//! Dropping it without calling [`Diag::finish`] is a bug in the macro and
//! panics, so no error is ever lost.

use proc_macro2::Span;
use std::fmt::Display;

#[derive(Default)]
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
    pub fn push(&mut self, e: syn::Error) {
        self.errors
            .as_mut()
            .expect("kiln-macros internal error: Diag used after finish")
            .push(e);
    }
    /// Whether nothing has been reported yet.
    pub fn is_clean(&self) -> bool {
        self.errors.as_ref().is_none_or(|e| e.is_empty())
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

/// Edit distance between two names (for "did you mean …?").
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
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
    let v: Vec<String> = d.iter().map(|x| x.to_string()).collect();
    format!("[{}]", v.join(", "))
}

/// Formats dimensions with their product when there is more than one: `400 = 16×5×5`.
pub fn numel_expl(d: &[usize]) -> String {
    let n: usize = d.iter().product();
    if d.len() > 1 {
        let v: Vec<String> = d.iter().map(|x| x.to_string()).collect();
        format!("{n} = {}", v.join("×"))
    } else {
        n.to_string()
    }
}
