//! The course's transfer-learning recipe on a generated network: freeze the
//! feature layers, retrain the head. Frozen parameters keep every bit; the
//! head changes and the loss falls.

use kiln::optim::{Adam, Optimizer, Sgd};
use kiln::prelude::*;
use kiln::regularize::Penalty;
use kiln::schedule::{CosineAnnealingLr, LinearLr, LrScheduler, Sequential};
use kiln::Path;

kiln::network! {
    pub struct Net {
        input: [6],
        fc1: Linear(8),
        relu,
        fc2: Linear(8),
        relu,
        fc3: Linear(3),
    }
}

/// Every parameter by dotted path.
fn params(net: &Net<f64, Cpu>) -> Vec<(String, Vec<f64>)> {
    let mut v = Vec::new();
    net.visit(&Path::ROOT, &mut |p, t| {
        v.push((p.to_string(), t.value[..t.numel].to_vec()))
    });
    v
}

/// `steps` training steps of `opt` on a fixed batch; the losses.
fn train<O: Optimizer<f64, Cpu>>(net: &mut Net<f64, Cpu>, opt: &mut O, steps: usize) -> Vec<f64> {
    let xs: Vec<f64> = (0..24).map(|i| ((i * 5 % 7) as f64 - 3.0) / 3.0).collect();
    let x = Tensor::<S1<6>, f64>::from_slice(&Cpu, &xs).unwrap();
    let y = Labels::<3>::new::<f64>(&Cpu, &[0, 2, 1, 2]).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut dlogits = Tensor::empty(&Cpu).unwrap();
    (0..steps)
        .map(|_| {
            let logits = net.forward_train(&x, &mut tape).unwrap();
            let loss = cross_entropy(logits, &y, Some(&mut dlogits)).unwrap();
            net.backward(&mut tape, &dlogits, &mut grads).unwrap();
            opt.step(net, &grads).unwrap();
            loss
        })
        .collect()
}

#[test]
fn frozen_features_keep_every_bit_and_the_head_learns() {
    let mut net = Net::<f64, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
    let before = params(&net);
    let mut opt = Sgd::new(0.1).momentum(0.9).only(|p| p.starts_with("fc3."));
    let losses = train(&mut net, &mut opt, 30);
    assert!(losses[29] < 0.85 * losses[0], "{losses:?}");
    for ((path, a), (_, b)) in before.iter().zip(params(&net)) {
        if path.starts_with("fc3.") {
            assert_ne!(*a, b, "{path} should have been trained");
        } else {
            assert_eq!(*a, b, "{path} is frozen");
        }
    }
}

#[test]
fn fine_tuning_after_freezing_trains_everything() {
    // Stage 1: head only, with a warm-up then cosine schedule, clipping and
    // an L2 penalty on the weights. Stage 2: unfreeze and fine-tune all.
    let mut net = Net::<f64, Cpu>::init(&Cpu, &mut rng(4)).unwrap();
    let start = params(&net);
    let pen = Penalty::l2(1e-3).only(|p| p.ends_with("weight"));
    let mut opt = Adam::new(0.01)
        .clip_grad_norm(1.0)
        .penalty(pen)
        .freeze(|p| !p.starts_with("fc3."));
    let s = Sequential::warmup(
        LinearLr::new(0.01, 0.1, 1.0, 5).unwrap(),
        5,
        CosineAnnealingLr::new(0.01, 20, 1e-4).unwrap(),
    );
    let mut sched = LrScheduler::new(s, &mut opt);
    let mut first = Vec::new();
    for _ in 0..25 {
        first.extend(train(&mut net, &mut opt, 1));
        sched.step(&mut opt);
    }
    let mid = params(&net);
    for ((path, a), (_, b)) in start.iter().zip(&mid) {
        assert_eq!(path.starts_with("fc3."), a != b, "{path}");
    }
    let mut all = Adam::new(0.005);
    let second = train(&mut net, &mut all, 20);
    assert!(second[19] < first[0], "{first:?} {second:?}");
    for ((path, a), (_, b)) in mid.iter().zip(params(&net)) {
        assert_ne!(*a, b, "{path} should train once unfrozen");
    }
}
