//! Perplexity of a language model (lesson 11): `exp` of the mean
//! per-position cross-entropy, through kiln's own pieces (a token network,
//! `cross_entropy_tokens`, `metrics::perplexity`).
//!
//! A model that gives every symbol the same probability has cross-entropy
//! `ln V` at every position, whatever the targets, so its perplexity is
//! exactly the vocabulary size `V`; the ignored positions do not change that.
//! A model that is certain of one symbol has perplexity 1 on text made of it.

use kiln::metrics::perplexity;
use kiln::prelude::*;

kiln::network! {
    /// A small recurrent language model over 7 symbols.
    pub struct TinyLm {
        input: Tokens<[5], 7>,
        emb: Embedding(7, 3),
        rnn: LSTM(4),
        head: Linear(7),
    }
}

/// A network whose head is all zeros: equal logits at every position.
fn uniform() -> TinyLm<f64> {
    let mut net = TinyLm::<f64>::init(&Cpu, &mut rng(5)).unwrap();
    net.head.weight.copy_from_slice(&[0.0; 7 * 4]).unwrap();
    if let Some(b) = net.head.bias.as_mut() {
        b.copy_from_slice(&[0.0; 7]).unwrap();
    }
    net
}

#[test]
fn perplexity_of_a_uniform_model_is_the_vocabulary_size() {
    let net = uniform();
    let x = Tokens::<S1<5>, 7>::new::<f64>(&Cpu, &[0, 1, 2, 3, 4, 6, 5, 4, 3, 2]).unwrap();
    let y = Tokens::<S1<5>, 7>::new::<f64>(&Cpu, &[1, 2, 3, 4, 5, 0, 6, 6, 1, 3]).unwrap();
    let mut tape = net.tape().unwrap();
    let logits = net.forward_with(&x, &mut tape).unwrap();
    let h = cross_entropy_tokens(logits, &y, None, None).unwrap();
    assert!((h - 7f64.ln()).abs() < 1e-14, "{h}");
    assert!((perplexity(h) - 7.0).abs() < 1e-12, "{}", perplexity(h));
    // Ignoring positions (id 6 here) changes which positions count, not the value.
    let h = cross_entropy_tokens(logits, &y, Some(6), None).unwrap();
    assert!((perplexity(h) - 7.0).abs() < 1e-12);
}

#[test]
fn a_certain_model_has_perplexity_one_and_a_wrong_one_more_than_v() {
    // Head weights 0, bias +40 on symbol 2: p(2) = 1 − 6e^{−40} ≈ 1.
    let mut net = uniform();
    let mut bias = [0.0; 7];
    bias[2] = 40.0;
    net.head
        .bias
        .as_mut()
        .unwrap()
        .copy_from_slice(&bias)
        .unwrap();
    let x = Tokens::<S1<5>, 7>::new::<f64>(&Cpu, &[0, 1, 2, 3, 4]).unwrap();
    let mut tape = net.tape().unwrap();
    let logits = net.forward_with(&x, &mut tape).unwrap();
    let right = Tokens::<S1<5>, 7>::new::<f64>(&Cpu, &[2; 5]).unwrap();
    let h = cross_entropy_tokens(logits, &right, None, None).unwrap();
    assert!((perplexity(h) - 1.0).abs() < 1e-15 + 6.0 * (-40f64).exp() * 2.0);
    // Always wrong: −log p = 40 + ln(1 + 6e^{−40}) per position.
    let wrong = Tokens::<S1<5>, 7>::new::<f64>(&Cpu, &[0; 5]).unwrap();
    let h = cross_entropy_tokens(logits, &wrong, None, None).unwrap();
    assert!((h - 40.0).abs() < 1e-12, "{h}");
    assert!(perplexity(h) > 7.0);
}
