//! The graph builder layers write their ONNX nodes into: unique value and
//! node names, initializers under their `state_dict` names (written once,
//! however many layers read them), constants and attributes.

use super::proto::{
    attr_type, AttributeProto, Dimension, NodeProto, TensorProto, TensorShapeProto, TypeProto,
    TypeProtoTensor, ValueInfoProto, DOUBLE, FLOAT, INT64,
};
use crate::device::{Backend, Window2d};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;
use std::collections::{HashMap, HashSet};

/// An ONNX graph under construction (see the [module docs](super)).
pub struct Graph {
    elem: i32,
    pub(super) nodes: Vec<NodeProto>,
    pub(super) inits: Vec<TensorProto>,
    /// Every value, initializer and node name given out so far.
    taken: HashSet<String>,
    init_names: HashSet<String>,
    /// Values a layer leaves for another to read, by a key of the first's
    /// choosing (a max pool's indices for the unpooling that names it).
    side: HashMap<String, Side>,
}

/// What a layer leaves in the graph for a later one (see [`Graph::set_side`]).
#[derive(Clone, Debug, Default)]
pub struct Side {
    /// Value names.
    pub values: Vec<String>,
    /// Attributes the reader copies (a pool's window).
    pub attrs: Vec<AttributeProto>,
}

/// The ONNX data type of kiln's element type `E` (`FLOAT` or `DOUBLE`).
pub fn elem_type<E: Elem>() -> i32 {
    if E::NAME == "f64" {
        DOUBLE
    } else {
        FLOAT
    }
}

/// `at.name`, or `name` at the root.
pub fn join(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_string()
    } else {
        format!("{at}.{name}")
    }
}

/// Little-endian bytes of `E` values, in the graph's element type.
fn raw<E: Elem>(v: &[E]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 8);
    for &x in v {
        if E::NAME == "f64" {
            out.extend_from_slice(&x.f64().to_le_bytes());
        } else {
            out.extend_from_slice(&(x.f64() as f32).to_le_bytes());
        }
    }
    out
}

/// An attribute `name = i`.
pub fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attr_type::INT),
        i: Some(i),
        ..Default::default()
    }
}

/// An attribute `name = [ints]`.
pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attr_type::INTS),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// An attribute `name = f`.
pub fn float(name: &str, f: f64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attr_type::FLOAT),
        f: Some(f as f32),
        ..Default::default()
    }
}

/// An attribute `name = "s"`.
pub fn string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attr_type::STRING),
        s: Some(s.as_bytes().to_vec()),
        ..Default::default()
    }
}

/// A window's attributes (`Conv`, `MaxPool`, `AveragePool`):
/// `kernel_shape`, `strides`, `pads` (begin and end, both `p`) and, when
/// `dilations` is true, `dilations`.
pub fn window(w: &Window2d, dilations: bool) -> Vec<AttributeProto> {
    let i = |v: usize| v as i64;
    let mut a = vec![
        ints("kernel_shape", &[i(w.kh), i(w.kw)]),
        ints("strides", &[i(w.sh), i(w.sw)]),
        ints("pads", &[i(w.ph), i(w.pw), i(w.ph), i(w.pw)]),
    ];
    if dilations {
        a.push(ints("dilations", &[i(w.dh), i(w.dw)]));
    }
    a
}

/// An attribute `name = ["s", …]`.
pub fn strings(name: &str, v: &[&str]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attr_type::STRINGS),
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}

