use super::*;
use crate::testing::{check_layer, random_input};

/// One step by hand: H = 1, I = 1, every weight 0.5, biases 0, x = 1:
/// a = 0.5 for every gate, i = f = o = σ(0.5), g = tanh(0.5),
/// c = i·g, h = o·tanh(c).
#[test]
fn one_step_by_hand() {
    let mut l =
        Lstm::<f64, Cpu, 1, 1, 1, 4>::build(&Cpu, &mut crate::rng(0), LstmConfig { bias: false })
            .unwrap();
    l.weight_ih.copy_from_slice(&[0.5; 4]).unwrap();
    l.weight_hh.copy_from_slice(&[0.5; 4]).unwrap();
    let x = Tensor::<S2<1, 1>, f64>::from_slice(&Cpu, &[1.0]).unwrap();
    let (mut y, mut c) = (Tensor::empty(&Cpu).unwrap(), l.cache().unwrap());
    l.forward(&x, &mut y, &mut c).unwrap();
    let s = 1.0 / (1.0 + (-0.5f64).exp());
    let cell = s * 0.5f64.tanh();
    let want = s * cell.tanh();
    assert!((y.to_vec().unwrap()[0] - want).abs() < 1e-15);
    // σ(0.5) = 0.6224593312018546, c = σ(0.5)·tanh(0.5) = 0.28764913664496794,
    // h = σ(0.5)·tanh(c) (computed independently in Python's math).
    assert!((want - 0.17426971865610508).abs() < 1e-15, "{want}");
}

#[test]
fn names_shapes_and_init_range() {
    let l =
        Lstm::<f32, Cpu, 3, 5, 4, 16>::build(&Cpu, &mut crate::rng(0), Default::default()).unwrap();
    let mut seen = Vec::new();
    l.visit(&Path::ROOT.child("rnn"), &mut |p, r| {
        seen.push(format!("{p} {:?}", r.dims))
    });
    assert_eq!(
        seen,
        [
            "rnn.weight_ih_l0 [16, 5]",
            "rnn.weight_hh_l0 [16, 4]",
            "rnn.bias_ih_l0 [16]",
            "rnn.bias_hh_l0 [16]"
        ]
    );
    let w = l.weight_hh.to_vec().unwrap();
    assert!(w.iter().all(|v| v.abs() <= 0.5)); // 1/√4
    assert!(w.iter().any(|v| v.abs() > 0.4));
    let e = Lstm::<f32, Cpu, 3, 5, 4, 12>::build(&Cpu, &mut crate::rng(0), Default::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("G = 4·H"), "{e}");
}

/// A sequence's output at step t depends on earlier steps only.
#[test]
fn outputs_do_not_depend_on_later_steps() {
    let l =
        Lstm::<f64, Cpu, 4, 3, 2, 8>::build(&Cpu, &mut crate::rng(1), Default::default()).unwrap();
    let mut xv = random_input(12, &mut crate::rng(2));
    let run = |xv: &[f64]| {
        let x = Tensor::<S2<4, 3>, f64>::from_slice(&Cpu, xv).unwrap();
        let (mut y, mut c) = (Tensor::empty(&Cpu).unwrap(), l.cache().unwrap());
        l.forward(&x, &mut y, &mut c).unwrap();
        y.to_vec().unwrap()
    };
    let a = run(&xv);
    xv[9] += 1.0; // step 3's input
    let b = run(&xv);
    assert_eq!(a[..6], b[..6]);
    assert_ne!(a[6..], b[6..]);
}

#[test]
fn gradchecks() {
    let mut a =
        Lstm::<f64, Cpu, 4, 3, 2, 8>::build(&Cpu, &mut crate::rng(5), Default::default()).unwrap();
    assert!(check_layer(&mut a, 3, 1).unwrap() < 1e-6);
    let mut b =
        Lstm::<f64, Cpu, 1, 2, 3, 12>::build(&Cpu, &mut crate::rng(6), LstmConfig { bias: false })
            .unwrap();
    assert!(check_layer(&mut b, 2, 2).unwrap() < 1e-6);
}
