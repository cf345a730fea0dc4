//! GELU, PReLU, LayerNorm, L2Normalize, LSTM, GRU and RNN (one layer, and stacked and bidirectional) against PyTorch (float64): the output and the
//! gradients of `sum(y · dy)` with respect to the input and every parameter,
//! recorded with fixed inputs and weights by `scripts/pytorch/record_fixtures.py`
//! into `tests/fixtures/torch_reference.json` ("layers"), compared to 1e-10
//! (relative above 1).
//! Parameters are matched by PyTorch's `state_dict` names through kiln's
//! `Module::visit`, so the names are checked as well.

use kiln::layers::{Gelu, L2Normalize, LayerNorm, LayerNormConfig, PRelu, PReluConfig};
use kiln::prelude::*;
use kiln::{Acc, Layer, Path, TrainCtx};
use serde_json::Value;

fn fixture() -> Value {
    let s = include_str!("fixtures/torch_reference.json");
    serde_json::from_str(s).expect("fixture is valid JSON")
}

fn vec(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Asserts agreement to 1e-10 (relative to the value where it exceeds 1:
/// L2Normalize's zero row has gradients of 1e12·dy) and returns the largest
/// difference, measured the same way.
fn close(what: &str, got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let mut worst = 0.0f64;
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let e = (a - b).abs() / b.abs().max(1.0);
        assert!(e <= 1e-10, "{what}[{i}]: kiln {a} vs torch {b}");
        worst = worst.max(e);
    }
    worst
}

/// Sets the layer's parameters from the case's `params` by name, runs
/// forward and backward, and compares y, dx and each parameter's gradient.
fn check<L>(name: &str, mut layer: L)
where
    L: Layer<f64, Cpu> + Module<f64, Cpu>,
{
    let fx = fixture();
    let c = &fx["layers"][name];
    assert!(c.is_object(), "no case {name} in the fixture");
    let params = c["params"].as_object().unwrap();
    let mut seen = Vec::new();
    layer.visit_mut(&Path::ROOT, &mut |p, v, _| {
        let key = p.to_string();
        let want = vec(&params[&key]);
        assert_eq!(v.numel, want.len(), "{name}: size of {key}");
        v.value[..want.len()].copy_from_slice(&want);
        seen.push(key);
    });
    let mut names: Vec<&String> = params.keys().collect();
    names.sort();
    seen.sort();
    assert_eq!(
        seen.iter().collect::<Vec<_>>(),
        names,
        "{name}: parameter names"
    );
    let x = Tensor::<L::In, f64>::from_slice(&Cpu, &vec(&c["x"])).unwrap();
    let dy = Tensor::<L::Out, f64>::from_slice(&Cpu, &vec(&c["dy"])).unwrap();
    let (mut y, mut dx) = (Tensor::empty(&Cpu).unwrap(), Tensor::empty(&Cpu).unwrap());
    let mut cache = layer.cache().unwrap();
    layer
        .forward_train(&x, &mut y, &mut cache, &mut TrainCtx::new(0))
        .unwrap();
    let mut worst = close(&format!("{name} y"), &y.to_vec().unwrap(), &vec(&c["y"]));
    let mut grads = layer.grads().unwrap();
    layer
        .backward(
            &x,
            &y,
            &mut cache,
            &dy,
            Some((&mut dx, Acc::Set)),
            &mut grads,
            Acc::Set,
        )
        .unwrap();
    worst = worst.max(close(
        &format!("{name} dx"),
        &dx.to_vec().unwrap(),
        &vec(&c["dx"]),
    ));
    let want = c["grads"].as_object().unwrap();
    let mut count = 0;
    layer.visit_grads(&grads, &Path::ROOT, &mut |p, v| {
        let key = p.to_string();
        worst = worst.max(close(
            &format!("{name} grad {key}"),
            &v.grad.unwrap()[..v.numel],
            &vec(&want[&key]),
        ));
        count += 1;
    });
    assert_eq!(count, want.len(), "{name}: gradients compared");
    println!("{name}: largest difference from PyTorch {worst:.2e}");
}

#[test]
fn gelu_matches_torch() {
    check("gelu", Gelu::<S1<7>>::default());
    check("gelu_tanh", Gelu::<S1<7>>::approximate_tanh());
}

#[test]
fn prelu_matches_torch() {
    let c = PReluConfig::default();
    check(
        "prelu",
        PRelu::<f64, Cpu, S3<3, 2, 2>, 1>::build(&Cpu, &mut rng(0), c).unwrap(),
    );
    check(
        "prelu_channels",
        PRelu::<f64, Cpu, S3<3, 2, 2>, 3>::build(&Cpu, &mut rng(0), c).unwrap(),
    );
}

#[test]
fn layer_norm_matches_torch() {
    type Ln = LayerNorm<f64, Cpu, S2<3, 5>, 5>;
    let d = LayerNormConfig::default();
    check("layer_norm", Ln::build(&Cpu, &mut rng(0), d).unwrap());
    let no_bias = LayerNormConfig { bias: false, ..d };
    check(
        "layer_norm_no_bias",
        Ln::build(&Cpu, &mut rng(0), no_bias).unwrap(),
    );
    let plain = LayerNormConfig {
        eps: 1e-3,
        elementwise_affine: false,
        ..d
    };
    check(
        "layer_norm_no_affine",
        Ln::build(&Cpu, &mut rng(0), plain).unwrap(),
    );
}

#[test]
fn l2_normalize_matches_torch() {
    // F.normalize(x, p=2, dim=-1) on [2, 3, 5], with a zero row (y = 0,
    // dx = dy/1e-12: PyTorch's differs from kiln's in the last bit).
    check("l2_normalize", L2Normalize::<S2<3, 5>>::default());
    // eps = 1 with rows of norm below and above it.
    check("l2_normalize_eps", L2Normalize::<S2<3, 5>>::new(1.0));
}

#[test]
fn lstm_matches_torch() {
    // nn.LSTM(3, 4, batch_first=True) over 5 steps: `Lstm<E, D, T, I, H, 4H>`.
    type L = kiln::layers::Lstm<f64, Cpu, 5, 3, 4, 16>;
    let c = kiln::layers::LstmConfig::default();
    check("lstm", L::build(&Cpu, &mut rng(0), c).unwrap());
    let no_bias = kiln::layers::LstmConfig { bias: false };
    check(
        "lstm_no_bias",
        L::build(&Cpu, &mut rng(0), no_bias).unwrap(),
    );
}

#[test]
fn gru_matches_torch() {
    // nn.GRU(3, 4, batch_first=True) over 5 steps: `Gru<E, D, T, I, H, 3H>`.
    type L = kiln::layers::Gru<f64, Cpu, 5, 3, 4, 12>;
    let c = kiln::layers::GruConfig::default();
    check("gru", L::build(&Cpu, &mut rng(0), c).unwrap());
    let no_bias = kiln::layers::GruConfig { bias: false };
    check("gru_no_bias", L::build(&Cpu, &mut rng(0), no_bias).unwrap());
}

#[test]
fn rnn_matches_torch() {
    // nn.RNN(3, 4, nonlinearity=…, batch_first=True) over 5 steps: `Rnn<E, D, T, I, H>`.
    use kiln::layers::{RnnConfig, RnnNonlinearity};
    type L = kiln::layers::Rnn<f64, Cpu, 5, 3, 4>;
    for (name, nonlinearity) in [
        ("rnn_tanh", RnnNonlinearity::Tanh),
        ("rnn_relu", RnnNonlinearity::Relu),
    ] {
        for bias in [true, false] {
            let c = RnnConfig { bias, nonlinearity };
            let case = if bias {
                name.to_string()
            } else {
                format!("{name}_no_bias")
            };
            check(&case, L::build(&Cpu, &mut rng(0), c).unwrap());
        }
    }
}

#[test]
fn stacked_and_bidirectional_match_torch() {
    // nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True): layer 0
    // reads 3 features, layer 1 reads 2·4; every position, or (`last`) the top
    // layer's final states [h_n[-2] | h_n[-1]].
    use kiln::layers::{Gru, Lstm, Recurrent, RecurrentConfig, Rnn, RnnConfig, RnnNonlinearity};
    type L0 = Lstm<f64, Cpu, 5, 3, 4, 16>;
    type LU = Lstm<f64, Cpu, 5, 8, 4, 16>;
    let c = RecurrentConfig {
        cell: kiln::layers::LstmConfig::default(),
        dropout: 0.0,
    };
    type Bi = Recurrent<f64, Cpu, L0, LU, S2<5, 8>, 2, 2>;
    check("lstm_l2_bi", Bi::build(&Cpu, &mut rng(0), c).unwrap());
    type BiLast = Recurrent<f64, Cpu, L0, LU, S1<8>, 2, 2>;
    check(
        "lstm_l2_bi_last",
        BiLast::build(&Cpu, &mut rng(0), c).unwrap(),
    );
    type G =
        Recurrent<f64, Cpu, Gru<f64, Cpu, 5, 3, 4, 12>, Gru<f64, Cpu, 5, 8, 4, 12>, S2<5, 8>, 2, 2>;
    let c = RecurrentConfig {
        cell: kiln::layers::GruConfig::default(),
        dropout: 0.0,
    };
    check("gru_l2_bi", G::build(&Cpu, &mut rng(0), c).unwrap());
    // nn.RNN(3, 4, nonlinearity='relu', num_layers=2): one direction.
    type R = Recurrent<f64, Cpu, Rnn<f64, Cpu, 5, 3, 4>, Rnn<f64, Cpu, 5, 4, 4>, S2<5, 4>, 2, 1>;
    let cell = RnnConfig {
        bias: true,
        nonlinearity: RnnNonlinearity::Relu,
    };
    let c = RecurrentConfig { cell, dropout: 0.0 };
    check("rnn_relu_l2", R::build(&Cpu, &mut rng(0), c).unwrap());
}
