//! The attention kernel family: the masked softmax over scaled scores and
//! its backward ([`AttentionKernels`], with the CPU's bodies), which the
//! layer in `attention.rs` calls and a device implements (CUDA:
//! `cuda/src/kernels/attention.*`).

use crate::device::{need, Backend};
use crate::elem::Elem;
use crate::error::Result;
use crate::Cpu;

// ---- the kernel family ---------------------------------------------------------

/// The layout of the attention weights a kernel sees: `[batch, heads,
/// queries, keys]`, row-major, one softmax row per query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnDims {
    /// Samples.
    pub batch: usize,
    /// Heads.
    pub heads: usize,
    /// Queries per sample (`T`).
    pub queries: usize,
    /// Keys per sample (`S`).
    pub keys: usize,
    /// Key `j` is masked for query `i` when `j > i`.
    pub causal: bool,
}

impl AttnDims {
    /// Elements of the weights `[batch, heads, queries, keys]`.
    pub fn len(&self) -> usize {
        self.batch * self.heads * self.queries * self.keys
    }
    /// Whether there are no weights.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether query `i` of sample `b` may attend to key `j`.
    fn allowed(&self, pad: Option<(&[u32], u32)>, b: usize, i: usize, j: usize) -> bool {
        !(self.causal && j > i) && pad.is_none_or(|(ids, p)| ids[b * self.keys + j] != p)
    }
}

/// The masked-softmax kernels of attention, for element type `E`.
///
/// Used by [`MultiHeadAttention`], which states `D: AttentionKernels<E>`.
/// Layers call the provided methods, which check arguments and lengths once
/// for every device and then call the `raw_` body that the device implements.
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no attention kernels for `{E}`",
    label = "needed by MultiHeadAttention"
)]
pub trait AttentionKernels<E: Elem>: Backend<E> {
    /// In place on the scores `a` `[batch, heads, queries, keys]`: each row
    /// becomes `p_j = e^{a_j − m} / Σ_k e^{a_k − m}` over the allowed keys
    /// (`m` their maximum) and exactly 0 at masked ones (see
    /// [`AttnDims::causal`]; with `pad = (ids, id)`, key `j` of sample `b` is
    /// masked when `ids[b·keys + j] = id`); a row with no allowed key is all 0.
    fn attn_softmax_fwd(
        &self,
        d: &AttnDims,
        pad: Option<(&Self::Buf<u32>, u32)>,
        a: &mut Self::Buf<E>,
    ) -> Result<()> {
        need(self, "attn_softmax_fwd a", a, d.len())?;
        if let Some((ids, _)) = pad {
            need(self, "attn_softmax_fwd ids", ids, d.batch * d.keys)?;
        }
        if d.is_empty() {
            return Ok(());
        }
        self.raw_attn_softmax_fwd(d, pad, a)
    }

    /// In place on `dp`, from the weights `p`: `dA_j = p_j·(dP_j − Σ_k dP_k·p_k)`
    /// per row (0 wherever `p` is 0: masked keys, fully masked rows).
    fn attn_softmax_bwd(
        &self,
        d: &AttnDims,
        p: &Self::Buf<E>,
        dp: &mut Self::Buf<E>,
    ) -> Result<()> {
        need(self, "attn_softmax_bwd p", p, d.len())?;
        need(self, "attn_softmax_bwd dp", dp, d.len())?;
        if d.is_empty() {
            return Ok(());
        }
        self.raw_attn_softmax_bwd(d, p, dp)
    }

    /// [`AttentionKernels::attn_softmax_fwd`] after its checks.
    fn raw_attn_softmax_fwd(
        &self,
        d: &AttnDims,
        pad: Option<(&Self::Buf<u32>, u32)>,
        a: &mut Self::Buf<E>,
    ) -> Result<()>;

    /// [`AttentionKernels::attn_softmax_bwd`] after its checks.
    fn raw_attn_softmax_bwd(
        &self,
        d: &AttnDims,
        p: &Self::Buf<E>,
        dp: &mut Self::Buf<E>,
    ) -> Result<()>;
}

impl<E: Elem> AttentionKernels<E> for Cpu {
    fn raw_attn_softmax_fwd(
        &self,
        d: &AttnDims,
        pad: Option<(&Vec<u32>, u32)>,
        a: &mut Vec<E>,
    ) -> Result<()> {
        let pad = pad.map(|(ids, p)| (ids.as_slice(), p));
        crate::simd::wide_loop(SoftmaxRows {
            d,
            pad,
            a: &mut a[..d.len()],
        });
        Ok(())
    }

    fn raw_attn_softmax_bwd(&self, d: &AttnDims, p: &Vec<E>, dp: &mut Vec<E>) -> Result<()> {
        let n = d.len();
        for (pr, dr) in p[..n]
            .chunks_exact(d.keys)
            .zip(dp[..n].chunks_exact_mut(d.keys))
        {
            let dot: E = pr.iter().zip(dr.iter()).map(|(a, b)| *a * *b).sum();
            for (v, pj) in dr.iter_mut().zip(pr) {
                *v = *pj * (*v - dot);
            }
        }
        Ok(())
    }
}

/// The CPU's masked softmax over the rows of `a`, run at the widest vectors
/// (`crate::simd::wide_loop`): per row the maximum over the allowed keys,
/// then `e^{a_j − m}` for every key with [`Elem::vexp`] in a loop that
/// vectorises (a libm call per score was most of the kernel), then the sum
/// over the allowed keys in key order, the masked keys set to 0, and the
/// division by the sum. Masked keys' exponentials are computed and thrown
/// away: no branch in the vector loop.
struct SoftmaxRows<'a, E> {
    d: &'a AttnDims,
    pad: Option<(&'a [u32], u32)>,
    a: &'a mut [E],
}

impl<E: Elem> crate::simd::Loop for SoftmaxRows<'_, E> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        let SoftmaxRows { d, pad, a } = self;
        for (r, row) in a.chunks_exact_mut(d.keys).enumerate() {
            let (b, i) = (r / (d.heads * d.queries), r % d.queries);
            let ok = |j: usize| d.allowed(pad, b, i, j);
            let m = (0..d.keys)
                .filter(|&j| ok(j))
                .fold(E::neg_infinity(), |m, j| m.max(row[j]));
            for v in row.iter_mut() {
                *v = (*v - m).vexp();
            }
            let mut s = E::zero();
            for (j, v) in row.iter_mut().enumerate() {
                if ok(j) {
                    s = s + *v;
                } else {
                    *v = E::zero();
                }
            }
            // A NaN sum (a NaN or infinite score) normalises too, so the
            // whole row is NaN as PyTorch's softmax; only an all-masked row
            // (sum 0) is left at zeros.
            if s > E::zero() || s.is_nan() {
                let inv = E::one() / s;
                row.iter_mut().for_each(|v| *v = *v * inv);
            }
        }
    }
}
