//! `FinalState(rnn)` in `network!`: the final state of the recurrent layer
//! `rnn` (PyTorch's `h_n`, or `(h_n, c_n)` stacked for an LSTM, batch
//! first), as a value of the graph: to carry into the next batch
//! (`state = …` of the same layer, truncated BPTT) or into another layer
//! (an encoder's final state as a decoder's initial one).
//!
//! * forward: `s = [h_n]` (`[layers·dirs, H]`), or `[h_n; c_n]`
//!   (`[2, layers·dirs, H]`), read from `rnn`'s cache
//!   ([`RecurrentState::final_state`]);
//! * backward: `∂L/∂s` becomes where `rnn`'s backward pass starts its
//!   carries (`δh`, `δc` after the last step,
//!   [`RecurrentState::final_state_backward`]), so it reaches every step
//!   through backpropagation through time. It must run before `rnn`'s
//!   backward, which the graph's order guarantees: the node reads `rnn`'s
//!   output. It sends nothing to that output directly (the final `h` is
//!   also the output's last step, and the carry already adds into it).
//!
//! # Shapes
//! `FinalState<S>`: `S` is the recurrent layer's state shape (`network!`
//! writes it, and checks where the state goes).

use super::activation::no_params;
use super::fit;
use super::recurrent::RecurrentState;
use crate::device::{Acc, Backend};
use crate::elem::Elem;
use crate::error::Result;
use crate::module::{Module, ParamMut, ParamRef, Path, Role};
use crate::onnx::Onnx;
use crate::shape::Shape;
use crate::tensor::Tensor;
use std::marker::PhantomData;

/// The final state of a recurrent layer, shape `S` (see the module doc).
#[derive(Clone, Copy, Debug, Default)]
pub struct FinalState<S> {
    _s: PhantomData<S>,
}
no_params!(FinalState<S>);

impl<S: Shape> FinalState<S> {
    /// Multiply–adds per sample (none: a copy).
    pub const FLOPS: usize = 0;

    /// `s` ← the final state of `rnn`'s last forward pass on `cache` (whose
    /// output was `y`).
    pub fn forward<E: Elem, D: Backend<E>, R: RecurrentState<E, D>>(
        &self,
        rnn: &R,
        y: &Tensor<R::Out, E, D>,
        cache: &R::Cache,
        s: &mut Tensor<S, E, D>,
    ) -> Result<()> {
        rnn.final_state(y, cache, s)
    }

    /// Hands `ds` to `rnn`'s next backward pass on `cache`; `dy`, the
    /// gradient of `rnn`'s output, gets nothing from here (zero when set).
    #[allow(clippy::type_complexity)]
    pub fn backward<E: Elem, D: Backend<E>, R: RecurrentState<E, D>>(
        &self,
        rnn: &R,
        cache: &mut R::Cache,
        ds: &Tensor<S, E, D>,
        dy: Option<(&mut Tensor<R::Out, E, D>, Acc)>,
    ) -> Result<()> {
        rnn.final_state_backward(cache, ds)?;
        if let Some((dy, Acc::Set)) = dy {
            let batch = ds.batch();
            fit(dy, batch)?;
            let n = dy.numel();
            ds.device().fill(&mut dy.buf, n, E::zero())?;
        }
        Ok(())
    }
}

/// Not through [`Onnx`], which knows only the input: the final state is
/// what its recurrent layer's operators left, so `network!` calls
/// [`FinalState::onnx_of`].
impl<S> Onnx for FinalState<S> {}

impl<S> FinalState<S> {
    /// ONNX: the `Y_h` (and an LSTM's `Y_c`) outputs of the operators of the
    /// recurrent layer at `rnn_at`, `Concat`enated in layer and direction
    /// order and transposed to this crate's state, `[batch, layers·dirs, H]`
    /// (an LSTM's `[batch, 2, layers·dirs, H]`, `h` then `c`).
    pub fn onnx_of(
        &self,
        g: &mut crate::onnx::Graph,
        at: &str,
        rnn_at: &str,
    ) -> Result<Vec<String>> {
        super::recurrent::onnx::final_state(g, at, rnn_at)
    }
}
