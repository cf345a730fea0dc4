//! The sequence layers' ONNX export checked in ONNX Runtime, as
//! `tests/onnx_runtime.rs` does for the image layers: one model per family
//! (embeddings with learned or sinusoidal positions, LayerNorm, GELU, LSTM,
//! GRU, RNN, pooling over time), random token ids at two batch sizes,
//! `max|ort − kiln| / max|kiln| ≤ 1e-5`.

mod onnx_ort;

use kiln::prelude::*;
use onnx_ort::{available, rel_err, run, uniform, Data, Feed};

const TOL: f64 = 1e-5;

/// Token ids in `0..v` from a fixed seed.
fn ids(n: usize, v: u32, seed: u64) -> Vec<u32> {
    use kiln::rand::Rng as _;
    let mut r = rng(seed);
    (0..n).map(|_| r.random_range(0..v)).collect()
}

kiln::network! {
    /// Token embeddings with learned positions, LayerNorm, a GELU MLP, an
    /// LSTM and a mean over time.
    pub struct LstmClassifier {
        input ids: Tokens<[7], 20>,
        let e = ids |> tok: Embedding(20, 12) |> pos: PositionalEmbedding(9);
        let h = e |> ln: LayerNorm |> fc: Linear(12) |> gelu |> rnn: LSTM(10);
        output logits = h |> mean_over_time |> head: Linear(3);
    }
}

kiln::network! {
    /// Sinusoidal positions, a GRU, a tanh RNN and a ReLU RNN, a max over time.
    pub struct GruTagger {
        input ids: Tokens<[6], 15>,
        let e = ids |> tok: Embedding(15, 8) |> SinusoidalPositions |> LayerNorm(bias = false);
        let h = e |> gru: GRU(9) |> r1: RNN(7) |> r2: RNN(5, nonlinearity = "relu");
        output scores = h |> max_over_time |> head: Linear(4) |> softmax;
    }
}

/// Runs a one-token-input, one-output network at two batch sizes.
macro_rules! check_tokens {
    ($net:expr, $t:literal, $v:literal, $what:literal) => {{
        let net = &$net;
        let bytes = net.to_onnx_bytes().unwrap();
        for (k, b) in [1usize, 4].into_iter().enumerate() {
            let idv = ids(b * $t, $v, 30 + k as u64);
            let x = Tokens::<S1<$t>, $v>::new::<f32>(&Cpu, &idv).unwrap();
            let ours: Vec<f64> = net
                .forward(&x)
                .unwrap()
                .to_vec()
                .unwrap()
                .into_iter()
                .map(f64::from)
                .collect();
            let r = run(
                &bytes,
                &[Feed {
                    name: "ids".into(),
                    shape: vec![b, $t],
                    data: Data::I64(idv.iter().map(|&i| i as i64).collect()),
                }],
            );
            let e = rel_err(&ours, &r.outputs[0].values);
            println!("{} batch {b}: max relative error {e:.2e}", $what);
            assert!(e <= TOL, "{}: batch {b}: {e:e}", $what);
        }
    }};
}

#[test]
fn lstm_classifier_matches_onnx_runtime() {
    if !available() {
        return;
    }
    let net = LstmClassifier::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    check_tokens!(net, 7, 20, "embedding + LayerNorm + GELU + LSTM");
}

#[test]
fn gru_and_rnn_tagger_matches_onnx_runtime() {
    if !available() {
        return;
    }
    let net = GruTagger::<f32, Cpu>::init(&Cpu, &mut rng(2)).unwrap();
    check_tokens!(net, 6, 15, "sinusoidal + GRU + RNN");
}

kiln::network! {
    /// A float sequence through a bidirectional, two-layer LSTM: the
    /// stacked form has no ONNX export yet.
    pub struct Stacked {
        input: [5, 3],
        rnn: LSTM(4, num_layers = 2, bidirectional = true),
        mean_over_time,
    }
}

kiln::network! {
    /// Self-attention: no ONNX export yet.
    pub struct Attn {
        input: [5, 8],
        attn: MultiHeadAttention(8, heads = 2),
        mean_over_time,
    }
}

#[test]
fn layers_without_an_onnx_form_are_named() {
    let s = Stacked::<f32, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
    let e = s.to_onnx_bytes().unwrap_err().to_string();
    assert!(e.contains("layer `rnn` (Recurrent<"), "{e}");
    let a = Attn::<f32, Cpu>::init(&Cpu, &mut rng(4)).unwrap();
    let e = a.to_onnx_bytes().unwrap_err().to_string();
    assert!(e.contains("layer `attn` (MultiHeadAttention<"), "{e}");
    // A float input feeding them is unaffected: `uniform` is used by the
    // image tests; here it only makes the inputs of the error case.
    let _ = uniform(1, 0);
}
