//! `LSTM(H)` or `LSTM(I, H)` (PyTorch's argument order, the input size
//! checked), options of `recurrent.rs` (`num_layers`,
//! `bidirectional`, `dropout`, `last`) and `bias = true`: an LSTM over a sequence `[T, I]`
//! returning every hidden state, `[T, H]` (`nn.LSTM(I, H, batch_first=True)`
//! with a zero initial state).

use super::args::{boolean, check_names, named, size};
use super::recurrent::{self, Stack};
use super::{Entry, Rule, ShapeIn};
use crate::diag::{dims, Diag};
use crate::dim::{self, OpKind};
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["LSTM", "Lstm"],
    parse,
};

struct Lstm {
    /// The declared input size, checked against the sequence's width.
    inp: Option<usize>,
    hidden: usize,
    bias: bool,
    stack: Stack,
}

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let name = spec.ident().to_string();
    let args = spec.args.clone().unwrap_or_default();
    let allowed: Vec<&str> = ["bias"].into_iter().chain(recurrent::OPTIONS.iter().copied()).collect();
    if !check_names(spec, &args, &allowed, diag) {
        return None;
    }
    let (inp, hidden) = match args.positional.as_slice() {
        [h] => (None, size(h, "the hidden size", diag)?),
        [i, h] => {
            let i = size(i, "the input size", diag);
            let h = size(h, "the hidden size", diag);
            (Some(i?), h?)
        }
        _ => {
            diag.error_range(
                spec.range(),
                format!("`{name}` takes its hidden size, `{name}(128)`, or input and hidden sizes, `{name}(64, 128)`"),
            );
            return None;
        }
    };
    let bias = match named(&args, "bias") {
        Some(e) => boolean(e, "`bias`", diag)?,
        None => true,
    };
    let stack = recurrent::parse(&name, &args, diag)?;
    Some(Box::new(Lstm {
        inp,
        hidden,
        bias,
        stack,
    }))
}

impl Lstm {
    /// `4·H`, the gate rows of the weights.
    fn gates(&self) -> Result<usize, String> {
        dim::op(4, OpKind::Mul, self.hidden)
    }
}

impl Rule for Lstm {
    fn is_field(&self) -> bool {
        true
    }

    /// Rule: the input is a sequence `[T, I]` (with `I` the declared input
    /// size if one is written); the output is `[T, dirs·H]`, or `[dirs·H]`
    /// with `last`.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let ShapeIn {
            who, input, from, ..
        } = *s;
        if self.hidden == 0 || self.inp == Some(0) {
            return Err(format!(
                "`{who}` has a zero-sized dimension; every dimension must be at least 1"
            ));
        }
        let [t, i] = input else {
            return Err(format!(
                "`{who}` reads a sequence [T, features] but `{from}` gives shape {} (rank {}); an LSTM needs rank 2",
                dims(input),
                input.len()
            ));
        };
        if let Some(d) = self.inp {
            if !dim::same(d, *i) {
                return Err(format!(
                    "`{who}` expects {} input features per step but `{from}` gives {} (shape {})",
                    dim::text(d),
                    dim::text(*i),
                    dims(input)
                ));
            }
        }
        self.gates().map_err(|e| format!("`{who}`: {e}"))?;
        self.stack.check_state(s, self.hidden, true)?;
        self.stack
            .out_shape(*t, self.hidden)
            .map_err(|e| format!("`{who}`: {e}"))
    }

    fn ty(&self, k: &TokenStream, input: &[usize], _out: &[usize]) -> TokenStream {
        let t = dim::tokens(input[0]);
        let h = dim::tokens(self.hidden);
        let g = dim::tokens(self.gates().unwrap_or(0));
        self.stack.ty(k, input, self.hidden, |i| quote!(#k::layers::Lstm<E, D, #t, #i, #h, #g>))
    }

    fn config(&self, k: &TokenStream) -> TokenStream {
        let bias = self.bias;
        self.stack.config(k, quote!(#k::layers::LstmConfig { bias: #bias }))
    }

    fn config_ty(&self, k: &TokenStream) -> TokenStream {
        self.stack.config_ty(k, quote!(#k::layers::LstmConfig))
    }

    /// `dirs` cells on the input and `(L − 1)·dirs` on `dirs·H`, each with
    /// `4H·input + 4H·H` weights and `2·4H` biases.
    fn params(&self, input: &[usize], _out: &[usize], _ty: &TokenStream) -> TokenStream {
        self.stack.params(4, input[1], self.hidden, self.bias)
    }

    fn symbolic(&self) -> bool {
        true
    }

    /// A `Layer` whose state can be given and read (`state = s`,
    /// `FinalState(..)`).
    fn bounds(&self, c: &super::Call) -> TokenStream {
        let super::Call { k, si, so, .. } = c;
        quote!(#k::Layer<E, D, In = #si, Out = #so> + #k::layers::RecurrentState<E, D>)
    }

    fn extra_inputs(&self) -> Vec<proc_macro2::Ident> {
        self.stack.extra_inputs()
    }

    fn recurrent_state(&self) -> Option<Vec<usize>> {
        Some(self.stack.state_shape(self.hidden, true))
    }

    fn forward(&self, c: &super::Call, train: bool) -> TokenStream {
        self.stack
            .forward(c, train)
            .unwrap_or_else(|| super::default_forward(c, train))
    }

    /// Its backward call is its own: no `backward_from` (see `Rule::input_grad`).
    fn input_grad(&self) -> bool {
        false
    }

    fn backward(&self, c: &super::Call) -> TokenStream {
        self.stack
            .backward(c)
            .unwrap_or_else(|| super::default_backward(c))
    }
}
