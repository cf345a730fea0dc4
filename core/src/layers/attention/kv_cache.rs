//! Autoregressive decoding with a key/value cache: [`KvCache`] holds, for
//! each sample, the keys and values of the positions a causal
//! self-attention layer has already seen, and
//! [`MultiHeadAttention::attend_step`] runs one new position through the
//! layer, appending its key and value, so a new token costs one position
//! (`O(L·DM)` for `L` cached positions besides the projections), not a
//! whole context (`O(T²·DM)` and `T` projections).
//!
//! For the new position's input row `x` `[DM]` (per sample) with `L − 1`
//! positions cached:
//!
//! * `q = x·W_qᵀ + b_q`, `k = x·W_kᵀ + b_k`, `v = x·W_vᵀ + b_v`; `k|v` is
//!   appended as row `L − 1` of the cache `K|V` `[capacity, 2·DM]`;
//! * per head `h`: `p_h = softmax(q_h·K_hᵀ/√d)` over the `L` cached keys (all
//!   of them are allowed: the causal mask hides only later positions, which
//!   are not there yet), `o_h = p_h·V_h`;
//! * `y = o·W_oᵀ + b_o`.
//!
//! This is row `L − 1` of [`MultiHeadAttention::self_attend`] with
//! `causal = true` on the first `L` positions, computed by the same GEMMs
//! and the same masked-softmax kernel, so it runs on every device that runs
//! the layer (no kernel of its own). Inference only: nothing is kept for a
//! backward pass.
//!
//! A decoder's other layers act on each row alone and have row-wise entry
//! points for the same loop: [`crate::layers::LayerNorm::forward_rows`],
//! [`crate::layers::Linear::forward_rows`],
//! [`crate::layers::TiedLinear::forward_rows`],
//! [`crate::layers::Embedding::lookup_rows`] and
//! [`crate::layers::PositionalEmbedding::add_position`]; a model's own
//! `step` strings them together (`examples/char_gpt.rs` has a GPT's).
//!
//! The capacity is the layer's context `T`: learned positions stop there.
//! What to do when a sequence outgrows it (crop the context and refill the
//! cache, as nanoGPT crops to `block_size`) is the caller's choice;
//! [`KvCache::clear`] empties the cache for a refill.

use super::{heads, AttentionKernels, AttnDims, MultiHeadAttention};
use crate::device::{Acc, Backend, Block, Gemm};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::shape::S1;
use crate::tensor::Tensor;

/// The keys and values of the positions one self-attention layer has seen,
/// per sample, and the scratch of [`MultiHeadAttention::attend_step`].
pub struct KvCache<E: Elem, D: Backend<E>> {
    /// `[batch, capacity, 2·DM]`: each position's key, then its value.
    kv: D::Buf<E>,
    batch: usize,
    capacity: usize,
    dm: usize,
    heads: usize,
    len: usize,
    q: D::Buf<E>,
    new_kv: D::Buf<E>,
    p: D::Buf<E>,
    ctx: D::Buf<E>,
    ones: D::Buf<E>,
}

