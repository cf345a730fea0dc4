//! Positional encodings added to a sequence `[T, D]`: where attention, which
//! treats its keys as a set, learns the order of the positions.
//!
//! * [`SinusoidalPositions`] (fixed, no parameters; "Attention is all you
//!   need", §3.5): `y[t, 2i] = x[t, 2i] + sin(t·ω_i)`,
//!   `y[t, 2i+1] = x[t, 2i+1] + cos(t·ω_i)`, `ω_i = 10000^(−2i/D)`;
//! * [`PositionalEmbedding`] (learned; GPT-2's `wpe`, an `nn.Embedding(max_len,
//!   D)` read at positions `0 … T−1`): `y[t, :] = x[t, :] + W[t, :]` with
//!   `W` `[max_len, D]` (`weight`, drawn from N(0, 1) as `nn.Embedding`'s, or
//!   the `init` given), `T ≤ max_len` (a compile error otherwise).
//!
//! Backward: `∂L/∂x = ∂L/∂y`; `∂L/∂W[t, :] = Σ_batch ∂L/∂y[t, :]` for
//! `t < T`, and 0 for the rows `T … max_len − 1`, which no forward pass reads
//! (the gradient tensor starts at zero and those rows are never written).
//!
//! Both are the same two device operations, so they need no kernel family:
//! the table broadcast to every sample (`copy_block` with a source stride of
//! 0) and `x` added (`axpy`). Nothing is cached.
//!
//! # Shapes
//! `SinusoidalPositions<E, D, T, DIM>` and `PositionalEmbedding<E, D, T, MAX,
//! DIM>` map `[T, DIM]` to `[T, DIM]`.

