//! The options `LSTM`, `GRU` and `RNN` share, as PyTorch's: `num_layers = L`
//! (stacked, default 1), `bidirectional = true` (default `false`),
//! `dropout = p` (between stacked layers, in training; default 0; with one
//! layer there is no such place and, as in PyTorch, it does nothing) and
//! `last = true` (only the final states, `[dirs·H]`, instead of every
//! position, `[T, dirs·H]`). A layer with none of them is the plain cell
//! type (`kiln::layers::Lstm<…>`); any other is a
//! `kiln::layers::Recurrent<E, D, Cell0, CellUp, Out, L, DIRS>` whose every
//! derived size (`DIRS·H`, the upper layers' input) this file writes,
//! because stable Rust cannot compute them from const generics. Not yet: an
//! initial state passed in and the final state passed out (truncated BPTT).

use super::args::{boolean, int, named};
use super::shape_ty;
use crate::diag::Diag;
use crate::dim::{self, OpKind};
use crate::parse::Args;
use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;

/// The option names, for `check_names`.
pub const OPTIONS: &[&str] = &["num_layers", "bidirectional", "dropout", "last"];

/// Stacking, directions, dropout and what is returned.
pub struct Stack {
    pub layers: usize,
    pub dirs: usize,
    dropout: TokenStream,
    pub last: bool,
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
    Some(Stack {
        layers,
        dirs,
        dropout,
        last,
    })
}

impl Stack {
    /// One layer, one direction, every position: the cell type itself.
    pub fn plain(&self) -> bool {
        self.layers == 1 && self.dirs == 1 && !self.last
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
