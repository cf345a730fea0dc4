//! [`MultiHeadAttention`]'s ONNX form (see [`MultiHeadAttention::onnx_attend`]),
//! beside the layer's file as its kernels are.

use super::MultiHeadAttention;
use crate::device::Backend;
use crate::elem::Elem;
use crate::error::Result;
use crate::onnx::{graph, join, Graph, Onnx};

/// ONNX through [`MultiHeadAttention::onnx_attend`], self-attention with no
/// padding mask; `network!` calls that method itself for cross-attention
/// and key-padding masks (it knows the memory and the padding id).
impl<
        E: Elem,
        D: Backend<E>,
        const T: usize,
        const S: usize,
        const DM: usize,
        const H: usize,
        const QKV: usize,
    > Onnx for MultiHeadAttention<E, D, T, S, DM, H, QKV>
{
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let [x] = inputs else {
            return Err(crate::onnx::unsupported::<Self>(&format!(
                "{at} (given {} inputs)",
                inputs.len()
            )));
        };
        self.onnx_attend(g, at, x, None, None)
    }
}

impl<
        E: Elem,
        D: Backend<E>,
        const T: usize,
        const S: usize,
        const DM: usize,
        const H: usize,
        const QKV: usize,
    > MultiHeadAttention<E, D, T, S, DM, H, QKV>
{
    /// ONNX, decomposed: `in_proj_weight` and `in_proj_bias` `Split` into
    /// their `q, k, v` rows; `Q = x·W_qᵀ + b_q`, `K`, `V` likewise from the
    /// memory (`x` itself for self-attention), each reshaped to
    /// `[batch, len, H, d]` and transposed to heads first;
    /// `A = Q·Kᵀ·(1/√d)`, plus a constant `−∞` mask where `j > i` when
    /// causal, plus `−∞` where the key's id equals the padding id
    /// (`Equal`, `Where` on the `int64` ids, `[batch, 1, 1, S]`);
    /// `Softmax(axis = -1)` (`e^{−∞}` is exactly 0, as this layer's masked
    /// positions); `P·V`, heads back side by side, `out_proj` through
    /// [`crate::layers::Linear`]'s own export. One difference: a query whose keys are all
    /// padding gets zeros here and NaN in ONNX Runtime (PyTorch's NaN too).
    pub fn onnx_attend(
        &self,
        g: &mut Graph,
        at: &str,
        x: &str,
        memory: Option<&str>,
        pad: Option<(&str, u32)>,
    ) -> Result<Vec<String>> {
        let d = DM / H;
        let m = memory.unwrap_or(x);
        let w = g.param(&join(at, "in_proj_weight"), &self.in_proj_weight)?;
        let ws = split3(g, at, "w", &w)?;
        let bs = match &self.in_proj_bias {
            Some(b) => {
                let b = g.param(&join(at, "in_proj_bias"), b)?;
                Some(split3(g, at, "b", &b)?)
            }
            None => None,
        };
        let mut project = |src: &str, k: usize, len: usize, perm: &[i64]| -> Result<String> {
            let wt = g.op(
                "Transpose",
                at,
                &[&ws[k]],
                vec![graph::ints("perm", &[1, 0])],
            );
            let mut p = g.op("MatMul", at, &[src, &wt], Vec::new());
            if let Some(bs) = &bs {
                p = g.op("Add", at, &[&p, &bs[k]], Vec::new());
            }
            let shape = [0, len as i64, H as i64, d as i64];
            let shape = g.int64s(&join(at, "heads_shape"), &shape)?;
            let r = g.op("Reshape", at, &[&p, &shape], Vec::new());
            Ok(g.op("Transpose", at, &[&r], vec![graph::ints("perm", perm)]))
        };
        let q = project(x, 0, T, &[0, 2, 1, 3])?;
        let kt = project(m, 1, S, &[0, 2, 3, 1])?;
        let v = project(m, 2, S, &[0, 2, 1, 3])?;
        let scores = g.op("MatMul", at, &[&q, &kt], Vec::new());
        let scale = g.scalar(&join(at, "scale"), 1.0 / (d as f64).sqrt())?;
        let mut scores = g.op("Mul", at, &[&scores, &scale], Vec::new());
        if self.causal {
            let mask: Vec<E> = (0..T * S)
                .map(|k| {
                    if k % S > k / S {
                        E::neg_infinity()
                    } else {
                        E::zero()
                    }
                })
                .collect();
            let m = g.values(&join(at, "causal_mask"), &[T, S], &mask)?;
            scores = g.op("Add", at, &[&scores, &m], Vec::new());
        }
        if let Some((ids, id)) = pad {
            let id = g.int64s(&join(at, "pad_id"), &[id as i64])?;
            let is_pad = g.op("Equal", at, &[ids, &id], Vec::new());
            let ninf = g.scalar(&join(at, "neg_inf"), f64::NEG_INFINITY)?;
            let zero = g.scalar(&join(at, "zero"), 0.0)?;
            let add = g.op("Where", at, &[&is_pad, &ninf, &zero], Vec::new());
            let axes = g.int64s(&join(at, "axes12"), &[1, 2])?;
            let add = g.op("Unsqueeze", at, &[&add, &axes], Vec::new());
            scores = g.op("Add", at, &[&scores, &add], Vec::new());
        }
        let p = g.op("Softmax", at, &[&scores], vec![graph::int("axis", -1)]);
        let o = g.op("MatMul", at, &[&p, &v], Vec::new());
        let o = g.op(
            "Transpose",
            at,
            &[&o],
            vec![graph::ints("perm", &[0, 2, 1, 3])],
        );
        let shape = g.int64s(&join(at, "out_shape"), &[0, T as i64, DM as i64])?;
        let o = g.op("Reshape", at, &[&o, &shape], Vec::new());
        self.out_proj.onnx(g, &join(at, "out_proj"), &[&o])
    }
}

/// `t` split along axis 0 into three equal parts (`q`, `k`, `v`).
fn split3(g: &mut Graph, at: &str, what: &str, t: &str) -> Result<[String; 3]> {
    let parts = ["q", "k", "v"].map(|p| g.fresh(&join(at, &format!("{what}_{p}"))));
    let refs: Vec<&str> = parts.iter().map(|s| s.as_str()).collect();
    g.node("Split", at, &[t], &refs, vec![graph::int("axis", 0)]);
    Ok(parts)
}