use super::fit;
use crate::device::{Acc, Backend, Block};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::init::Init;
use crate::module::{Build, Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{join, single, Graph, Onnx};
use crate::shape::{S1, S2};
use crate::tensor::Tensor;
use crate::Rng;

/// `y = x + table[..T]` for every sample, `dx (acc)= dy`.
fn add_table<E: Elem, D: Backend<E>, const T: usize, const DIM: usize>(
    table: &D::Buf<E>,
    x: &Tensor<S2<T, DIM>, E, D>,
    y: &mut Tensor<S2<T, DIM>, E, D>,
) -> Result<()> {
    let (batch, n) = (x.batch(), T * DIM);
    fit(y, batch)?;
    let dev = x.device();
    let b = Block {
        rows: batch,
        cols: n,
        src_ld: 0,
        src_off: 0,
        dst_ld: n,
        dst_off: 0,
    };
    dev.copy_block(&b, table, &mut y.buf, Acc::Set)?;
    dev.axpy(E::one(), &x.buf, &mut y.buf, batch * n, Acc::Add)
}

fn pass_back<E: Elem, D: Backend<E>, const T: usize, const DIM: usize>(
    dy: &Tensor<S2<T, DIM>, E, D>,
    dx: Option<(&mut Tensor<S2<T, DIM>, E, D>, Acc)>,
) -> Result<()> {
    if let Some((dx, acc)) = dx {
        super::conv_common::prepare_dx(dx, acc, dy.batch())?;
        dy.device()
            .axpy(E::one(), &dy.buf, &mut dx.buf, dy.batch() * T * DIM, acc)?;
    }
    Ok(())
}

/// The fixed sinusoidal encoding (see the module doc); no parameters.
pub struct SinusoidalPositions<E: Elem, D: Backend<E>, const T: usize, const DIM: usize> {
    table: Tensor<S2<T, DIM>, E, D>,
}

impl<E: Elem, D: Backend<E>, const T: usize, const DIM: usize> SinusoidalPositions<E, D, T, DIM> {
    /// The encoding of position `t`, feature `j`, as the module doc's formula.
    pub fn value(t: usize, j: usize) -> f64 {
        let w = 10000f64.powf(-((j - j % 2) as f64) / DIM as f64);
        let a = t as f64 * w;
        if j.is_multiple_of(2) {
            a.sin()
        } else {
            a.cos()
        }
    }
}

impl<E: Elem, D: Backend<E>, const T: usize, const DIM: usize> Build<E, D>
    for SinusoidalPositions<E, D, T, DIM>
{
    type Config = ();
    fn build(dev: &D, _: &mut Rng, _: ()) -> Result<Self> {
        let v = (0..T * DIM).map(|i| E::of(Self::value(i / DIM, i % DIM)));
        Ok(SinusoidalPositions {
            table: Tensor::from_vec(dev, 1, v.collect())?,
        })
    }
}

impl<E: Elem, D: Backend<E>, const T: usize, const DIM: usize> Module<E, D>
    for SinusoidalPositions<E, D, T, DIM>
{
    type Grads = ();
    fn grads(&self) -> Result<()> {
        Ok(())
    }
    fn visit(&self, _: &Path<'_>, _: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>)) {}
    fn visit_grads(
        &mut self,
        _: &(),
        _: &Path<'_>,
        _: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>),
    ) {
    }
    fn visit_mut(&mut self, _: &Path<'_>, _: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role)) {}
}

impl<E: Elem, D: Backend<E>, const T: usize, const DIM: usize> Layer<E, D>
    for SinusoidalPositions<E, D, T, DIM>
{
    type In = S2<T, DIM>;
    type Out = S2<T, DIM>;
    type Cache = ();
    const FLOPS: usize = T * DIM;
    fn cache(&self) -> Result<()> {
        Ok(())
    }
    fn forward(
        &self,
        x: &Tensor<S2<T, DIM>, E, D>,
        y: &mut Tensor<S2<T, DIM>, E, D>,
        _: &mut (),
    ) -> Result<()> {
        add_table(&self.table.buf, x, y)
    }
    fn forward_train(
        &mut self,
        x: &Tensor<S2<T, DIM>, E, D>,
        y: &mut Tensor<S2<T, DIM>, E, D>,
        _: &mut (),
        _: &mut TrainCtx,
    ) -> Result<()> {
        add_table(&self.table.buf, x, y)
    }
    fn backward(
        &self,
        _x: &Tensor<S2<T, DIM>, E, D>,
        _y: &Tensor<S2<T, DIM>, E, D>,
        _: &mut (),
        dy: &Tensor<S2<T, DIM>, E, D>,
        dx: Option<(&mut Tensor<S2<T, DIM>, E, D>, Acc)>,
        _: &mut (),
        _: Acc,
    ) -> Result<()> {
        pass_back(dy, dx)
    }
}

/// Options of a [`PositionalEmbedding`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PositionalEmbeddingConfig {
    /// How `weight` is drawn (default N(0, 1), as `nn.Embedding`).
    pub init: Init,
}

impl Default for PositionalEmbeddingConfig {
    fn default() -> Self {
        PositionalEmbeddingConfig {
            init: Init::Normal(1.0),
        }
    }
}

/// Learned positions (see the module doc): a `[MAX, DIM]` table whose first
/// `T` rows are added to the sequence.
pub struct PositionalEmbedding<
    E: Elem,
    D: Backend<E>,
    const T: usize,
    const MAX: usize,
    const DIM: usize,
> {
    /// `W`, `[MAX, DIM]`.
    pub weight: Tensor<S2<MAX, DIM>, E, D>,
}

impl<E: Elem, D: Backend<E>, const T: usize, const MAX: usize, const DIM: usize>
    PositionalEmbedding<E, D, T, MAX, DIM>
{
    /// Evaluated by `build`: a sequence longer than the table does not
    /// compile (`network!` says so with the numbers before this is reached;
    /// this catches a generic `T`).
    const FITS: () = assert!(
        T <= MAX,
        "PositionalEmbedding: the sequence is longer than the table (T > max_len)"
    );
}

impl<E: Elem, D: Backend<E>, const T: usize, const MAX: usize, const DIM: usize> Build<E, D>
    for PositionalEmbedding<E, D, T, MAX, DIM>
{
    type Config = PositionalEmbeddingConfig;
    fn build(dev: &D, rng: &mut Rng, cfg: PositionalEmbeddingConfig) -> Result<Self> {
        let () = Self::FITS;
        if DIM == 0 || T == 0 {
            return Err(Error::invalid(
                "PositionalEmbedding",
                format!("need T, DIM ≥ 1; got T = {T}, DIM = {DIM}"),
            ));
        }
        let w = cfg.init.sample(&[MAX, DIM], MAX * DIM, rng);
        Ok(PositionalEmbedding {
            weight: Tensor::from_vec(dev, 1, w.into_iter().map(E::of).collect())?,
        })
    }
}

impl<E: Elem, D: Backend<E>, const T: usize, const MAX: usize, const DIM: usize> Module<E, D>
    for PositionalEmbedding<E, D, T, MAX, DIM>
{
    type Grads = Tensor<S2<MAX, DIM>, E, D>;
    fn grads(&self) -> Result<Self::Grads> {
        Tensor::zeros(self.weight.device(), 1)
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>)) {
        f(
            &path.child("weight"),
            ParamRef::of(&self.weight, Role::Param),
        );
    }
    fn visit_grads(
        &mut self,
        g: &Self::Grads,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>),
    ) {
        f(
            &path.child("weight"),
            ParamMut::of(&mut self.weight, Some(g)),
        );
    }
    fn visit_mut(
        &mut self,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role),
    ) {
        f(
            &path.child("weight"),
            ParamMut::of(&mut self.weight, None),
            Role::Param,
        );
    }
}

