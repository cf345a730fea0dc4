//! `PositionalEmbedding(max_len)` and `PositionalEmbedding(max_len, D)` (a
//! declared width, checked), option `init = …` (default N(0, 1), as
//! `nn.Embedding`): learned positions `[max_len, D]` added to a sequence
//! `[T, D]`, `T ≤ max_len`. The output has the input's shape.

use super::args::{check_names, init, int, named};
use super::{Entry, Rule, ShapeIn};
use crate::diag::{dims, Diag};
use crate::dim;
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["PositionalEmbedding"],
    parse,
};

struct Positional {
    max_len: usize,
    width: Option<usize>,
    init: TokenStream,
}

fn parse(spec: &Spec, k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let args = spec.args.clone().unwrap_or_default();
    if !check_names(spec, &args, &["init"], diag) {
        return None;
    }
    let (max_len, width) = match args.positional.as_slice() {
        [m] => (int(m, "max_len", diag)?, None),
        [m, w] => (int(m, "max_len", diag)?, Some(int(w, "the width", diag)?)),
        _ => {
            diag.error(
                spec.span,
                "`PositionalEmbedding` takes the table's length, and optionally the width: `PositionalEmbedding(64)`, `PositionalEmbedding(64, 128)`",
            );
            return None;
        }
    };
    let init = match named(&args, "init") {
        Some(e) => init(e, k, diag)?,
        None => quote!(#k::Init::Normal(1.0)),
    };
    Some(Box::new(Positional {
        max_len,
        width,
        init,
    }))
}

impl Rule for Positional {
    fn is_field(&self) -> bool {
        true
    }

    /// A generic length passes (the layer's `build` then asserts `T ≤
    /// max_len` when it is compiled for a length).
    fn symbolic(&self) -> bool {
        true
    }

    /// Rule: the input is a sequence `[T, D]` with `T ≤ max_len` (when `T`
    /// is a number) and `D` the declared width (if written).
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let (who, from, m) = (s.who, s.from, self.max_len);
        let [t, d] = *s.input else {
            return Err(format!(
                "`{who}` adds positions to a sequence [T, D] but `{from}` gives {}",
                dims(s.input)
            ));
        };
        if m == 0 {
            return Err(format!("`{who}` has a table of 0 positions; it must be at least 1"));
        }
        if dim::is_known(t) && t > m {
            return Err(format!(
                "`{who}` has a table of {m} positions but `{from}` gives a sequence of {t} (shape {}); the table must cover every position: `PositionalEmbedding({t})` or more",
                dims(s.input)
            ));
        }
        match self.width {
            Some(w) if dim::is_known(d) && w != d => Err(format!(
                "`{who}` has width {w} but `{from}` gives {d} features per position (shape {})",
                dims(s.input)
            )),
            _ => Ok(s.input.to_vec()),
        }
    }

    fn ty(&self, k: &TokenStream, input: &[usize], _out: &[usize]) -> TokenStream {
        let (t, d, m) = (dim::tokens(input[0]), dim::tokens(input[1]), self.max_len);
        quote!(#k::layers::PositionalEmbedding<E, D, #t, #m, #d>)
    }

    fn config(&self, k: &TokenStream) -> TokenStream {
        let init = &self.init;
        quote!(#k::layers::PositionalEmbeddingConfig { init: #init })
    }

    fn config_ty(&self, k: &TokenStream) -> TokenStream {
        quote!(#k::layers::PositionalEmbeddingConfig)
    }

    fn params(&self, input: &[usize], _out: &[usize], _ty: &TokenStream) -> TokenStream {
        let (m, d) = (self.max_len, dim::tokens(input[1]));
        quote!((#m * #d))
    }
}
