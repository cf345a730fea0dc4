//! Sparse row gradients of an [`Embedding`] (PyTorch's `sparse=True`).
//!
//! A batch touches few rows of a large table. [`Embedding::backward_sparse`]
//! records `∂L/∂W` as the list of touched rows and one gradient row each,
//!
//! ```text
//! rows   = the distinct ids of the batch other than padding_idx, in order of first appearance
//! values[s, :] = Σ_{(b, t) : x[b, t] = rows[s]} ∂L/∂y[b, t, :]     (summed in position order)
//! ```
//!
//! which is the dense gradient of [`TokenLayer::backward`] without its zero
//! rows: each recorded row is bit-identical to the dense one (same additions,
//! same order). [`crate::optim::Sgd::step_sparse`] then changes only those
//! rows, `W[r, :] ← W[r, :] − η · values[s, :]`, which for plain SGD is the
//! dense step bit for bit, and leaves every other row untouched. Both cost
//! `O(n · DIM)` for `n` ids, independent of the vocabulary `V` (the
//! coalescing map of `V` entries is allocated once, with the gradient).
//!
//! Which optimizers: plain SGD only (`Sgd::new(lr)`, no momentum, no weight
//! decay), as PyTorch's `SGD` with sparse gradients; momentum, weight decay
//! and Adam's moments change every row at every step, so a sparse step
//! would be a different algorithm (PyTorch's `SparseAdam`), not done here.
//! The kernels are [`SparseRowKernels`] (CPU only so far). Networks built
//! by `network!` keep the dense gradient; the sparse path is called on the
//! layer directly, as `examples/word2vec.rs` does.
//!
//! ```
//! use kiln_core::layers::{Embedding, EmbeddingConfig, SparseRows};
//! use kiln_core::optim::Sgd;
//! use kiln_core::{rng, Build, Cpu, Tensor, Tokens, S1, S2};
//! let mut e = Embedding::<f32, Cpu, 1000, 2>::build(&Cpu, &mut rng(0), EmbeddingConfig::default()).unwrap();
//! let before = e.weight.to_vec().unwrap();
//! let x = Tokens::<S1<3>, 1000>::new::<f32>(&Cpu, &[7, 3, 7]).unwrap();
//! let dy = Tensor::<S2<3, 2>>::from_slice(&Cpu, &[1., 1., 2., 2., 3., 3.]).unwrap();
//! let mut g = SparseRows::new(&e).unwrap();
//! e.backward_sparse(&x, &dy, &mut g).unwrap();
//! assert_eq!(g.rows(), &[7, 3]);
//! assert_eq!(g.values().unwrap(), vec![4., 4., 2., 2.]); // row 7: 1 + 3
//! Sgd::<f32, Cpu>::new(0.5).step_sparse(&mut e.weight, &g).unwrap();
//! let after = e.weight.to_vec().unwrap();
//! assert_eq!(after[14], before[14] - 0.5 * 4.0);
//! assert_eq!(after[..6], before[..6]); // rows 0–2 untouched
//! ```

use super::embedding::{Embedding, TokenLayer};
use crate::device::Backend;
use crate::elem::Elem;
use crate::error::Result;
use crate::kernels::sparse_rows::{SparseRowKernels, FREE};
use crate::shape::Shape;
use crate::tensor::{Tensor, Tokens};

/// The sparse gradient of a `[V, DIM]` table: the touched rows and their
/// gradient rows (module doc). Buffers grow to the largest batch seen and
/// are reused, so a training step allocates nothing once they have.
pub struct SparseRows<E: Elem, D: Backend<E>, const V: usize, const DIM: usize> {
    rows: D::Buf<u32>,
    values: D::Buf<E>,
    /// `V` entries, [`FREE`] between calls: id → position in `rows`.
    slot: D::Buf<u32>,
    /// Host copy of `rows[..len]`.
    host_rows: Vec<u32>,
    len: usize,
    dev: D,
}