impl<E: Elem, D: Backend<E>, const T: usize, const MAX: usize, const DIM: usize>
    PositionalEmbedding<E, D, T, MAX, DIM>
{
    /// Adds position `pos`'s row `W[pos]` to every sample of `x` (one row
    /// of `DIM` each: decoding one position at a time, see
    /// [`crate::layers::KvCache`]); an error when `pos ≥ T` (the positions
    /// the layer was built to add).
    pub fn add_position(&self, pos: usize, x: &mut Tensor<S1<DIM>, E, D>) -> Result<()> {
        if pos >= T {
            return Err(Error::invalid(
                "PositionalEmbedding::add_position",
                format!("position {pos} is past the layer's {T} positions"),
            ));
        }
        let b = Block {
            rows: x.batch(),
            cols: DIM,
            src_ld: 0,
            src_off: pos * DIM,
            dst_ld: DIM,
            dst_off: 0,
        };
        self.weight
            .device()
            .copy_block(&b, &self.weight.buf, &mut x.buf, Acc::Add)
    }
}

impl<E: Elem, D: Backend<E>, const T: usize, const MAX: usize, const DIM: usize> Layer<E, D>
    for PositionalEmbedding<E, D, T, MAX, DIM>
{
    type In = S2<T, DIM>;
    type Out = S2<T, DIM>;
    type Cache = ();
    const FLOPS: usize = T * DIM;
    fn cache(&self) -> Result<()> {
        Ok(())
    }
    fn forward(
        &self,
        x: &Tensor<S2<T, DIM>, E, D>,
        y: &mut Tensor<S2<T, DIM>, E, D>,
        _: &mut (),
    ) -> Result<()> {
        add_table(&self.weight.buf, x, y)
    }
    fn forward_train(
        &mut self,
        x: &Tensor<S2<T, DIM>, E, D>,
        y: &mut Tensor<S2<T, DIM>, E, D>,
        _: &mut (),
        _: &mut TrainCtx,
    ) -> Result<()> {
        add_table(&self.weight.buf, x, y)
    }
    /// `∂L/∂W[..T] (gacc)= Σ_batch dy` (a column sum over the batch's rows
    /// of `T·DIM`), `dx (acc)= dy`.
    fn backward(
        &self,
        _x: &Tensor<S2<T, DIM>, E, D>,
        _y: &Tensor<S2<T, DIM>, E, D>,
        _: &mut (),
        dy: &Tensor<S2<T, DIM>, E, D>,
        dx: Option<(&mut Tensor<S2<T, DIM>, E, D>, Acc)>,
        grads: &mut Self::Grads,
        gacc: Acc,
    ) -> Result<()> {
        let dev = dy.device();
        dev.bias_grad(&dy.buf, &mut grads.buf, dy.batch(), T * DIM, gacc)?;
        pass_back(dy, dx)
    }
}

/// The input gradient alone, `dx (acc)= dy` (`y = x + W[..T]`); no table
/// gradient.
impl<E: Elem, D: Backend<E>, const T: usize, const MAX: usize, const DIM: usize>
    crate::input_grad::InputGrad<E, D> for PositionalEmbedding<E, D, T, MAX, DIM>
{
    fn backward_input(
        &self,
        _x: &Tensor<S2<T, DIM>, E, D>,
        _y: &Tensor<S2<T, DIM>, E, D>,
        _: &mut (),
        dy: &Tensor<S2<T, DIM>, E, D>,
        dx: Option<(&mut Tensor<S2<T, DIM>, E, D>, Acc)>,
        _mode: crate::input_grad::GradMode,
    ) -> Result<()> {
        pass_back(dy, dx)
    }
}

