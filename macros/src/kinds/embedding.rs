//! `Embedding(V, DIM)`, options `padding_idx = k`, `init = …`: a table of
//! `V` rows of `DIM` values indexed by token id, PyTorch's `nn.Embedding`.
//! Its input is a token value (`input ids: Tokens<[T], V>`), not a float
//! tensor: `[T]` ids → `[T, DIM]`. It is called through
//! `kiln::TokenLayer` (no input gradient: ids have none).

use super::args::{check_names, init, int, named, size};
use super::{Call, Entry, Rule, ShapeIn};
use crate::diag::{dims, Diag};
use crate::dim;
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;

pub const KIND: Entry = Entry {
    names: &["Embedding"],
    parse,
};

struct Embedding {
    vocab: usize,
    dim: usize,
    padding_idx: Option<usize>,
    init: TokenStream,
}

fn parse(spec: &Spec, k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let args = spec.args.clone().unwrap_or_default();
    let [v, d] = args.positional.as_slice() else {
        diag.error_range(
            spec.range(),
            "`Embedding` takes the vocabulary size and the embedding width, `Embedding(27, 16)`",
        );
        return None;
    };
    let vocab = size(v, "`Embedding`'s vocabulary size", diag);
    let width = size(d, "`Embedding`'s width", diag);
    if !check_names(spec, &args, &["padding_idx", "init"], diag) {
        return None;
    }
    let padding_idx = match named(&args, "padding_idx") {
        Some(e) => Some(int(e, "`padding_idx`", diag)?),
        None => None,
    };
    let ini = match named(&args, "init") {
        Some(e) => init(e, k, diag)?,
        None => quote!(#k::Init::Normal(1.0)),
    };
    let (vocab, dim) = (vocab?, width?);
    if let Some(p) = padding_idx {
        if dim::is_known(vocab) && p >= vocab {
            let span = named(&args, "padding_idx").map_or(spec.span, |e| e.span());
            diag.error(
                span,
                format!("`padding_idx = {p}` is not a row of the table: the vocabulary has {vocab} ids (0 to {})", vocab - 1),
            );
            return None;
        }
    }
    Some(Box::new(Embedding {
        vocab,
        dim,
        padding_idx,
        init: ini,
    }))
}

impl Rule for Embedding {
    fn is_field(&self) -> bool {
        true
    }

    fn reads_tokens(&self) -> bool {
        true
    }

    /// Rule: the ids' vocabulary is the table's `V` (compared by the
    /// compiler when a named constant hides one, see `dim.rs`); `[T]` ids
    /// give `[T, DIM]`, `[A, B]` ids `[A, B, DIM]`.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let ShapeIn {
            who, input, from, ..
        } = *s;
        let Some(v) = s.vocab else {
            return Err(format!("`{who}` reads token ids, but `{from}` is not a token value"));
        };
        if !dim::same(self.vocab, v) {
            return Err(format!(
                "`{who}` has a table of {} ids but `{from}` holds ids over a vocabulary of {}; the vocabularies must agree",
                dim::text(self.vocab),
                dim::text(v)
            ));
        }
        if input.len() > 2 {
            return Err(format!(
                "`{who}` reads ids of rank 1 or 2 (`[T]`, `[A, B]`), but `{from}` has shape {}",
                dims(input)
            ));
        }
        let mut out = input.to_vec();
        out.push(self.dim);
        Ok(out)
    }

    fn ty(&self, k: &TokenStream, _input: &[usize], _out: &[usize]) -> TokenStream {
        let (v, d) = (dim::tokens(self.vocab), dim::tokens(self.dim));
        quote!(#k::layers::Embedding<E, D, #v, #d>)
    }

    fn config(&self, k: &TokenStream) -> TokenStream {
        let init = &self.init;
        let pad = match self.padding_idx {
            Some(p) => quote!(::core::option::Option::Some(#p)),
            None => quote!(::core::option::Option::None),
        };
        quote!(#k::layers::EmbeddingConfig { padding_idx: #pad, init: #init })
    }

    fn config_ty(&self, k: &TokenStream) -> TokenStream {
        quote!(#k::layers::EmbeddingConfig)
    }

    /// `V × DIM` weights.
    fn params(&self, _input: &[usize], _out: &[usize], _ty: &TokenStream) -> TokenStream {
        if dim::is_known(self.vocab) && dim::is_known(self.dim) {
            let n = self.vocab * self.dim;
            return quote!(#n);
        }
        let (v, d) = (dim::tokens(self.vocab), dim::tokens(self.dim));
        quote!((#v * #d))
    }

    /// The table `[V, DIM]`, which a `Linear(DIM, V, tied = …)` may borrow.
    fn tie_weight(&self) -> Option<Vec<usize>> {
        Some(vec![self.vocab, self.dim])
    }

    /// A gather: no multiply–adds.
    fn flops(&self, _k: &TokenStream, _ty: &TokenStream) -> TokenStream {
        quote!(0usize)
    }

    fn symbolic(&self) -> bool {
        true
    }

    /// Nothing kept (`TokenLayer::Cache = ()`).
    fn has_cache(&self) -> bool {
        false
    }

    fn bounds(&self, c: &Call) -> TokenStream {
        let Call { k, si, so, .. } = c;
        let v = dim::tokens(self.vocab);
        quote!(#k::layers::TokenLayer<E, D, #si, #v, Out = #so, Cache = ()>)
    }

    /// The gather and scatter-add kernels.
    fn device_bounds(&self, k: &TokenStream) -> Vec<TokenStream> {
        vec![quote!(D: #k::EmbeddingKernels<E>)]
    }

    fn forward(&self, c: &Call, train: bool) -> TokenStream {
        let Call { k, si, inst, x, y, .. } = c;
        let v = dim::tokens(self.vocab);
        if train {
            quote!(#k::layers::TokenLayer::<E, D, #si, #v>::forward_train(#inst, #x, &mut #y, &mut (), ctx)?;)
        } else {
            quote!(#k::layers::TokenLayer::<E, D, #si, #v>::forward(#inst, #x, &mut #y, &mut ())?;)
        }
    }

    /// Its backward call is its own: no `backward_from` (see `Rule::input_grad`).
    fn input_grad(&self) -> bool {
        false
    }

    /// Parameter gradients only: ids have no gradient.
    fn backward(&self, c: &Call) -> TokenStream {
        let Call {
            k,
            si,
            inst,
            x,
            y,
            dy,
            grads,
            gacc,
            ..
        } = c;
        let v = dim::tokens(self.vocab);
        quote!(#k::layers::TokenLayer::<E, D, #si, #v>::backward(#inst, #x, &#y, &mut (), #dy, #grads, #gacc)?;)
    }
}