impl<E: Elem, D: Backend<E>, const V: usize, const DIM: usize> SparseRows<E, D, V, DIM> {
    /// An empty gradient for `table`'s shape, on its device.
    pub fn new(table: &Embedding<E, D, V, DIM>) -> Result<Self> {
        let dev = table.weight.device().clone();
        let mut slot = Backend::<E>::zeros::<u32>(&dev, V)?;
        Backend::<E>::upload(&dev, &vec![FREE; V], &mut slot)?;
        Ok(SparseRows {
            rows: Backend::<E>::zeros::<u32>(&dev, 0)?,
            values: Backend::<E>::zeros::<E>(&dev, 0)?,
            slot,
            host_rows: Vec::new(),
            len: 0,
            dev,
        })
    }
    /// The number of touched rows.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether no row was touched.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The touched rows, in order of first appearance.
    pub fn rows(&self) -> &[u32] {
        &self.host_rows[..self.len]
    }
    /// The gradient rows, `[len, DIM]` row-major, copied to the host.
    pub fn values(&self) -> Result<Vec<E>> {
        let mut v = vec![E::zero(); Backend::<E>::len(&self.dev, &self.values)];
        Backend::<E>::download(&self.dev, &self.values, &mut v)?;
        v.truncate(self.len * DIM);
        Ok(v)
    }
    /// The dense `[V, DIM]` gradient it stands for (for tests and checks;
    /// this one is `O(V · DIM)`).
    pub fn to_dense(&self) -> Result<Vec<E>> {
        let mut dense = vec![E::zero(); V * DIM];
        let values = self.values()?;
        for (s, &r) in self.rows().iter().enumerate() {
            dense[r as usize * DIM..][..DIM].copy_from_slice(&values[s * DIM..][..DIM]);
        }
        Ok(dense)
    }
    /// Device buffers `(rows, values)` and the touched-row count.
    pub fn raw(&self) -> (&D::Buf<u32>, &D::Buf<E>, usize) {
        (&self.rows, &self.values, self.len)
    }
    /// Grows the buffers to hold `n` rows (allocates only when `n` exceeds
    /// every earlier batch).
    fn reserve(&mut self, n: usize) -> Result<()> {
        if Backend::<E>::len(&self.dev, &self.rows) < n {
            self.rows = Backend::<E>::zeros::<u32>(&self.dev, n)?;
            self.values = Backend::<E>::zeros::<E>(&self.dev, n * DIM)?;
            self.host_rows.resize(n, 0);
        }
        Ok(())
    }
}