/// ONNX: `Add(x, Slice(weight, [0], [T], axes = [0]))`, the table
/// `{path}.weight` (`[max_len, DIM]`, its first `T` rows read).
impl<E: Elem, D: Backend<E>, const T: usize, const MAX: usize, const DIM: usize> Onnx
    for PositionalEmbedding<E, D, T, MAX, DIM>
{
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let x = single(at, inputs)?;
        let w = g.param(&join(at, "weight"), &self.weight)?;
        let zero = g.int64s(&join(at, "start"), &[0])?;
        let end = g.int64s(&join(at, "end"), &[T as i64])?;
        let p = g.op(
            "Slice",
            &join(at, "rows"),
            &[&w, &zero, &end, &zero],
            Vec::new(),
        );
        Ok(vec![g.op("Add", at, &[x, &p], Vec::new())])
    }
}

/// ONNX: `Add(x, table)`, the fixed `[T, DIM]` table a constant (it is no
/// parameter, so it has no `state_dict` name).
impl<E: Elem, D: Backend<E>, const T: usize, const DIM: usize> Onnx
    for SinusoidalPositions<E, D, T, DIM>
{
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let x = single(at, inputs)?;
        let table = g.values(&join(at, "table"), &[T, DIM], &self.table.to_vec()?)?;
        Ok(vec![g.op("Add", at, &[x, &table], Vec::new())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check_layer;
    use crate::Cpu;

    /// The table by hand for D = 4: position 0 is (0, 1, 0, 1); position 1
    /// is (sin 1, cos 1, sin 0.01, cos 0.01) (ω₁ = 10000^(−2/4) = 0.01).
    #[test]
    fn sinusoidal_values_by_hand() {
        let l = SinusoidalPositions::<f64, Cpu, 2, 4>::build(&Cpu, &mut crate::rng(0), ()).unwrap();
        let x = Tensor::<S2<2, 4>, f64>::from_slice(&Cpu, &[1.0; 16]).unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        l.forward(&x, &mut y, &mut ()).unwrap();
        let y = y.to_vec().unwrap();
        let want = [
            1.0,
            2.0,
            1.0,
            2.0,
            1.0 + 1f64.sin(),
            1.0 + 1f64.cos(),
            1.0 + 0.01f64.sin(),
            1.0 + 0.01f64.cos(),
        ];
        for (a, b) in y.iter().zip(want.iter().chain(want.iter())) {
            assert!((a - b).abs() < 1e-15, "{y:?}");
        }
    }

    #[test]
    fn gradchecks() {
        let mut s =
            SinusoidalPositions::<f64, Cpu, 3, 6>::build(&Cpu, &mut crate::rng(0), ()).unwrap();
        assert!(check_layer(&mut s, 2, 1).unwrap() < 1e-6);
        let mut p = PositionalEmbedding::<f64, Cpu, 3, 5, 4>::build(
            &Cpu,
            &mut crate::rng(2),
            Default::default(),
        )
        .unwrap();
        assert!(check_layer(&mut p, 3, 2).unwrap() < 1e-6);
    }

    /// Rows past the sequence get no gradient; the name is `nn.Embedding`'s.
    #[test]
    fn learned_rows_past_the_sequence_stay_zero() {
        let p = PositionalEmbedding::<f64, Cpu, 2, 4, 3>::build(
            &Cpu,
            &mut crate::rng(0),
            Default::default(),
        )
        .unwrap();
        let x = Tensor::<S2<2, 3>, f64>::from_slice(&Cpu, &[0.5; 12]).unwrap();
        let dy =
            Tensor::<S2<2, 3>, f64>::from_slice(&Cpu, &(0..12).map(f64::from).collect::<Vec<_>>())
                .unwrap();
        let (mut y, mut g) = (Tensor::empty(&Cpu).unwrap(), p.grads().unwrap());
        p.forward(&x, &mut y, &mut ()).unwrap();
        p.backward(&x, &y, &mut (), &dy, None, &mut g, Acc::Set)
            .unwrap();
        let g = g.to_vec().unwrap();
        assert_eq!(g[..6], [6.0, 8.0, 10.0, 12.0, 14.0, 16.0]);
        assert_eq!(g[6..], [0.0; 6]);
        let mut names = Vec::new();
        p.visit(&Path::ROOT.child("pos"), &mut |q, r| {
            names.push(format!("{q} {:?}", r.dims))
        });
        assert_eq!(names, ["pos.weight [4, 3]"]);
    }
}
