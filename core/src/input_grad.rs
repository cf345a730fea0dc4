//! Gradients with respect to inputs and activations only: the hook the
//! visualisation tools (saliency, guided backpropagation, Grad-CAM, class
//! model visualisation) and adversarial attacks are built on.
//!
//! [`InputGrad::backward_input`] is a layer's backward pass reduced to
//! `∂L/∂x = (∂y/∂x)ᵀ·∂L/∂y`: the parameters' gradients are neither computed
//! nor needed, so no gradient buffer has to exist. A generated network whose
//! every layer implements it gets `backward_from(tape, from, seed, to,
//! mode)` (see `docs/architecture.md`), which runs the backward pass from the
//! gradient `seed` placed at node `from` down to node `to` (or to an input),
//! and reads every node's activation and gradient by name through
//! `tape.activation(name)` / `tape.gradient(name)` ([`NodeData`]).
//!
//! [`GradMode`] changes only what ReLU does with the gradient passing through
//! it (every other layer ignores it), with `x` ReLU's input and `g = ∂L/∂y`:
//!
//! | mode | ReLU's `∂/∂x` | |
//! |---|---|---|
//! | [`GradMode::Plain`] | `g·[x > 0]` | the true gradient |
//! | [`GradMode::Guided`] | `g·[x > 0]·[g > 0]` | guided backpropagation (Springenberg et al. 2015) |
//! | [`GradMode::Deconvnet`] | `g·[g > 0]` | the deconvnet of Zeiler & Fergus 2014 |
//!
//! Layers that implement it: the element-wise activations, `PRelu`,
//! `Flatten` / `Reshape`, `MaxPool2d`, `AvgPool2d`, `GlobalAvgPool`,
//! `Dropout`, `Softmax`, `L2Normalize`, `Upsample`, `Linear`, `Conv2d`,
//! `ConvTranspose2d`, `MaskedConv2d`, `BatchNorm1d` / `BatchNorm2d` (in the
//! mode of the last forward: running statistics after `forward`, batch
//! statistics after `forward_train`), `LayerNorm`, the time pools
//! `MeanOverTime` / `MaxOverTime`, the positional layers
//! `SinusoidalPositions` / `PositionalEmbedding`, and every generated
//! network of one float input and one output whose layers all do (so a
//! nested network takes part). `MaxUnpool2d`, not a `Layer`, takes part
//! through its own parameter-free backward. A network holding another layer
//! (attention, recurrent layers and `FinalState`, a tied head, an
//! embedding, a nested network of two inputs) has no `backward_from` (the
//! bound names the layer that lacks it).

use crate::device::{Acc, Backend};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::module::Layer;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// What ReLU does with the gradient passing backward through it (see the
/// module documentation); every other layer ignores the mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GradMode {
    /// The true gradient.
    #[default]
    Plain,
    /// Guided backpropagation: only positive gradients, and only where the
    /// ReLU's input was positive.
    Guided,
    /// Deconvnet: only positive gradients, wherever they arrive.
    Deconvnet,
}

/// A layer's backward pass for the input gradient alone.
pub trait InputGrad<E: Elem, D: Backend<E>>: Layer<E, D> {
    /// `dx (acc)= (∂y/∂x)ᵀ·dy` (with ReLU's rule changed by `mode`), from
    /// the `x`, `y` and `cache` of the last forward pass; the parameters'
    /// gradients are not computed. `dx = None` does nothing.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)] // Layer::backward's contract, less the parameters
    fn backward_input(
        &self,
        x: &Tensor<Self::In, E, D>,
        y: &Tensor<Self::Out, E, D>,
        cache: &mut Self::Cache,
        dy: &Tensor<Self::Out, E, D>,
        dx: Option<(&mut Tensor<Self::In, E, D>, Acc)>,
        mode: GradMode,
    ) -> Result<()>;
}

/// `InputGrad` for a layer without parameters: its own backward with no
/// parameter gradients to write (`Grads = ()`).
macro_rules! input_grad_without_params {
    ([$($g:tt)*] $ty:ty) => {
        impl<$($g)*> $crate::input_grad::InputGrad<E, D> for $ty
        where
            $ty: $crate::module::Layer<E, D> + $crate::module::Module<E, D, Grads = ()>,
        {
            fn backward_input(
                &self,
                x: &$crate::tensor::Tensor<<Self as $crate::module::Layer<E, D>>::In, E, D>,
                y: &$crate::tensor::Tensor<<Self as $crate::module::Layer<E, D>>::Out, E, D>,
                cache: &mut <Self as $crate::module::Layer<E, D>>::Cache,
                dy: &$crate::tensor::Tensor<<Self as $crate::module::Layer<E, D>>::Out, E, D>,
                dx: Option<(&mut $crate::tensor::Tensor<<Self as $crate::module::Layer<E, D>>::In, E, D>, $crate::device::Acc)>,
                _mode: $crate::input_grad::GradMode,
            ) -> $crate::error::Result<()> {
                $crate::module::Layer::<E, D>::backward(self, x, y, cache, dy, dx, &mut (), $crate::device::Acc::Set)
            }
        }
    };
}

mod impls {
    use crate::elem::Elem;
    use crate::kernels::{DropoutKernels, PoolKernels, SoftmaxKernels, UpsampleKernels};
    use crate::layers::{
        AvgPool2d, Dropout, Flatten, Gelu, GlobalAvgPool, L2Normalize, L2NormalizeKernels,
        LeakyRelu, MaxOverTime, MaxPool2d, MeanOverTime, Sigmoid, SinusoidalPositions, Softmax,
        Tanh, Upsample,
    };
    use crate::shape::Shape;
    use crate::Backend;

