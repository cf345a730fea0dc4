//! The options `LSTM`, `GRU` and `RNN` share, as PyTorch's: `num_layers = L`
//! (stacked, default 1), `bidirectional = true` (default `false`),
//! `dropout = p` (between stacked layers, in training; default 0; with one
//! layer there is no such place and, as in PyTorch, it does nothing) and
//! `last = true` (only the final states, `[dirs·H]`, instead of every
//! position, `[T, dirs·H]`). A layer with none of them is the plain cell
//! type (`kiln::layers::Lstm<…>`); any other is a
//! `kiln::layers::Recurrent<E, D, Cell0, CellUp, Out, L, DIRS>` whose every
//! derived size (`DIRS·H`, the upper layers' input) this file writes,
//! because stable Rust cannot compute them from const generics.
//!
//! `state = s` starts the layer from the value `s` (PyTorch's `h_0`, or
//! `(h_0, c_0)` stacked for an LSTM, batch first): per sample
//! `[num_layers·dirs, H]`, `[2, num_layers·dirs, H]` for an LSTM, checked
//! here; its gradient flows back into `s`. `FinalState(rnn)`
//! (`final_state.rs`) reads the state a layer ends in, of the same shape,
//! so a training loop carries it from one batch to the next (truncated
//! BPTT) by feeding it back as the input `s`.

use super::args::{boolean, int, named};
use super::{shape_ty, Call, ShapeIn};
use crate::diag::{dims, Diag};
use crate::dim::{self, OpKind};
use crate::parse::Args;
use proc_macro2::{Ident, TokenStream};
use quote::quote;
use syn::spanned::Spanned;

/// The option names, for `check_names`.
pub const OPTIONS: &[&str] = &["num_layers", "bidirectional", "dropout", "last", "state"];

/// Stacking, directions, dropout and what is returned.
pub struct Stack {
    pub layers: usize,
    pub dirs: usize,
    dropout: TokenStream,
    pub last: bool,
    /// `state = s`: the value holding the initial state.
    pub state: Option<Ident>,
}

