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
    /// The initial state, `[1, batch, H]` values: `h`, and `c` for an LSTM
    /// (ONNX's `initial_h`, `initial_c`); zero when absent.
    pub init: Option<(&'a str, Option<&'a str>)>,
}

/// What a cell's operator made: its output (`[batch, T, H]`, or `[batch, H]`
/// with `last`) and its final state, `[1, batch, H]` each (`Y_h`, and an
/// LSTM's `Y_c`), for a `FinalState` that names the layer.
pub struct CellOut {
    /// The layer's output.
    pub y: String,
    /// `Y_h`.
    pub h: String,
    /// `Y_c` (LSTM only).
    pub c: Option<String>,
}

impl CellRole<'_> {
    /// A lone cell: PyTorch's `nn.LSTM` names of one layer, forward, every step.
    pub const ALONE: CellRole<'static> = CellRole {
        names: ["weight_ih", "weight_hh", "bias_ih", "bias_hh"],
        reverse: false,
        last: false,
        init: None,
    };
}

/// A recurrent cell that can write itself in a [`super::Recurrent`]'s role.
pub trait OnnxCell {
    /// Whether the state has a cell part (an LSTM's `c`).
    const HAS_C: bool;
    /// Appends the cell's nodes reading `x` (`[batch, T, I]`).
    fn onnx_cell(&self, g: &mut Graph, at: &str, x: &str, role: CellRole<'_>) -> Result<CellOut>;
}

/// Leaves a layer's final states (`[1, batch, H]` each, in layer and
/// direction order) for a `FinalState` naming it (see [`final_state`]).
pub(crate) fn leave_final(g: &mut Graph, at: &str, outs: &[CellOut]) {
    let mut values: Vec<String> = outs.iter().map(|o| o.h.clone()).collect();
    values.extend(outs.iter().filter_map(|o| o.c.clone()));
    g.set_side(
        &format!("{at}#final"),
        crate::onnx::graph::Side {
            values,
            attrs: vec![graph::int("cells", outs.len() as i64)],
        },
    );
}

/// ONNX of `FinalState(rnn)`: the final states the layer at `rnn_at` left,
/// as this crate's state, `[batch, layers·dirs, H]` (an LSTM's `[batch, 2,
/// layers·dirs, H]`, `h` then `c`).
pub fn final_state(g: &mut Graph, at: &str, rnn_at: &str) -> Result<Vec<String>> {
    let Some(side) = g.side(&format!("{rnn_at}#final")).cloned() else {
        return Err(crate::Error::invalid(
            "ONNX export",
            format!("`{at}` reads the final state of `{rnn_at}`, which left none"),
        ));
    };
    let n = side.attrs.first().and_then(|a| a.i).unwrap_or(0) as usize;
    let stack = |g: &mut Graph, parts: &[String]| {
        let refs: Vec<&str> = parts.iter().map(|s| s.as_str()).collect();
        let cat = g.op("Concat", at, &refs, vec![graph::int("axis", 0)]);
        g.op(
            "Transpose",
            at,
            &[&cat],
            vec![graph::ints("perm", &[1, 0, 2])],
        )
    };
    let h = stack(g, &side.values[..n]);
    if side.values.len() == n {
        return Ok(vec![h]);
    }
    let c = stack(g, &side.values[n..]);
    let one = g.int64s(&join(at, "axis1"), &[1])?;
    let h = g.op("Unsqueeze", at, &[&h, &one], Vec::new());
    let c = g.op("Unsqueeze", at, &[&c, &one], Vec::new());
    Ok(vec![g.op(
        "Concat",
        at,
        &[&h, &c],
        vec![graph::int("axis", 1)],
    )])
}

/// The initial state of cell `i` (layer `k`, direction `dir`: `i = k·dirs +
/// dir`) from a state value `s` (`[batch, n, H]`, or an LSTM's `[batch, 2,
/// n, H]`), as ONNX's `[1, batch, H]`.
pub(crate) fn initial(
    g: &mut Graph,
    at: &str,
    s: &str,
    i: usize,
    has_c: bool,
) -> Result<(String, Option<String>)> {
    let i = i as i64;
    let pick = |g: &mut Graph, part: Option<i64>| -> Result<String> {
        let (starts, ends, axes): (Vec<i64>, Vec<i64>, Vec<i64>) = match part {
            Some(p) => (vec![p, i], vec![p + 1, i + 1], vec![1, 2]),
            None => (vec![i], vec![i + 1], vec![1]),
        };
        let st = g.int64s(&join(at, "starts"), &starts)?;
        let en = g.int64s(&join(at, "ends"), &ends)?;
        let ax = g.int64s(&join(at, "axes"), &axes)?;
        let mut v = g.op("Slice", at, &[s, &st, &en, &ax], Vec::new());
        if part.is_some() {
            let one = g.int64s(&join(at, "axis1"), &[1])?;
            v = g.op("Squeeze", at, &[&v, &one], Vec::new());
        }
        Ok(g.op(
            "Transpose",
            at,
            &[&v],
            vec![graph::ints("perm", &[1, 0, 2])],
        ))
    };
    if has_c {
        Ok((pick(g, Some(0))?, Some(pick(g, Some(1))?)))
    } else {
        Ok((pick(g, None)?, None))
    }
}

impl<E: Elem, D: Backend<E>, SW: Shape, SR: Shape, SB: Shape> CellOnnx<'_, E, D, SW, SR, SB> {
    /// Appends the cell's nodes reading `x` (`[batch, T, I]`); returns `[batch, T, H]`.
    pub fn write(self, g: &mut Graph, at: &str, x: &str, role: CellRole<'_>) -> Result<CellOut> {
        let blocks = self.order.len();
        let [nw, nr, nbi, nbh] = role.names;
        let w = g.param(&join(at, nw), self.weight_ih)?;
        let r = g.param(&join(at, nr), self.weight_hh)?;
        let w = reorder(g, at, &w, blocks, self.order, true)?;
        let r = reorder(g, at, &r, blocks, self.order, true)?;
        let mut ins = vec![w, r];
        let lstm = self.op == "LSTM";
        if let (Some(bi), Some(bh)) = (self.bias_ih, self.bias_hh) {
            let bi = g.param(&join(at, nbi), bi)?;
            let bh = g.param(&join(at, nbh), bh)?;
            let bi = reorder(g, at, &bi, blocks, self.order, false)?;
            let bh = reorder(g, at, &bh, blocks, self.order, false)?;
            let b = g.op("Concat", at, &[&bi, &bh], vec![graph::int("axis", 0)]);
            ins.push(unsqueeze0(g, at, &b)?);
        } else if role.init.is_some() {
            ins.push(String::new()); // B left out
        }
        if let Some((h0, c0)) = role.init {
            ins.push(String::new()); // sequence_lens left out
            ins.push(h0.to_string());
            if lstm {
                ins.extend(c0.map(|c| c.to_string()));
            }
        }
        let xt = g.op("Transpose", at, &[x], vec![graph::ints("perm", &[1, 0, 2])]);
        let mut attrs = vec![graph::int("hidden_size", self.hidden as i64)];
        if role.reverse {
            attrs.push(graph::string("direction", "reverse"));
        }
        attrs.extend(self.attrs);
        let mut all = vec![xt.as_str()];
        all.extend(ins.iter().map(|s| s.as_str()));
        let y = if role.last {
            String::new() // Y left out: the output is Y_h
        } else {
            g.fresh(&join(at, "y"))
        };
        let h = g.fresh(&join(at, "h_n"));
        let c = lstm.then(|| g.fresh(&join(at, "c_n")));
        let mut outs = vec![y.as_str(), h.as_str()];
        outs.extend(c.as_deref());
        g.node(self.op, at, &all, &outs, attrs);
        let y = if role.last {
            let zero = g.int64s(&join(at, "axis0"), &[0])?;
            g.op("Squeeze", at, &[&h, &zero], Vec::new())
        } else {
            let one = g.int64s(&join(at, "axis1"), &[1])?;
            let y = g.op("Squeeze", at, &[&y, &one], Vec::new());
            g.op(
                "Transpose",
                at,
                &[&y],
                vec![graph::ints("perm", &[1, 0, 2])],
            )
        };
        Ok(CellOut { y, h, c })
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
