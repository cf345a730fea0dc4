//! The builder's naming and the encoding, checked by decoding what it wrote.

use super::proto::{ModelProto, FLOAT};
use super::*;
use crate::layers::{Linear, LinearConfig, Relu};
use crate::{rng, Build, Cpu, S1};

#[test]
fn fresh_names_are_unique_and_readable() {
    let mut g = Graph::new::<f32>();
    assert_eq!(g.fresh("fc1"), "fc1");
    assert_eq!(g.fresh("fc1"), "fc1_2");
    assert_eq!(g.fresh("fc1"), "fc1_3");
    g.reserve("x").unwrap();
    assert_eq!(g.fresh("x"), "x_2");
    let e = g.reserve("x").unwrap_err().to_string();
    assert!(e.contains("`x` is used twice"), "{e}");
    assert_eq!(join("", "fc1"), "fc1");
    assert_eq!(join("block", "fc1"), "block.fc1");
}

#[test]
fn type_names_lose_their_module_paths() {
    assert_eq!(
        short_type_name("kiln_core::layers::lstm::Lstm<f32, kiln_core::cpu::Cpu, 4, 8, 16, 32>"),
        "Lstm<f32, Cpu, 4, 8, 16, 32>"
    );
}

/// A parameter read twice (a shared layer) is one initializer; values are
/// the tensor's, little-endian, under its `state_dict` name and shape.
#[test]
fn parameters_are_written_once_under_their_names() {
    let l = Linear::<f32, Cpu, 3, 3>::build(&Cpu, &mut rng(1), LinearConfig::default()).unwrap();
    let mut g = Graph::new::<f32>();
    let a = l.onnx(&mut g, "enc", &["x"]).unwrap();
    let b = l.onnx(&mut g, "enc", &[&a[0]]).unwrap();
    assert_eq!((a[0].as_str(), b[0].as_str()), ("enc", "enc_2"));
    assert_eq!(g.inits.len(), 2);
    assert_eq!(g.nodes.len(), 2);
    assert_eq!(g.nodes[1].input, vec!["enc", "enc.weight", "enc.bias"]);
    let w = &g.inits[0];
    assert_eq!(w.name.as_deref(), Some("enc.weight"));
    assert_eq!(w.dims, vec![3, 3]);
    let bytes = w.raw_data.as_ref().unwrap();
    let vals: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(vals, l.weight.to_vec().unwrap());
}

/// The encoded model decodes to what was built: IR 8, opset 17, the batch
/// symbolic, the output an `Identity` of the last layer's value.
#[test]
fn a_model_round_trips_through_protobuf() {
    let l = Linear::<f32, Cpu, 3, 2>::build(&Cpu, &mut rng(1), LinearConfig::default()).unwrap();
    let io = |name, dims| Io {
        name,
        dims,
        tokens: false,
    };
    let bytes = model_bytes::<f32, _>(&l, "lin", &[io("x", &[3])], &[io("y", &[2])]).unwrap();
    let m = ModelProto::decode(bytes.as_slice()).unwrap();
    assert_eq!(m.ir_version, Some(8));
    assert_eq!(m.opset_import[0].version, Some(17));
    let g = m.graph.unwrap();
    let ops: Vec<_> = g.node.iter().map(|n| n.op_type.clone().unwrap()).collect();
    assert_eq!(ops, ["Gemm", "Identity"]);
    assert_eq!(g.node[1].input, ["Gemm"]);
    assert_eq!(g.node[1].output, ["y"]);
    let t = g.input[0].r#type.clone().unwrap().tensor_type.unwrap();
    assert_eq!(t.elem_type, Some(FLOAT));
    let d = t.shape.unwrap().dim;
    assert_eq!(d[0].dim_param.as_deref(), Some("batch"));
    assert_eq!(d[1].dim_value, Some(3));
    assert_eq!(g.initializer.len(), 2);
}

/// A layer without an ONNX form is an error naming its path and type.
#[test]
fn a_layer_without_an_onnx_form_is_named() {
    let l = crate::layers::FinalState::<S1<4>>::default();
    let mut g = Graph::new::<f32>();
    let e = l.onnx(&mut g, "dec.state", &["x"]).unwrap_err().to_string();
    assert!(
        e.contains("layer `dec.state` (FinalState<S1<4>>) has no ONNX form"),
        "{e}"
    );
    let _ = Relu::<S1<4>>::default().onnx(&mut g, "r", &["x"]).unwrap();
}
