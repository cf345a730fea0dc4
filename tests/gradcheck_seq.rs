//! Dimensions written as integer expressions and named constants, and (as
//! they land) the shapes sequences need: each network here is gradient-checked
//! against central differences in f64 like those of `gradcheck.rs`.

use kiln::prelude::*;
use kiln::testing::check_layer;

const TOL: f64 = 1e-6;

kiln::network! {
    /// LeNet-5 with the flattened width written as PyTorch users write it.
    pub struct LeNetExpr {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5, padding = 2),
        relu,
        pool1: MaxPool2d(2),
        conv2: Conv2d(2 * 8, kernel = 5),
        relu,
        pool2: MaxPool2d(2),
        flatten,
        fc1: Linear(16 * 5 * 5, 120),
        relu,
        fc2: Linear(84),
        relu,
        fc3: Linear(10),
    }
}

kiln::network! {
    /// A small convolutional net sized by expressions, for the gradient check.
    pub struct ConvExpr {
        input: [1, 4 + 4, 8],
        conv: Conv2d(2 * 2, kernel = 3, padding = 2 - 1),
        relu,
        pool: MaxPool2d(8 / 4),
        flatten,
        fc: Linear(4 * 4 * 4, 5),
    }
}

const HIDDEN: usize = 7;
const EMBED: usize = 5;

mod consts {
    pub const CLASSES: usize = 3;
}

kiln::network! {
    /// Widths the macro cannot see: they go into the types as `{ HIDDEN }`.
    pub struct Named {
        input: [EMBED],
        fc1: Linear(HIDDEN),
        tanh,
        fc2: Linear(HIDDEN, 2 * HIDDEN),
        relu,
        fc3: Linear(2 * HIDDEN, consts::CLASSES),
        softmax,
    }
}

kiln::network! {
    /// A graph whose declared shapes are named: `h: [HIDDEN]` is checked by
    /// the compiler, and the residual addition of two `[HIDDEN]` values by
    /// the macro (the same name).
    pub struct NamedGraph {
        input x: [EMBED],
        let h: [HIDDEN] = x |> enc: Linear(HIDDEN) |> tanh;
        let g = h |> mix: Linear(HIDDEN) |> sigmoid;
        output h + g |> head: Linear(HIDDEN, 2);
    }
}

#[test]
fn integer_expressions_are_evaluated() {
    // The same parameter count as the LeNet-5 of `kiln::models`.
    assert_eq!(
        LeNetExpr::<f32>::PARAMS,
        kiln::models::LeNet5::<f32>::PARAMS
    );
    assert_eq!(LeNetExpr::<f32>::PARAMS, 61_706);
    assert_eq!(LeNetExpr::<f32>::OUTPUTS, &[&[10usize][..]]);
    assert_eq!(ConvExpr::<f32>::INPUTS, &[&[1usize, 8, 8][..]]);
    assert_eq!(ConvExpr::<f32>::PARAMS, 4 * 9 + 4 + 64 * 5 + 5);
    let mut net = ConvExpr::<f64, Cpu>::init(&Cpu, &mut rng(11)).unwrap();
    let err = check_layer(&mut net, 1, 12).unwrap();
    assert!(err < TOL, "{err}");
}

#[test]
fn named_constants_reach_the_types() {
    assert_eq!(Named::<f32>::INPUTS, &[&[EMBED][..]]);
    assert_eq!(Named::<f32>::OUTPUTS, &[&[consts::CLASSES][..]]);
    assert_eq!(
        Named::<f32>::PARAMS,
        EMBED * 7 + 7 + 7 * 14 + 14 + 14 * 3 + 3
    );
    let s = Named::<f32>::summary();
    assert!(s.contains("Linear(HIDDEN, 2 * HIDDEN)"), "{s}");
    let mut net = Named::<f64, Cpu>::init(&Cpu, &mut rng(13)).unwrap();
    assert_eq!(net.fc2.weight.shape(), vec![1, 14, 7]);
    let err = check_layer(&mut net, 3, 14).unwrap();
    assert!(err < TOL, "{err}");
}

#[test]
fn named_declared_shapes_in_a_graph() {
    assert_eq!(NamedGraph::<f32>::PARAMS, 5 * 7 + 7 + 7 * 7 + 7 + 7 * 2 + 2);
    let mut net = NamedGraph::<f64, Cpu>::init(&Cpu, &mut rng(15)).unwrap();
    let err = check_layer(&mut net, 3, 16).unwrap();
    assert!(err < TOL, "{err}");
}
