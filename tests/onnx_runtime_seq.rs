//! The sequence layers' ONNX export checked in ONNX Runtime, as
//! `tests/onnx_runtime.rs` does for the image layers: one model per family
//! (embeddings with learned or sinusoidal positions, LayerNorm, GELU, LSTM,
//! GRU, RNN, stacked and bidirectional, pooling over time, self-attention
//! in a transformer block), random token ids or values at two batch sizes,
//! `max|ort − kiln| / max|kiln| ≤ 1e-5`.

use crate::onnx_ort;

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
    /// Stacked and bidirectional recurrent layers: a two-layer
    /// bidirectional LSTM (every step), then a bidirectional GRU giving its
    /// final states only.
    pub struct Stacked {
        input: [5, 3],
        rnn: LSTM(4, num_layers = 2, bidirectional = true),
        fin: GRU(6, bidirectional = true, last = true),
        head: Linear(2),
    }
}

#[test]
fn stacked_bidirectional_recurrent_layers_match_onnx_runtime() {
    if !available() {
        return;
    }
    let net = Stacked::<f32, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
    let bytes = net.to_onnx_bytes().unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(text.contains("rnn.weight_ih_l1_reverse"), "PyTorch's names");
    for b in [1usize, 4] {
        let xv = uniform(b * 15, 60 + b as u64);
        let x = Tensor::<S2<5, 3>>::from_vec(&Cpu, b, xv.clone()).unwrap();
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
                name: "x".into(),
                shape: vec![b, 5, 3],
                data: Data::F32(xv),
            }],
        );
        let e = rel_err(&ours, &r.outputs[0].values);
        println!("stacked bidirectional LSTM + GRU (last) batch {b}: max relative error {e:.2e}");
        assert!(e <= TOL, "batch {b}: {e:e}");
    }
}

kiln::network! {
    /// A pre-norm transformer block over token embeddings: LayerNorm →
    /// causal self-attention → residual, LayerNorm → GELU MLP → residual.
    pub struct Gpt {
        input ids: Tokens<[6], 13>,
        let e = ids |> tok: Embedding(13, 16) |> pos: PositionalEmbedding(6);
        let a = e |> ln1: LayerNorm |> attn: MultiHeadAttention(16, heads = 4, causal = true);
        let h = a + e;
        let m = h |> ln2: LayerNorm |> fc: Linear(32) |> gelu |> proj: Linear(16);
        output logits = m + h |> lnf: LayerNorm |> head: Linear(13);
    }
}

kiln::network! {
    /// Bidirectional self-attention without biases.
    pub struct Encoder {
        input x: [5, 8],
        output y = x |> attn: MultiHeadAttention(8, heads = 2, bias = false) |> mean_over_time;
    }
}

#[test]
fn self_attention_matches_onnx_runtime() {
    if !available() {
        return;
    }
    let net = Gpt::<f32, Cpu>::init(&Cpu, &mut rng(5)).unwrap();
    check_tokens!(net, 6, 13, "transformer block (causal attention)");
    let enc = Encoder::<f32, Cpu>::init(&Cpu, &mut rng(6)).unwrap();
    let bytes = enc.to_onnx_bytes().unwrap();
    for b in [1usize, 3] {
        let xv = uniform(b * 40, 40 + b as u64);
        let x = Tensor::<S2<5, 8>>::from_vec(&Cpu, b, xv.clone()).unwrap();
        let ours: Vec<f64> = enc
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
                name: "x".into(),
                shape: vec![b, 5, 8],
                data: Data::F32(xv),
            }],
        );
        let e = rel_err(&ours, &r.outputs[0].values);
        println!("attention without bias batch {b}: max relative error {e:.2e}");
        assert!(e <= TOL, "batch {b}: {e:e}");
    }
}

kiln::network! {
    /// An encoder–decoder: the encoder attends over the source with a
    /// key-padding mask, the decoder attends causally over the target and
    /// across to the encoder's memory with the same mask.
    pub struct Cross {
        input src: Tokens<[5], 7>,
        input tgt: Tokens<[4], 7>,
        let e = src |> semb: Embedding(7, 8);
        let mem = e |> enc: MultiHeadAttention(8, heads = 2, key_padding = src == 0);
        let d = tgt |> temb: Embedding(7, 8) |> dec: MultiHeadAttention(8, heads = 2, causal = true);
        output y = d |> cross: MultiHeadAttention(8, heads = 2, memory = mem, key_padding = src == 0) |> mean_over_time;
    }
}

