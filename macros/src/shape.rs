//! Shape inference: walks the nodes in order, one rule per operation, and
//! reports every inconsistency at the span of the node at fault with the
//! shapes written as numbers.

use crate::diag::{dims, Diag};
use crate::dim;
use crate::ir::{Net, Op, Val};
use crate::kinds::ShapeIn;

/// Rule: every declared dimension is at least 1 and a shape has rank 1 to 4.
fn check_declared(diag: &mut Diag, what: &str, d: &crate::parse::Dims) {
    if d.dims.is_empty() || d.dims.len() > 4 {
        diag.error(
            d.span,
            format!(
                "{what} has rank {}; kiln shapes have 1 to 4 dimensions per sample",
                d.dims.len()
            ),
        );
    }
    for (v, s) in &d.dims {
        if *v == 0 {
            diag.error(
                *s,
                format!(
                    "{what} has a zero-sized dimension in {}; every dimension must be at least 1",
                    dims(&d.values())
                ),
            );
        }
    }
}

/// How the operands of an addition or concatenation got their sizes, for
/// the message when they disagree: the layers that made them say so (a
/// strided window that rounds down, a transposed convolution and the
/// `output_padding` that would add a row), each as `; \`label\`: …`.
fn explain_operands(net: &Net, args: &[Val]) -> String {
    let mut out = String::new();
    for &v in args {
        if let Val::Node(m) = v {
            if let Op::Layer(li) = net.nodes[m].op {
                let input = net.shape(net.nodes[m].args[0]);
                if let Some(why) = net.layers[li].kind.explain_out(input, net.shape(v)) {
                    out.push_str(&format!(
                        "; `{}` gives {}: {why}",
                        net.nodes[m].label,
                        dims(net.shape(v))
                    ));
                }
            }
        }
    }
    out
}

/// How messages write a token value's type: `Tokens<[T], 27>`.
fn tokens_text(net: &Net, v: Val, vocab: usize) -> String {
    let d: Vec<String> = net.shape(v).iter().map(|d| dim::text(*d)).collect();
    format!("Tokens<[{}], {}>", d.join(", "), dim::text(vocab))
}

/// Rule: token ids are read by `Embedding` only; arithmetic on them is refused.
fn no_tokens(net: &Net, args: &[Val], what: &str) -> Result<(), String> {
    for &v in args {
        if let Some(voc) = net.vocab(v) {
            return Err(format!(
                "{what} is applied to token ids `{}` ({}); only `Embedding` reads ids — embed them first",
                net.val_label(v),
                tokens_text(net, v, voc)
            ));
        }
    }
    Ok(())
}

/// Rule for `a + b`: both operands have the same shape.
fn add_rule(net: &Net, args: &[Val]) -> Result<Vec<usize>, String> {
    no_tokens(net, args, "`+`")?;
    let (a, b) = (net.shape(args[0]), net.shape(args[1]));
    if !dim::same_shape(a, b) {
        return Err(format!(
            "cannot add `{}` of shape {} and `{}` of shape {}: a residual addition needs equal shapes{}",
            net.val_label(args[0]),
            dims(a),
            net.val_label(args[1]),
            dims(b),
            explain_operands(net, args)
        ));
    }
    Ok(a.to_vec())
}

/// The dimension `concat(.., dim = d)` joins along, for operands of rank
/// `rank` (a negative `d` counts from the last, as in PyTorch), or `None`
/// when there is no such dimension.
pub fn concat_axis(d: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if d < 0 { d + r } else { d };
    (0..r).contains(&a).then_some(a as usize)
}

/// Rule for `concat(a, b, …, dim = d)`: joined along dimension `d` (the
/// first by default: features of a vector, channels of an image); every
/// other dimension must agree.
fn concat_rule(net: &Net, args: &[Val], d: i64) -> Result<Vec<usize>, String> {
    no_tokens(net, args, "`concat`")?;
    let first = net.shape(args[0]);
    if let Some(&v) = args.iter().find(|v| !dim::all_known(net.shape(**v))) {
        return Err(format!(
            "`{}` of shape {} has a dimension the macro cannot see; `concat` needs its operands' dimensions as literals or integer expressions",
            net.val_label(v),
            dims(net.shape(v))
        ));
    }
    let Some(axis) = concat_axis(d, first.len()) else {
        return Err(format!(
            "`concat` along dim {d}, but `{}` of shape {} has dims 0 to {} (or -{} to -1 from the last)",
            net.val_label(args[0]),
            dims(first),
            first.len() - 1,
            first.len()
        ));
    };
    let mut out = first.to_vec();
    for &v in &args[1..] {
        let s = net.shape(v);
        let others_agree = s.len() == first.len()
            && s.iter()
                .zip(first)
                .enumerate()
                .all(|(i, (a, b))| i == axis || a == b);
        if !others_agree {
            let which = if axis == 0 {
                "the first".to_string()
            } else {
                format!("dim {axis}")
            };
            return Err(format!(
                "cannot concatenate `{}` of shape {} with `{}` of shape {}: all dimensions but {which} must agree{}",
                net.val_label(args[0]),
                dims(first),
                net.val_label(v),
                dims(s),
                explain_operands(net, &[args[0], v])
            ));
        }
        out[axis] += s[axis];
    }
    Ok(out)
}