/// A tensor type of element type `elem` and shape `["batch", dims…]`, or
/// `dims` alone when `batch` is false.
pub fn value_info(name: &str, elem: i32, dims: &[usize], batch: bool) -> ValueInfoProto {
    let mut dim = Vec::with_capacity(dims.len() + 1);
    if batch {
        dim.push(Dimension {
            dim_value: None,
            dim_param: Some("batch".into()),
        });
    }
    dim.extend(dims.iter().map(|&d| Dimension {
        dim_value: Some(d as i64),
        dim_param: None,
    }));
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: Some(elem),
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

impl Graph {
    /// An empty graph whose float values have kiln's element type `E`.
    pub fn new<E: Elem>() -> Self {
        Graph {
            elem: elem_type::<E>(),
            nodes: Vec::new(),
            inits: Vec::new(),
            taken: HashSet::new(),
            init_names: HashSet::new(),
            side: HashMap::new(),
        }
    }

    /// The ONNX data type of the graph's float values.
    pub fn elem(&self) -> i32 {
        self.elem
    }

    /// A value name not given out before: `hint`, else `hint_2`, `hint_3`, ….
    pub fn fresh(&mut self, hint: &str) -> String {
        let hint = if hint.is_empty() { "v" } else { hint };
        if self.taken.insert(hint.to_string()) {
            return hint.to_string();
        }
        let mut k = 2;
        loop {
            let name = format!("{hint}_{k}");
            if self.taken.insert(name.clone()) {
                return name;
            }
            k += 1;
        }
    }

    /// Reserves `name` exactly (a graph input or output); an error if taken.
    pub fn reserve(&mut self, name: &str) -> Result<()> {
        if self.taken.insert(name.to_string()) {
            Ok(())
        } else {
            Err(Error::invalid(
                "ONNX export",
                format!("the name `{name}` is used twice in the graph"),
            ))
        }
    }

    /// Appends a node `op(inputs) -> outputs` named after the layer at `at`
    /// (an empty input name is ONNX's "optional input left out").
    pub fn node(
        &mut self,
        op: &str,
        at: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) {
        let name = self.fresh(&format!("{}/{op}", if at.is_empty() { "net" } else { at }));
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name: Some(name),
            op_type: Some(op.into()),
            attribute: attrs,
        });
    }

    /// A node with one output, a new value named after `at` (`fc1`,
    /// then `fc1_2`, …); returns that name.
    pub fn op(
        &mut self,
        op: &str,
        at: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> String {
        let y = self.fresh(if at.is_empty() { op } else { at });
        self.node(op, at, inputs, &[&y], attrs);
        y
    }

    /// The parameter `t` as an initializer named `name` (its `state_dict`
    /// name), of its PyTorch shape; written once, so a shared layer's
    /// weights appear once however often it is applied. Returns the name.
    pub fn param<S: Shape, E: Elem, D: Backend<E>>(
        &mut self,
        name: &str,
        t: &Tensor<S, E, D>,
    ) -> Result<String> {
        if self.init_names.contains(name) {
            return Ok(name.to_string());
        }
        let v = t.to_vec()?;
        let mut dims: Vec<i64> = S::DIMS.iter().map(|&d| d as i64).collect();
        if t.batch() != 1 {
            dims.insert(0, t.batch() as i64);
        }
        self.init(name, dims, self.elem, raw(&v))
    }

    /// Host values as the initializer named `name` (a parameter's
    /// `state_dict` name, written once) of shape `dims`, for a parameter
    /// whose exported values are computed (a masked weight).
    pub fn param_values<E: Elem>(&mut self, name: &str, dims: &[usize], v: &[E]) -> Result<String> {
        if self.init_names.contains(name) {
            return Ok(name.to_string());
        }
        let dims = dims.iter().map(|&d| d as i64).collect();
        self.init(name, dims, self.elem, raw(v))
    }

    /// Host values as an initializer of the graph's element type.
    pub fn values<E: Elem>(&mut self, hint: &str, dims: &[usize], v: &[E]) -> Result<String> {
        let name = self.fresh(hint);
        let dims = dims.iter().map(|&d| d as i64).collect();
        self.init(&name, dims, self.elem, raw(v))
    }

    /// A scalar constant of the graph's element type.
    pub fn scalar(&mut self, hint: &str, x: f64) -> Result<String> {
        let name = self.fresh(hint);
        let bytes = if self.elem == DOUBLE {
            x.to_le_bytes().to_vec()
        } else {
            (x as f32).to_le_bytes().to_vec()
        };
        self.init(&name, Vec::new(), self.elem, bytes)
    }

    /// A one-dimensional `int64` constant (a `Reshape` target, `Slice` bounds).
    pub fn int64s(&mut self, hint: &str, v: &[i64]) -> Result<String> {
        let name = self.fresh(hint);
        let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.init(&name, vec![v.len() as i64], INT64, bytes)
    }

    fn init(
        &mut self,
        name: &str,
        dims: Vec<i64>,
        data_type: i32,
        bytes: Vec<u8>,
    ) -> Result<String> {
        self.taken.insert(name.to_string());
        self.init_names.insert(name.to_string());
        self.inits.push(TensorProto {
            dims,
            data_type: Some(data_type),
            name: Some(name.into()),
            raw_data: Some(bytes),
        });
        Ok(name.to_string())
    }

    /// Leaves values and attributes under `key` (a layer's path) for a
    /// later layer that names it: a max pool's indices and input for the
    /// unpooling that restores its positions.
    pub fn set_side(&mut self, key: &str, side: Side) {
        self.side.insert(key.to_string(), side);
    }

    /// What the layer at `key` left (see [`Graph::set_side`]).
    pub fn side(&self, key: &str) -> Option<&Side> {
        self.side.get(key)
    }

    /// A one-dimensional `float` constant (ONNX wants some, such as
    /// `Resize`'s scales, in `float` whatever the graph's element type).
    pub fn floats(&mut self, hint: &str, v: &[f32]) -> Result<String> {
        let name = self.fresh(hint);
        let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.init(&name, vec![v.len() as i64], FLOAT, bytes)
    }
}