impl<E: Elem, D: SparseRowKernels<E>, const V: usize, const DIM: usize> Embedding<E, D, V, DIM> {
    /// The backward pass with a sparse gradient (module doc): `grads` is
    /// overwritten with the rows `x` touches and their summed `dy` rows; the
    /// padding row is never recorded. `dy` has [`TokenLayer::backward`]'s
    /// type, so ids of shape `[T]` take a `[T, DIM]` gradient.
    pub fn backward_sparse<S: Shape>(
        &self,
        x: &Tokens<S, V, D>,
        dy: &Tensor<<Self as TokenLayer<E, D, S, V>>::Out, E, D>,
        grads: &mut SparseRows<E, D, V, DIM>,
    ) -> Result<()>
    where
        Self: TokenLayer<E, D, S, V>,
    {
        crate::error::check_batch(
            "Embedding backward_sparse",
            "ids",
            x.batch(),
            "dy",
            dy.batch(),
        )?;
        let n = x.numel();
        grads.reserve(n)?;
        grads.len = x.device().embedding_bwd_rows(
            &x.buf,
            &dy.buf,
            n,
            V,
            DIM,
            self.padding_idx,
            &mut grads.slot,
            &mut grads.rows,
            &mut grads.values,
        )?;
        let k = grads.len;
        // The touched ids on the host too (`k` of them: O(n), not O(V)).
        Backend::<E>::download(&grads.dev, &grads.rows, &mut grads.host_rows[..k])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::EmbeddingConfig;
    use crate::module::{Build, Module};
    use crate::optim::{Optimizer, Sgd};
    use crate::shape::{S1, S2};
    use crate::{rng, Acc, Cpu};
    use rand::Rng as _;

    const V: usize = 50;
    const DIM: usize = 4;
    const T: usize = 6;
    type Emb = Embedding<f32, Cpu, V, DIM>;

    fn table(padding_idx: Option<usize>) -> Emb {
        let cfg = EmbeddingConfig {
            padding_idx,
            ..Default::default()
        };
        Emb::build(&Cpu, &mut rng(5), cfg).unwrap()
    }

    /// A batch of `b` samples of `T` ids drawn from the first 12 rows (so
    /// ids repeat), with gradients in [-1, 1).
    fn batch(seed: u64, b: usize) -> (Tokens<S1<T>, V>, Tensor<S2<T, DIM>>) {
        let mut r = rng(seed);
        let ids: Vec<u32> = (0..b * T).map(|_| r.random_range(0..12)).collect();
        let dy: Vec<f32> = (0..b * T * DIM)
            .map(|_| r.random_range(-1.0..1.0))
            .collect();
        (
            Tokens::new::<f32>(&Cpu, &ids).unwrap(),
            Tensor::from_slice(&Cpu, &dy).unwrap(),
        )
    }

    #[test]
    fn sparse_gradient_is_the_dense_one_without_its_zero_rows() {
        for padding in [None, Some(3)] {
            let e = table(padding);
            let mut sparse = SparseRows::new(&e).unwrap();
            let mut dense = e.grads().unwrap();
            for (seed, b) in [(1, 5), (2, 1), (3, 9)] {
                let (x, dy) = batch(seed, b);
                let y = Tensor::<S2<T, DIM>>::empty(&Cpu).unwrap();
                TokenLayer::<f32, Cpu, S1<T>, V>::backward(
                    &e,
                    &x,
                    &y,
                    &mut (),
                    &dy,
                    &mut dense,
                    Acc::Set,
                )
                .unwrap();
                e.backward_sparse(&x, &dy, &mut sparse).unwrap();
                let want = dense.weight.to_vec().unwrap();
                assert_eq!(sparse.to_dense().unwrap(), want, "seed {seed}");
                // exactly the touched rows, each once, in first-appearance order
                let mut seen = Vec::new();
                for &id in x.as_slice() {
                    if Some(id as usize) != padding && !seen.contains(&id) {
                        seen.push(id);
                    }
                }
                assert_eq!(sparse.rows(), &seen[..]);
            }
        }
    }

    #[test]
    fn sparse_sgd_equals_dense_sgd_and_leaves_untouched_rows_bit_identical() {
        let mut dense_net = table(Some(0));
        let mut sparse_net = table(Some(0));
        let mut dense_g = dense_net.grads().unwrap();
        let mut sparse_g = SparseRows::new(&sparse_net).unwrap();
        let mut dense_opt = Sgd::<f32, Cpu>::new(0.1);
        let sparse_opt = Sgd::<f32, Cpu>::new(0.1);
        let y = Tensor::<S2<T, DIM>>::empty(&Cpu).unwrap();
        for step in 0..5 {
            let (x, dy) = batch(10 + step, 4);
            TokenLayer::<f32, Cpu, S1<T>, V>::backward(
                &dense_net,
                &x,
                &y,
                &mut (),
                &dy,
                &mut dense_g,
                Acc::Set,
            )
            .unwrap();
            dense_opt.step(&mut dense_net, &dense_g).unwrap();
            let before = sparse_net.weight.to_vec().unwrap();
            sparse_net.backward_sparse(&x, &dy, &mut sparse_g).unwrap();
            sparse_opt
                .step_sparse(&mut sparse_net.weight, &sparse_g)
                .unwrap();
            let after = sparse_net.weight.to_vec().unwrap();
            // same result as the dense path, bit for bit
            assert_eq!(after, dense_net.weight.to_vec().unwrap(), "step {step}");
            // rows no id touched (12..V, and the padding row 0) are the same bits
            for r in (0..V).filter(|r| !sparse_g.rows().contains(&(*r as u32))) {
                for d in 0..DIM {
                    let i = r * DIM + d;
                    assert_eq!(after[i].to_bits(), before[i].to_bits(), "row {r}");
                }
            }
            assert!(sparse_g.rows().iter().all(|&r| r != 0 && r < 12));
            assert!(after != before, "touched rows moved");
        }
    }

    #[test]
    fn sparse_sgd_refuses_what_has_no_sparse_form() {
        let mut e = table(None);
        let g = SparseRows::new(&e).unwrap();
        for opt in [
            Sgd::<f32, Cpu>::new(0.1).momentum(0.9),
            Sgd::<f32, Cpu>::new(0.1).weight_decay(1e-4),
        ] {
            let err = opt.step_sparse(&mut e.weight, &g).unwrap_err();
            assert!(err.to_string().contains("sparse"), "{err}");
        }
    }

    #[test]
    fn cost_does_not_depend_on_the_vocabulary() {
        // A 2^20-row table: a step over 3 ids visits 3 rows (the slot map is
        // restored entry by entry, not cleared), so a thousand steps run in
        // well under the time one dense pass over 2^20 × 8 values would take
        // a thousand times.
        const BIG: usize = 1 << 20;
        let dev = Cpu;
        let mut e = Embedding::<f32, Cpu, BIG, 8>::build(
            &dev,
            &mut rng(1),
            EmbeddingConfig {
                init: crate::Init::Zeros,
                ..Default::default()
            },
        )
        .unwrap();
        let mut g = SparseRows::new(&e).unwrap();
        let x = Tokens::<S1<3>, BIG>::new::<f32>(&dev, &[5, BIG as u32 - 1, 5]).unwrap();
        let dy = Tensor::<S2<3, 8>>::from_slice(&dev, &[1.0; 24]).unwrap();
        let opt = Sgd::<f32, Cpu>::new(1.0);
        let t = std::time::Instant::now();
        for _ in 0..1000 {
            e.backward_sparse(&x, &dy, &mut g).unwrap();
            opt.step_sparse(&mut e.weight, &g).unwrap();
        }
        let w = e.weight.to_vec().unwrap();
        assert_eq!(w[5 * 8], -2000.0);
        assert_eq!(w[(BIG - 1) * 8], -1000.0);
        assert_eq!(w.iter().filter(|v| **v != 0.0).count(), 16);
        assert!(t.elapsed().as_secs_f64() < 1.0, "{:?}", t.elapsed());
    }
}