/// The dimensions a value's features come from, for messages: a flattened
/// value explains itself as `400 = 16×5×5` by the shape before `flatten`.
fn origin_dims(net: &Net, v: Val) -> Vec<usize> {
    if let Val::Node(m) = v {
        if let Op::Layer(li) = net.nodes[m].op {
            if net.layers[li].kind.explains_features() {
                return net.shape(net.nodes[m].args[0]).to_vec();
            }
        }
    }
    net.shape(v).to_vec()
}

/// Rule for a layer: its kind's rule at its first application (see
/// `kinds/`), and the same input shape at every later one (a shared layer).
fn layer_rule(net: &Net, j: usize, li: usize) -> Result<Vec<usize>, String> {
    let arg = net.nodes[j].args[0];
    let input = net.shape(arg);
    let from = net.val_label(arg);
    let layer = &net.layers[li];
    let who = &net.nodes[j].label;
    // Rule: token ids go to a layer that reads them (`Embedding`), and
    // such a layer is fed nothing else.
    match (net.vocab(arg), layer.kind.reads_tokens()) {
        (Some(v), false) => {
            return Err(format!(
                "`{who}` is fed token ids `{from}` ({}); only `Embedding` reads ids — embed them first: `{from} |> Embedding({}, 64)`",
                tokens_text(net, arg, v),
                dim::text(v)
            ))
        }
        (None, true) => {
            return Err(format!(
                "`{who}` reads token ids, but `{from}` gives float values of shape {}; feed it an input declared `input ids: Tokens<[..], V>`",
                dims(input)
            ))
        }
        _ => {}
    }
    if layer.uses.first() != Some(&j) {
        if !dim::same_shape(&layer.in_shape, input) {
            return Err(format!(
                "layer `{}` is shared: it was first applied to shape {} but here `{from}` gives {}",
                layer.field,
                dims(&layer.in_shape),
                dims(input)
            ));
        }
        return Ok(layer.out_shape.clone());
    }
    let origin = origin_dims(net, arg);
    if !layer.kind.symbolic() && !dim::all_known(input) {
        return Err(format!(
            "`{who}` computes its output size when the macro expands, but `{from}` gives shape {}, with a dimension the macro cannot see (a named constant or a generic parameter); write that dimension as a literal or an integer expression",
            dims(input)
        ));
    }
    let out = layer.kind.out_shape(&ShapeIn {
        who,
        input,
        from: &from,
        origin: &origin,
        vocab: net.vocab(arg),
        net,
        node: j,
    })?;
    if out.len() > 4 || out.contains(&0) {
        return Err(format!(
            "`{who}` would produce shape {}; shapes have 1 to 4 non-zero dimensions",
            dims(&out)
        ));
    }
    Ok(out)
}

/// Infers every node's shape and every layer's type, reporting every
/// inconsistency to `diag` (which may already hold the name errors of the
/// same invocation: both are reported in one build).
pub fn infer(net: &mut Net, diag: &mut Diag) {
    let before = diag.count();
    for i in &net.inputs {
        let what = if i.named {
            format!("input `{}`", i.name)
        } else {
            "the input".to_string()
        };
        check_declared(diag, &what, &i.dims);
        if let Some((0, span)) = i.vocab {
            diag.error(
                span,
                format!("{what} has a vocabulary of 0 ids; it must be at least 1"),
            );
        }
    }
    // A malformed input shape would make every node after it wrong.
    if diag.count() > before {
        return;
    }
    // Rule: an output is a float value; ids pass through `Embedding` first.
    for o in &net.outputs {
        if let Some(v) = net.vocab(o.val) {
            diag.error(
                o.name.span(),
                format!(
                    "output `{}` would be token ids `{}` ({}); a network's outputs are float values",
                    o.name,
                    net.val_label(o.val),
                    tokens_text(net, o.val, v)
                ),
            );
        }
    }
    let k = net.krate.clone();
    for j in 0..net.nodes.len() {
        let args = net.nodes[j].args.clone();
        // A node after a failed one has no shape; skip it rather than cascade.
        if args
            .iter()
            .any(|v| matches!(v, Val::Node(m) if net.nodes[*m].shape.is_empty()))
        {
            continue;
        }
        let res = match net.nodes[j].op {
            Op::Add => add_rule(net, &args),
            Op::Concat(d) => concat_rule(net, &args, d),
            Op::Layer(li) => layer_rule(net, j, li),
        };
        match res {
            Ok(shape) => {
                if let Op::Layer(li) = net.nodes[j].op {
                    let input = net.shape(args[0]).to_vec();
                    let l = &mut net.layers[li];
                    if l.ty.is_empty() {
                        l.ty = l.kind.ty(&k, &input, &shape);
                        l.in_shape = input;
                        l.out_shape = shape.clone();
                    }
                }
                if let Some((name, d)) = &net.nodes[j].declared {
                    check_declared(diag, &format!("`{name}`"), d);
                    if !dim::same_shape(&d.values(), &shape) {
                        diag.error(
                            d.span,
                            format!(
                                "`{name}` is declared as {} but `{}` gives {}",
                                dims(&d.values()),
                                net.nodes[j].label,
                                dims(&shape)
                            ),
                        );
                    }
                }
                net.nodes[j].shape = shape;
            }
            Err(msg) => diag.error_range(net.nodes[j].range, msg),
        }
        // Comparisons the macro could not decide become type equalities
        // that the compiler checks at this node (see `dim.rs`).
        for (a, b) in dim::take_deferred() {
            net.checks.push((net.nodes[j].range.0, a, b));
        }
    }
}