impl<E: Elem, D: Backend<E>> KvCache<E, D> {
    /// Positions cached (the same for every sample).
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether no position is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The most positions it holds (the layer's context `T`).
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    /// Samples decoded side by side.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Forgets every cached position (the buffers are kept).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<E, D, const T: usize, const DM: usize, const H: usize, const QKV: usize>
    MultiHeadAttention<E, D, T, T, DM, H, QKV>
where
    E: Elem,
    D: AttentionKernels<E>,
{
    /// An empty cache for decoding `batch` sequences of at most `T`
    /// positions through this layer (all buffers allocated here, none in
    /// [`MultiHeadAttention::attend_step`]).
    pub fn kv_cache(&self, batch: usize) -> Result<KvCache<E, D>> {
        let dev = self.in_proj_weight.device();
        let mut ones = dev.zeros(batch)?;
        dev.fill(&mut ones, batch, E::one())?;
        Ok(KvCache {
            kv: dev.zeros(batch * T * 2 * DM)?,
            batch,
            capacity: T,
            dm: DM,
            heads: H,
            len: 0,
            q: dev.zeros(batch * DM)?,
            new_kv: dev.zeros(batch * 2 * DM)?,
            p: dev.zeros(batch * H * T)?,
            ctx: dev.zeros(batch * DM)?,
            ones,
        })
    }

    /// Causal self-attention of one new position per sample (see the
    /// [module doc](self)): `x` holds each sample's input row `[DM]`, `y`
    /// gets its output row; the position's key and value are appended to
    /// `cache`. An error when the cache is full (`T` positions: crop and
    /// refill), was made for another batch size or for another layer shape.
    pub fn attend_step(
        &self,
        x: &Tensor<S1<DM>, E, D>,
        cache: &mut KvCache<E, D>,
        y: &mut Tensor<S1<DM>, E, D>,
    ) -> Result<()> {
        let (batch, dev, hd) = (x.batch(), x.device(), DM / H);
        if cache.batch != batch || cache.dm != DM || cache.heads != H || cache.capacity != T {
            return Err(Error::invalid(
                "MultiHeadAttention::attend_step",
                format!(
                    "the cache was made for batch {}, DM {}, {} heads, {} positions; this call has batch {batch}, DM {DM}, {H} heads, T {T}",
                    cache.batch, cache.dm, cache.heads, cache.capacity
                ),
            ));
        }
        if cache.len == T {
            return Err(Error::invalid(
                "MultiHeadAttention::attend_step",
                format!("the cache holds its {T} positions (the layer's context): crop the sequence and refill it after `clear`"),
            ));
        }
        y.set_batch(batch)?;
        if batch == 0 {
            cache.len += 1;
            return Ok(());
        }
        let w = &self.in_proj_weight.buf;
        // q = x·W_qᵀ, k|v = x·W_{k,v}ᵀ (+ biases, as rank-1 products with ones).
        dev.gemm(
            &Gemm::dense(batch, DM, DM, false, true),
            &x.buf,
            w,
            &mut cache.q,
        )?;
        let g = Gemm {
            b_off: DM * DM,
            ..Gemm::dense(batch, 2 * DM, DM, false, true)
        };
        dev.gemm(&g, &x.buf, w, &mut cache.new_kv)?;
        if let Some(b) = &self.in_proj_bias {
            let ones = |n, off| Gemm {
                b_off: off,
                ..Gemm::dense(batch, n, 1, false, false).acc(Acc::Add)
            };
            dev.gemm(&ones(DM, 0), &cache.ones, &b.buf, &mut cache.q)?;
            dev.gemm(&ones(2 * DM, DM), &cache.ones, &b.buf, &mut cache.new_kv)?;
        }
        // Row `len` of each sample's K|V.
        let row = Block {
            rows: batch,
            cols: 2 * DM,
            src_ld: 2 * DM,
            src_off: 0,
            dst_ld: T * 2 * DM,
            dst_off: cache.len * 2 * DM,
        };
        dev.copy_block(&row, &cache.new_kv, &mut cache.kv, Acc::Set)?;
        cache.len += 1;
        let l = cache.len;
        let scale = 1.0 / (hd as f64).sqrt();
        for b in 0..batch {
            // p_h = q_h·K_hᵀ/√d over the l cached keys, into [b, h, 0..l].
            let g = Gemm {
                a_off: b * DM,
                lda: DM,
                b_off: b * T * 2 * DM,
                ldb: 2 * DM,
                c_off: b * H * l,
                alpha: scale,
                ..Gemm::dense(1, l, hd, false, true)
            };
            dev.gemm_batched(&heads(g, H, hd, hd, l), &cache.q, &cache.kv, &mut cache.p)?;
        }
        let d = AttnDims {
            batch,
            heads: H,
            queries: 1,
            keys: l,
            causal: false,
        };
        dev.attn_softmax_fwd(&d, None, &mut cache.p)?;
        for b in 0..batch {
            // o_h = p_h·V_h, heads side by side.
            let g = Gemm {
                a_off: b * H * l,
                b_off: b * T * 2 * DM + DM,
                ldb: 2 * DM,
                c_off: b * DM,
                ldc: DM,
                ..Gemm::dense(1, hd, l, false, false)
            };
            dev.gemm_batched(&heads(g, H, l, hd, hd), &cache.p, &cache.kv, &mut cache.ctx)?;
        }
        // y = o·W_oᵀ + b_o.
        let proj = &self.out_proj;
        dev.gemm(
            &Gemm::dense(batch, DM, DM, false, true),
            &cache.ctx,
            &proj.weight.buf,
            &mut y.buf,
        )?;
        if let Some(bias) = &proj.bias {
            dev.add_bias(&mut y.buf, &bias.buf, batch, DM)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::MultiHeadAttentionConfig;
    use super::*;
    use crate::module::{Build, Layer};
    use crate::shape::S2;
    use crate::testing::random_input;
    use crate::Cpu;

    type Mha = MultiHeadAttention<f64, Cpu, 5, 5, 8, 2, 24>;

    /// Causal attention with non-zero biases on both projections.
    fn layer() -> Mha {
        let cfg = MultiHeadAttentionConfig {
            bias: true,
            causal: true,
            ..Default::default()
        };
        let mut l = Mha::build(&Cpu, &mut crate::rng(3), cfg).unwrap();
        let b = random_input(24, &mut crate::rng(4));
        l.in_proj_bias
            .as_mut()
            .unwrap()
            .copy_from_slice(&b)
            .unwrap();
        let b = random_input(8, &mut crate::rng(5));
        l.out_proj
            .bias
            .as_mut()
            .unwrap()
            .copy_from_slice(&b)
            .unwrap();
        l
    }

    /// Position `t` of both samples through the cache gives row `t` of the
    /// whole-sequence causal forward pass, for every `t`; a sixth position
    /// is refused, and after `clear` the first position comes out again.
    #[test]
    fn cached_steps_equal_the_causal_forward_pass() {
        let l = layer();
        let xs = random_input(2 * 5 * 8, &mut crate::rng(6));
        let x = Tensor::<S2<5, 8>, f64>::from_slice(&Cpu, &xs).unwrap();
        let (mut y, mut c) = (Tensor::empty(&Cpu).unwrap(), l.cache().unwrap());
        l.forward(&x, &mut y, &mut c).unwrap();
        let y = y.to_vec().unwrap();
        let mut cache = l.kv_cache(2).unwrap();
        let mut out = Tensor::<S1<8>, f64>::empty(&Cpu).unwrap();
        let row = |t: usize| -> Vec<f64> {
            [0, 1]
                .iter()
                .flat_map(|b| xs[(b * 5 + t) * 8..(b * 5 + t + 1) * 8].to_vec())
                .collect()
        };
        let mut worst = 0.0f64;
        for t in 0..5 {
            let xt = Tensor::<S1<8>, f64>::from_slice(&Cpu, &row(t)).unwrap();
            l.attend_step(&xt, &mut cache, &mut out).unwrap();
            assert_eq!(cache.len(), t + 1);
            let got = out.to_vec().unwrap();
            for b in 0..2 {
                let want = &y[(b * 5 + t) * 8..(b * 5 + t + 1) * 8];
                for (g, w) in got[b * 8..b * 8 + 8].iter().zip(want) {
                    worst = worst.max((g - w).abs());
                }
            }
        }
        assert!(worst < 1e-12, "largest difference {worst:e}");
        let x0 = Tensor::<S1<8>, f64>::from_slice(&Cpu, &row(0)).unwrap();
        let e = l.attend_step(&x0, &mut cache, &mut out).unwrap_err();
        assert!(e.to_string().contains("holds its 5 positions"), "{e}");
        cache.clear();
        assert!(cache.is_empty());
        l.attend_step(&x0, &mut cache, &mut out).unwrap();
        let got = out.to_vec().unwrap();
        assert!((got[3] - y[3]).abs() < 1e-12 && (got[8 + 3] - y[5 * 8 + 3]).abs() < 1e-12);
        // A cache made for another batch size is refused.
        let one = Tensor::<S1<8>, f64>::from_slice(&Cpu, &row(0)[..8]).unwrap();
        let e = l.attend_step(&one, &mut cache, &mut out).unwrap_err();
        assert!(e.to_string().contains("batch 2"), "{e}");
    }
}