    input_grad_without_params!([E: Elem, D: Backend<E>, S: Shape] Sigmoid<S>);
    input_grad_without_params!([E: Elem, D: Backend<E>, S: Shape] Tanh<S>);
    input_grad_without_params!([E: Elem, D: Backend<E>, S: Shape] LeakyRelu<S>);
    input_grad_without_params!([E: Elem, D: Backend<E>, S: Shape] Gelu<S>);
    input_grad_without_params!([E: Elem, D: Backend<E>, I: Shape, O: Shape] Flatten<I, O>);
    input_grad_without_params!([E: Elem, D: DropoutKernels<E>, S: Shape] Dropout<S>);
    input_grad_without_params!([E: Elem, D: SoftmaxKernels<E>, S: Shape] Softmax<S>);
    input_grad_without_params!([E: Elem, D: L2NormalizeKernels<E>, S: Shape] L2Normalize<S>);
    input_grad_without_params!(
        [E: Elem, D: PoolKernels<E>, const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize]
        MaxPool2d<C, H, W, OH, OW>
    );
    input_grad_without_params!(
        [E: Elem, D: PoolKernels<E>, const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize]
        AvgPool2d<C, H, W, OH, OW>
    );
    input_grad_without_params!(
        [E: Elem, D: PoolKernels<E>, const C: usize, const H: usize, const W: usize]
        GlobalAvgPool<C, H, W>
    );
    input_grad_without_params!(
        [E: Elem, D: UpsampleKernels<E>, const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize]
        Upsample<C, H, W, OH, OW>
    );
    input_grad_without_params!([E: Elem, D: PoolKernels<E>, const T: usize, const F: usize] MeanOverTime<T, F>);
    input_grad_without_params!([E: Elem, D: PoolKernels<E>, const T: usize, const F: usize] MaxOverTime<T, F>);
    input_grad_without_params!(
        [E: Elem, D: Backend<E>, const T: usize, const DIM: usize]
        SinusoidalPositions<E, D, T, DIM>
    );
}

/// A node's activation or gradient copied to the host, read by name from a
/// generated network's tape (`tape.activation("conv2")`).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeData<E> {
    /// The node's name (the user's layer field, `conv2`; an input's name).
    pub name: &'static str,
    /// The per-sample shape.
    pub dims: &'static [usize],
    /// The number of samples.
    pub batch: usize,
    /// `batch × dims` values, row-major.
    pub data: Vec<E>,
}

impl<E: Elem> NodeData<E> {
    /// Copies `t` to the host under `name`.
    pub fn of<S: Shape, D: Backend<E>>(name: &'static str, t: &Tensor<S, E, D>) -> Result<Self> {
        Ok(NodeData {
            name,
            dims: S::DIMS,
            batch: t.batch(),
            data: t.to_vec()?,
        })
    }
    /// Values per sample.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }
    /// Sample `b`'s values.
    pub fn sample(&self, b: usize) -> Result<&[E]> {
        if b >= self.batch {
            return Err(Error::invalid(
                "NodeData::sample",
                format!(
                    "sample {b} of node `{}`, which holds {} samples",
                    self.name, self.batch
                ),
            ));
        }
        let n = self.numel();
        Ok(&self.data[b * n..(b + 1) * n])
    }
}

/// Writes the seed gradient `seed` (host values, `batch × T::NUMEL` of them,
/// row-major) into node `name`'s gradient buffer `dst`: what `backward_from`
/// starts from. `batch` is the tape's (the node's activation's). The buffer
/// keeps its capacity, so a loop allocates nothing after the first call.
pub fn seed_into<T: Shape, E: Elem, D: Backend<E>>(
    seed: &[E],
    dst: &mut Tensor<T, E, D>,
    name: &str,
    batch: usize,
) -> Result<()> {
    if seed.len() != batch * T::NUMEL {
        return Err(Error::invalid(
            "backward_from",
            format!(
                "the seed has {} values but node `{name}` holds {batch} × {:?} = {} (the tape's batch × the node's shape)",
                seed.len(),
                T::DIMS,
                batch * T::NUMEL
            ),
        ));
    }
    dst.set_batch(batch)?;
    dst.copy_from_slice(seed)
}

/// Zeros for `batch` samples in `dst`: the gradient at a node or input that
/// `backward_from` did not reach (its value does not depend on it).
pub fn zero_grad<T: Shape, E: Elem, D: Backend<E>>(
    dst: &mut Tensor<T, E, D>,
    batch: usize,
) -> Result<()> {
    dst.set_batch(batch)?;
    let n = dst.numel();
    let dev = dst.device().clone();
    dev.fill(dst.buf_mut(), n, E::zero())
}

/// The error for a name that is not a node or input of network `net`.
pub fn unknown_node(op: &'static str, net: &str, name: &str, known: &[&str]) -> Error {
    Error::invalid(
        op,
        format!(
            "`{name}` is not a node of {net}; its nodes are {}",
            known.join(", ")
        ),
    )
}

/// The error for `to` not before `from` in the forward order.
pub fn not_before(net: &str, from: &str, to: &str) -> Error {
    Error::invalid(
        "backward_from",
        format!("in {net}, `{to}` does not come before `{from}`: the gradient flows from `from` back to `to`"),
    )
}