/// Reads the shared options of `name`'s arguments.
pub fn parse(name: &str, args: &Args, diag: &mut Diag) -> Option<Stack> {
    let layers = match named(args, "num_layers") {
        Some(e) => {
            let v = int(e, "`num_layers`", diag)?;
            if v == 0 {
                diag.error(
                    e.span(),
                    format!(
                        "`{name}`'s `num_layers` is 0; a recurrent layer has at least one layer"
                    ),
                );
                return None;
            }
            v
        }
        None => 1,
    };
    let dirs = match named(args, "bidirectional") {
        Some(e) => 1 + usize::from(boolean(e, "`bidirectional`", diag)?),
        None => 1,
    };
    let last = match named(args, "last") {
        Some(e) => boolean(e, "`last`", diag)?,
        None => false,
    };
    let dropout = match named(args, "dropout") {
        Some(e) => quote!(#e),
        None => quote!(0.0),
    };
    let state = match named(args, "state") {
        None => None,
        Some(syn::Expr::Path(p)) if p.path.get_ident().is_some() => p.path.get_ident().cloned(),
        Some(e) => {
            diag.error(e.span(), format!("`{name}`'s `state` names the input or binding holding the initial state: `state = s0`"));
            return None;
        }
    };
    Some(Stack {
        layers,
        dirs,
        dropout,
        last,
        state,
    })
}

impl Stack {
    /// One layer, one direction, every position, no initial state: the
    /// cell type itself.
    pub fn plain(&self) -> bool {
        self.layers == 1 && self.dirs == 1 && !self.last && self.state.is_none()
    }

    /// The per-sample state shape: `[L·dirs, H]`, with `cell` (an LSTM's
    /// `c`) `[2, L·dirs, H]`.
    pub fn state_shape(&self, h: usize, cell: bool) -> Vec<usize> {
        let n = self.layers * self.dirs;
        if cell {
            vec![2, n, h]
        } else {
            vec![n, h]
        }
    }

    /// The values read besides the input: the initial state.
    pub fn extra_inputs(&self) -> Vec<Ident> {
        self.state.iter().cloned().collect()
    }

    /// Rule: a given state is a float value of [`Stack::state_shape`].
    pub fn check_state(&self, s: &ShapeIn, h: usize, cell: bool) -> Result<(), String> {
        if self.state.is_none() {
            return Ok(());
        }
        let (who, net) = (s.who, s.net);
        let v = net.nodes[s.node].args[1];
        let name = net.val_label(v);
        if net.vocab(v).is_some() {
            return Err(format!(
                "`{who}`: the state `{name}` holds token ids; a state is hidden values"
            ));
        }
        let want = self.state_shape(h, cell);
        let got = net.shape(v);
        if got != want.as_slice() {
            let what = if cell {
                format!(
                    "[2, num_layers·directions, hidden] = [2, {}·{}, {h}] (h then c)",
                    self.layers, self.dirs
                )
            } else {
                format!(
                    "[num_layers·directions, hidden] = [{}·{}, {h}]",
                    self.layers, self.dirs
                )
            };
            return Err(format!(
                "`{who}` starts from the state `{name}`, which has shape {}, but its state is {} per sample, {what}",
                dims(got),
                dims(&want)
            ));
        }
        Ok(())
    }

    /// The forward call: the `Layer`'s, or from the given state.
    pub fn forward(&self, c: &Call, train: bool) -> Option<TokenStream> {
        self.state.as_ref()?;
        let Call {
            k,
            inst,
            x,
            y,
            cache,
            ..
        } = c;
        let s = &c.extra[0];
        let r = quote!(#k::layers::RecurrentState::<E, D>);
        Some(if train {
            quote!(#r::forward_train_from(#inst, #x, ::core::option::Option::Some(#s), &mut #y, &mut #cache, ctx)?;)
        } else {
            quote!(#r::forward_from(#inst, #x, ::core::option::Option::Some(#s), &mut #y, &mut #cache)?;)
        })
    }

    /// The backward call from the given state: its gradient into the state.
    pub fn backward(&self, c: &Call) -> Option<TokenStream> {
        self.state.as_ref()?;
        let Call {
            k,
            inst,
            x,
            y,
            cache,
            dy,
            dx,
            grads,
            gacc,
            ..
        } = c;
        let ds = &c.extra_dx[0];
        let r = quote!(#k::layers::RecurrentState::<E, D>);
        Some(quote!(#r::backward_from(#inst, #x, &#y, &mut #cache, #dy, #dx, #ds, #grads, #gacc)?;))
    }

    /// `dirs·H`, the width of each position of the output.
    pub fn width(&self, h: usize) -> Result<usize, String> {
        dim::op(self.dirs, OpKind::Mul, h)
    }

    /// The output shape for a sequence of `t` steps and `h` units.
    pub fn out_shape(&self, t: usize, h: usize) -> Result<Vec<usize>, String> {
        let w = self.width(h)?;
        Ok(if self.last { vec![w] } else { vec![t, w] })
    }

    /// The layer's type: `cell(input width)` is a cell's type for an input
    /// of that width.
    pub fn ty(
        &self,
        k: &TokenStream,
        input: &[usize],
        h: usize,
        cell: impl Fn(&TokenStream) -> TokenStream,
    ) -> TokenStream {
        let first = cell(&dim::tokens(input[1]));
        if self.plain() {
            return first;
        }
        let w = self.width(h).unwrap_or(0);
        let up = cell(&dim::tokens(w));
        let out = shape_ty(k, &self.out_shape(input[0], h).unwrap_or_default());
        let (l, d) = (self.layers, self.dirs);
        quote!(#k::layers::Recurrent<E, D, #first, #up, #out, #l, #d>)
    }

    /// The layer's config from its cell's.
    pub fn config(&self, k: &TokenStream, cell: TokenStream) -> TokenStream {
        if self.plain() {
            return cell;
        }
        let p = &self.dropout;
        quote!(#k::layers::RecurrentConfig { cell: #cell, dropout: #p })
    }

    /// The config's type from its cell's.
    pub fn config_ty(&self, k: &TokenStream, cell: TokenStream) -> TokenStream {
        if self.plain() {
            return cell;
        }
        quote!(#k::layers::RecurrentConfig<#cell>)
    }

    /// Parameters: `dirs` cells reading `i` features and `(L − 1)·dirs`
    /// reading `dirs·H`, each with `m·H·(input + H + biases)` scalars.
    pub fn params(&self, m: usize, i: usize, h: usize, bias: bool) -> TokenStream {
        let b = if bias { 2 } else { 0 };
        let (l, d) = (self.layers, self.dirs);
        if dim::is_known(i) && dim::is_known(h) {
            let n = d * m * h * (i + h + b) + (l - 1) * d * m * h * (d * h + h + b);
            return quote!(#n);
        }
        let (i, h) = (dim::tokens(i), dim::tokens(h));
        quote!((#d * #m * #h * (#i + #h + #b) + (#l - 1) * #d * #m * #h * (#d * #h + #h + #b)))
    }
}
