//! The ONNX form shared by the recurrent cells (`LSTM`, `GRU`, `RNN`, one
//! layer, one direction): ONNX's own operator of the same name, whose
//! semantics match once the gate blocks are put in its order.
//!
//! ONNX stores `W` as `[1, G, I]`, `R` as `[1, G, H]` and `B` as `[1, 2G]`
//! (`W`'s biases, then `R`'s), gates in its own order (`LSTM`: `i, o, f, c`;
//! `GRU`: `z, r, h`), and reads `X` as `[T, batch, I]`. The initializers
//! keep their `state_dict` names and PyTorch's layout (`weight_ih` `[G, I]`,
//! gate blocks `i, f, g, o` or `r, z, n`); nodes in the graph `Split` them
//! into blocks, `Concat` them in ONNX's order and `Unsqueeze` the direction
//! axis (constant work, which runtimes fold at load). The input is
//! transposed to time-major and the output `Y`, `[T, 1, batch, H]`, back to
//! `[batch, T, H]`.

use crate::device::Backend;
use crate::elem::Elem;
use crate::error::Result;
use crate::onnx::{graph, join, Graph};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// One cell's parameters and how ONNX wants them.
pub(crate) struct CellOnnx<'a, E: Elem, D: Backend<E>, SW: Shape, SR: Shape, SB: Shape> {
    /// `LSTM`, `GRU` or `RNN`.
    pub op: &'static str,
    /// The hidden size `H`.
    pub hidden: usize,
    /// ONNX's gate blocks as indices into PyTorch's (`LSTM`: `[0, 3, 1, 2]`).
    pub order: &'static [usize],
    pub weight_ih: &'a Tensor<SW, E, D>,
    pub weight_hh: &'a Tensor<SR, E, D>,
    pub bias_ih: Option<&'a Tensor<SB, E, D>>,
    pub bias_hh: Option<&'a Tensor<SB, E, D>>,
    /// Attributes besides `hidden_size` (`linear_before_reset`, `activations`).
    pub attrs: Vec<crate::onnx::proto::AttributeProto>,
}

/// How one cell is written: its parameters' names (`weight_ih`, … or
/// `weight_ih_l1_reverse`, … inside a [`super::Recurrent`]), its direction,
/// and whether the output is every step (`[batch, T, H]`) or the final
/// state only (`[batch, H]`: ONNX's `Y_h`, which for the reverse direction
/// is the state after step 0, as this crate's `last`).
#[derive(Clone, Copy)]
pub struct CellRole<'a> {
    /// `W_ih`, `W_hh`, `b_ih`, `b_hh`.
    pub names: [&'a str; 4],
    /// ONNX's `direction = "reverse"`: the sequence read backwards, each
    /// output at its own position (this crate's reverse direction).
    pub reverse: bool,
    /// The final state instead of every step's.
    pub last: bool,
}

impl CellRole<'_> {
    /// A lone cell: PyTorch's `nn.LSTM` names of one layer, forward, every step.
    pub const ALONE: CellRole<'static> = CellRole {
        names: ["weight_ih", "weight_hh", "bias_ih", "bias_hh"],
        reverse: false,
        last: false,
    };
}

/// A recurrent cell that can write itself in a [`super::Recurrent`]'s role.
pub trait OnnxCell {
    /// Appends the cell's nodes reading `x` (`[batch, T, I]`).
    fn onnx_cell(&self, g: &mut Graph, at: &str, x: &str, role: CellRole<'_>) -> Result<String>;
}

impl<E: Elem, D: Backend<E>, SW: Shape, SR: Shape, SB: Shape> CellOnnx<'_, E, D, SW, SR, SB> {
    /// Appends the cell's nodes reading `x` (`[batch, T, I]`); returns `[batch, T, H]`.
    pub fn write(self, g: &mut Graph, at: &str, x: &str, role: CellRole<'_>) -> Result<String> {
        let blocks = self.order.len();
        let [nw, nr, nbi, nbh] = role.names;
        let w = g.param(&join(at, nw), self.weight_ih)?;
        let r = g.param(&join(at, nr), self.weight_hh)?;
        let w = reorder(g, at, &w, blocks, self.order, true)?;
        let r = reorder(g, at, &r, blocks, self.order, true)?;
        let mut ins = vec![w, r];
        if let (Some(bi), Some(bh)) = (self.bias_ih, self.bias_hh) {
            let bi = g.param(&join(at, nbi), bi)?;
            let bh = g.param(&join(at, nbh), bh)?;
            let bi = reorder(g, at, &bi, blocks, self.order, false)?;
            let bh = reorder(g, at, &bh, blocks, self.order, false)?;
            let b = g.op("Concat", at, &[&bi, &bh], vec![graph::int("axis", 0)]);
            ins.push(unsqueeze0(g, at, &b)?);
        }
        let xt = g.op("Transpose", at, &[x], vec![graph::ints("perm", &[1, 0, 2])]);
        let mut attrs = vec![graph::int("hidden_size", self.hidden as i64)];
        if role.reverse {
            attrs.push(graph::string("direction", "reverse"));
        }
        attrs.extend(self.attrs);
        let mut all = vec![xt.as_str()];
        all.extend(ins.iter().map(|s| s.as_str()));
        if role.last {
            // Y left out (an empty name), Y_h `[1, batch, H]` squeezed.
            let yh = g.fresh(&join(at, "h_n"));
            g.node(self.op, at, &all, &["", &yh], attrs);
            let zero = g.int64s(&join(at, "axis0"), &[0])?;
            return Ok(g.op("Squeeze", at, &[&yh, &zero], Vec::new()));
        }
        let y = g.op(self.op, at, &all, attrs);
        let one = g.int64s(&join(at, "axis1"), &[1])?;
        let y = g.op("Squeeze", at, &[&y, &one], Vec::new());
        Ok(g.op(
            "Transpose",
            at,
            &[&y],
            vec![graph::ints("perm", &[1, 0, 2])],
        ))
    }
}

/// `t` (`[blocks·H, …]`) with its row blocks in `order`, then (for the
/// matrices) a leading direction axis; biases get theirs after `Concat`.
fn reorder(
    g: &mut Graph,
    at: &str,
    t: &str,
    blocks: usize,
    order: &[usize],
    unsq: bool,
) -> Result<String> {
    let out = if order.iter().enumerate().all(|(i, &o)| i == o) {
        t.to_string()
    } else {
        let parts: Vec<String> = (0..blocks)
            .map(|k| g.fresh(&format!("{t}.block{k}")))
            .collect();
        let refs: Vec<&str> = parts.iter().map(|s| s.as_str()).collect();
        g.node("Split", at, &[t], &refs, vec![graph::int("axis", 0)]);
        let ordered: Vec<&str> = order.iter().map(|&k| refs[k]).collect();
        g.op("Concat", at, &ordered, vec![graph::int("axis", 0)])
    };
    if unsq {
        unsqueeze0(g, at, &out)
    } else {
        Ok(out)
    }
}

fn unsqueeze0(g: &mut Graph, at: &str, t: &str) -> Result<String> {
    let zero = g.int64s(&join(at, "axis0"), &[0])?;
    Ok(g.op("Unsqueeze", at, &[t, &zero], Vec::new()))
}