#[test]
fn cross_attention_with_key_padding_matches_onnx_runtime() {
    if !available() {
        return;
    }
    let net = Cross::<f32, Cpu>::init(&Cpu, &mut rng(4)).unwrap();
    let bytes = net.to_onnx_bytes().unwrap();
    for b in [1usize, 4] {
        // Ids 0 are padding; every source keeps at least one real token
        // (a query whose keys are all padding is 0 in kiln, NaN in ONNX
        // Runtime and PyTorch).
        let mut sv = ids(b * 5, 7, 80 + b as u64);
        for s in 0..b {
            sv[s * 5] = 1 + s as u32 % 6;
            sv[s * 5 + 4] = 0;
        }
        let tv = ids(b * 4, 7, 90 + b as u64);
        let src = Tokens::<S1<5>, 7>::new::<f32>(&Cpu, &sv).unwrap();
        let tgt = Tokens::<S1<4>, 7>::new::<f32>(&Cpu, &tv).unwrap();
        let ours: Vec<f64> = net
            .forward(&src, &tgt)
            .unwrap()
            .to_vec()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect();
        let feed = |name: &str, t: usize, v: &[u32]| Feed {
            name: name.into(),
            shape: vec![b, t],
            data: Data::I64(v.iter().map(|&i| i as i64).collect()),
        };
        let r = run(&bytes, &[feed("src", 5, &sv), feed("tgt", 4, &tv)]);
        let e = rel_err(&ours, &r.outputs[0].values);
        println!("cross-attention with key padding batch {b}: max relative error {e:.2e}");
        assert!(e <= TOL, "batch {b}: {e:e}");
    }
}

kiln::network! {
    /// A head tied to the embedding table (GPT's `lm_head`).
    pub struct Tied {
        input ids: Tokens<[4], 9>,
        output logits = ids |> wte: Embedding(9, 6) |> tanh |> head: Linear(9, tied = wte);
    }
}

#[test]
fn a_tied_head_reads_its_embedding_table() {
    if !available() {
        return;
    }
    let net = Tied::<f32, Cpu>::init(&Cpu, &mut rng(5)).unwrap();
    let bytes = net.to_onnx_bytes().unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    // One table, read by the embedding's Gather and the head's MatMul.
    assert!(text.contains("wte.weight"));
    check_tokens!(net, 4, 9, "tied head");
}

kiln::network! {
    /// Recurrent layers started from given states and their final states
    /// read out: a bidirectional two-layer LSTM (state `[2, 4, 5]`: h and c
    /// of 4 cells) and a GRU (state `[1, 3]`) fed the LSTM's output.
    pub struct Carried {
        input x: [6, 3],
        input s0: [2, 4, 5],
        input g0: [1, 3],
        let y = x |> rnn: LSTM(5, num_layers = 2, bidirectional = true, state = s0);
        let z = y |> gru: GRU(3, state = g0);
        output out = z |> mean_over_time |> head: Linear(2);
        output state = y |> FinalState(rnn);
        output gstate = z |> FinalState(gru);
    }
}

#[test]
fn given_and_final_recurrent_states_match_onnx_runtime() {
    if !available() {
        return;
    }
    let net = Carried::<f32, Cpu>::init(&Cpu, &mut rng(4)).unwrap();
    let bytes = net.to_onnx_bytes().unwrap();
    for b in [1usize, 3] {
        let xv = uniform(b * 18, 110 + b as u64);
        let sv = uniform(b * 40, 120 + b as u64);
        let gv = uniform(b * 3, 130 + b as u64);
        let x = Tensor::<S2<6, 3>>::from_vec(&Cpu, b, xv.clone()).unwrap();
        let s0 = Tensor::<S3<2, 4, 5>>::from_vec(&Cpu, b, sv.clone()).unwrap();
        let g0 = Tensor::<S2<1, 3>>::from_vec(&Cpu, b, gv.clone()).unwrap();
        let (out, state, gstate) = net.forward(&x, &s0, &g0).unwrap();
        let f = |name: &str, shape: Vec<usize>, v: Vec<f32>| Feed {
            name: name.into(),
            shape,
            data: Data::F32(v),
        };
        let r = run(
            &bytes,
            &[
                f("x", vec![b, 6, 3], xv),
                f("s0", vec![b, 2, 4, 5], sv),
                f("g0", vec![b, 1, 3], gv),
            ],
        );
        assert_eq!(r.outputs[1].shape, [b, 2, 4, 5]);
        for (ours, theirs) in [
            (out.to_vec().unwrap(), &r.outputs[0]),
            (state.to_vec().unwrap(), &r.outputs[1]),
            (gstate.to_vec().unwrap(), &r.outputs[2]),
        ] {
            let ours: Vec<f64> = ours.into_iter().map(f64::from).collect();
            let e = rel_err(&ours, &theirs.values);
            println!(
                "given and final states, {} batch {b}: max relative error {e:.2e}",
                theirs.name
            );
            assert!(e <= TOL, "{} batch {b}: {e:e}", theirs.name);
        }
    }
}
