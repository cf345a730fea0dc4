//! Stacked, bidirectional and last-state recurrent layers in `network!`
//! (`LSTM(H, num_layers = 2, bidirectional = true, dropout = p, last =
//! true)`, and the same options of `GRU` and `RNN`): generated networks are
//! gradient-checked against central differences in f64 (with dropout between
//! the layers too: the check's forward passes share one seed), the parameter
//! counts are PyTorch's, and dropout acts in training only.

use kiln::prelude::*;
use kiln::testing::check_layer;
use kiln::{Module, Path};

kiln::network! {
    /// Embedding → 2-layer bidirectional LSTM with dropout → a head per position.
    pub struct BiLstm {
        input: Tokens<[4], 7>,
        emb: Embedding(7, 3),
        rnn: LSTM(3, 4, num_layers = 2, bidirectional = true, dropout = 0.25),
        fc: Linear(5),
    }
}

kiln::network! {
    /// A 3-layer bidirectional GRU whose final states feed a classifier, and a
    /// 2-layer ReLU RNN before it.
    pub struct Classify {
        input: [5, 2],
        pre: RNN(3, num_layers = 2, nonlinearity = "relu"),
        gru: GRU(3, 4, num_layers = 3, bidirectional = true, last = true),
        fc: Linear(2),
    }
}

kiln::network! {
    /// A float-input network for `check_layer` with the LSTM stack in it.
    pub struct SeqBi {
        input: [4, 3],
        rnn: LSTM(3, num_layers = 2, bidirectional = true, dropout = 0.4),
        fc: Linear(2),
    }
}

#[test]
fn stacked_bidirectional_networks_match_central_differences() {
    let mut a = SeqBi::<f64>::init(&Cpu, &mut rng(1)).unwrap();
    let e = check_layer(&mut a, 2, 3).unwrap();
    assert!(e < 1e-6, "SeqBi: {e}");
    let mut b = Classify::<f64>::init(&Cpu, &mut rng(2)).unwrap();
    let e = check_layer(&mut b, 3, 4).unwrap();
    assert!(e < 1e-6, "Classify: {e}");
}

#[test]
fn parameter_counts_are_pytorchs() {
    // sum(p.numel() for p in nn.LSTM(3, 3, num_layers=2, bidirectional=True).parameters())
    // = 2·(12·3 + 12·3 + 24) + 2·(12·6 + 12·3 + 24) = 192 + 264 = 456, plus Linear(6, 2).
    assert_eq!(SeqBi::PARAMS, 456 + 14);
    // nn.RNN(2, 3, num_layers=2): (3·2 + 9 + 6) + (9 + 9 + 6) = 45;
    // nn.GRU(3, 4, num_layers=3, bidirectional=True): 2·12·(3 + 4 + 2) + 2·2·12·(8 + 4 + 2) = 888;
    // Linear(8, 2): 18.
    assert_eq!(Classify::PARAMS, 45 + 888 + 18);
    let net = BiLstm::<f32>::init(&Cpu, &mut rng(0)).unwrap();
    let mut names = Vec::new();
    net.visit(&Path::ROOT, &mut |p, _| names.push(p.to_string()));
    assert_eq!(names[1], "rnn.weight_ih_l0");
    assert_eq!(names[5], "rnn.weight_ih_l0_reverse");
    assert_eq!(names[9], "rnn.weight_ih_l1");
    assert_eq!(names[16], "rnn.bias_hh_l1_reverse");
}

/// Dropout between the layers changes training outputs only, and the same
/// seed gives the same mask.
#[test]
fn dropout_between_layers_in_training_only() {
    let mut net = BiLstm::<f32>::init(&Cpu, &mut rng(3)).unwrap();
    let ids = Tokens::<S1<4>, 7>::new::<f32>(&Cpu, &[1, 2, 3, 4, 5, 6, 0, 1]).unwrap();
    let eval1 = net.forward(&ids).unwrap().to_vec().unwrap();
    let eval2 = net.forward(&ids).unwrap().to_vec().unwrap();
    assert_eq!(eval1, eval2);
    let mut tape = net.tape().unwrap();
    let train = net
        .forward_train(&ids, &mut tape)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_ne!(train, eval1);
}
