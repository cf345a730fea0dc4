//! `FinalState(rnn)`: the state the recurrent layer `rnn` (an `LSTM`, `GRU`
//! or `RNN` applied once, earlier in the graph) ends in, read from its cache
//! after its forward pass, as a value: per sample `[num_layers·dirs, H]`,
//! or `[2, num_layers·dirs, H]` for an LSTM (`h_n` then `c_n`), the shape
//! that `state = …` takes (`recurrent.rs`). It is applied to `rnn`'s own
//! output (`let s = y |> FinalState(rnn)`), which orders it after `rnn`
//! forwards and before it backwards: its gradient becomes where `rnn`'s
//! backward pass starts its carries.

use super::{Call, Entry, Rule, ShapeIn};
use crate::diag::Diag;
use crate::ir::Val;
use crate::parse::Spec;
use proc_macro2::{Ident, TokenStream};
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["FinalState"],
    parse,
};

struct FinalState {
    /// The field name of the recurrent layer.
    rnn: Ident,
}

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let args = spec.args.clone().unwrap_or_default();
    match (args.positional.as_slice(), args.named.is_empty()) {
        ([syn::Expr::Path(p)], true) if p.path.get_ident().is_some() => Some(Box::new(FinalState {
            rnn: p.path.get_ident().cloned()?,
        })),
        _ => {
            diag.error(spec.span, "`FinalState` names the recurrent layer whose final state it reads: `y |> FinalState(lstm)`");
            None
        }
    }
}

impl Rule for FinalState {
    fn is_field(&self) -> bool {
        false
    }

    fn symbolic(&self) -> bool {
        true
    }

    /// Rule: `rnn` names a recurrent layer applied exactly once, and the
    /// input is that application's output; the output is its state shape.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let (who, rnn, net) = (s.who, &self.rnn, s.net);
        let Some(l) = net.layers.iter().find(|l| l.field == *rnn) else {
            return Err(format!("`{who}`: there is no layer named `{rnn}`; name the LSTM, GRU or RNN whose final state it reads"));
        };
        let Some(state) = l.kind.recurrent_state() else {
            return Err(format!(
                "`{who}`: `{rnn}` is a `{}`, which has no recurrent state; name an LSTM, GRU or RNN",
                l.spec.text()
            ));
        };
        let [u] = l.uses.as_slice() else {
            return Err(format!(
                "`{who}`: `{rnn}` is applied {} times; reading a final state needs exactly one application",
                l.uses.len()
            ));
        };
        if net.nodes[s.node].args.first() != Some(&Val::Node(*u)) {
            return Err(format!(
                "`{who}` reads the final state of `{rnn}`, so it is applied to `{rnn}`'s output (`y |> FinalState({rnn})` with `y` what `{rnn}` gives), not to `{}`",
                s.from
            ));
        }
        Ok(state)
    }

    fn ty(&self, k: &TokenStream, _input: &[usize], out: &[usize]) -> TokenStream {
        let so = super::shape_ty(k, out);
        quote!(#k::layers::FinalState<#so>)
    }

    /// Not a `Layer` (it reads another layer's cache): its FLOPS are an
    /// inherent constant.
    fn flops(&self, _k: &TokenStream, ty: &TokenStream) -> TokenStream {
        quote!(<#ty>::FLOPS)
    }

    fn has_cache(&self) -> bool {
        false
    }

    fn bounds(&self, c: &Call) -> TokenStream {
        let k = c.k;
        quote!(#k::Module<E, D>)
    }

    /// `FinalState::forward(&self.lstm, y, &c.lstm_cache, &mut s)`.
    fn forward(&self, c: &Call, _train: bool) -> TokenStream {
        let Call { inst, x, y, .. } = c;
        let (rnn, cp) = (&self.rnn, c.cache_of(&self.rnn));
        quote!((#inst).forward(&self.#rnn, #x, &#cp, &mut #y)?;)
    }

    /// Its backward call is its own: no `backward_from` (see `Rule::input_grad`).
    fn input_grad(&self) -> bool {
        false
    }

    /// `FinalState::onnx_of(g, "state", "lstm")`: the final states the
    /// recurrent layer's operators left in the graph.
    fn onnx(&self, c: &Call) -> TokenStream {
        let Call { k, inst, y, field, .. } = c;
        let (name, rnn) = (field.to_string(), self.rnn.to_string());
        quote! {
            let at_l = #k::onnx::join(at, #name);
            let #y = #k::onnx::one(&at_l, (#inst).onnx_of(g, &at_l, &#k::onnx::join(at, #rnn))?)?;
        }
    }

    /// `FinalState::backward(&self.lstm, &mut c.lstm_cache, ds, dy)`.
    fn backward(&self, c: &Call) -> TokenStream {
        let Call { inst, dy, dx, .. } = c;
        let (rnn, cp) = (&self.rnn, c.cache_of(&self.rnn));
        quote!((#inst).backward(&self.#rnn, &mut #cp, #dy, #dx)?;)
    }
}
