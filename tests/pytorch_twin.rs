//! Weights exchange with PyTorch both ways (scripts/pytorch/twin.py).
//!
//! * PyTorch → kiln: `tests/fixtures/torch_twin_mlp.safetensors` holds a
//!   PyTorch `state_dict` of the MNIST MLP, a batch and PyTorch's output for
//!   it; kiln loads the weights by name and reproduces the output within 1e-5.
//! * kiln → PyTorch: this test also writes `target/twin/kiln_mlp.safetensors`
//!   (weights, a batch, kiln's output), which
//!   `python3 scripts/pytorch/twin.py check mlp target/twin/kiln_mlp.safetensors`
//!   loads with `load_state_dict(strict=True)` and compares.

use kiln::checkpoint::Checkpoint;
use kiln::prelude::*;

kiln::network! {
    /// The MNIST MLP of examples/mnist_mlp.rs.
    pub struct Mlp {
        input: [784],
        fc1: Linear(512),
        relu,
        fc2: Linear(256),
        relu,
        fc3: Linear(10),
    }
}

#[test]
fn pytorch_weights_reproduce_pytorch_outputs() {
    let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/torch_twin_mlp.safetensors"));
    let ck = Checkpoint::read(path).unwrap();
    let mut net = Mlp::<f32, Cpu>::init(&Cpu, &mut rng(0)).unwrap();
    ck.load_module("", &mut net, path).unwrap();
    let x = Tensor::<S1<784>>::from_slice(&Cpu, &ck.values::<f32>("__input").unwrap()).unwrap();
    let want = ck.values::<f32>("__output").unwrap();
    let got = net.forward(&x).unwrap().to_vec().unwrap();
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-5, "kiln {a} vs PyTorch {b}");
    }
}

#[test]
fn kiln_writes_what_pytorch_loads() {
    let net = Mlp::<f32, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
    let xs: Vec<f32> = (0..4 * 784).map(|i| ((i * 37) % 101) as f32 / 101.0).collect();
    let x = Tensor::<S1<784>>::from_slice(&Cpu, &xs).unwrap();
    let y = net.forward(&x).unwrap().to_vec().unwrap();
    let mut ck = Checkpoint::new();
    ck.add_module("", &net).unwrap();
    ck.add_values("__input", &[4, 784], &xs);
    ck.add_values("__output", &[4, 10], &y);
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/target/twin"));
    std::fs::create_dir_all(dir).unwrap();
    ck.save(dir.join("kiln_mlp.safetensors")).unwrap();
    // What the Python side checks, checked here too: the file reads back whole.
    let back = Checkpoint::read(dir.join("kiln_mlp.safetensors")).unwrap();
    assert_eq!(back, ck);
}
