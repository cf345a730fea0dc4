//! Resuming a run from a checkpoint is bitwise identical to not stopping:
//! parameters, batch-norm buffers, optimizer state, the schedule's step, the
//! dropout generator and the loader's position (mid-epoch, with shuffling and
//! every augmentation, CutMix included) all come back. A checkpoint of
//! another network or optimizer reports every mismatch and changes nothing.

use kiln::checkpoint::Checkpoint;
use kiln::data::{DataLoader, Dataset, Position};
use kiln::loss::soft_cross_entropy;
use kiln::optim::{Adagrad, Adam, Optimizer, RmsProp, Sgd};
use kiln::prelude::*;
use kiln::regularize::Penalty;
use kiln::schedule::{CosineAnnealingLr, LrScheduler};
use kiln::{Path as PPath, Role};
use std::path::{Path, PathBuf};

kiln::network! {
    pub struct Net {
        input: [1, 6, 6],
        flatten,
        fc1: Linear(16),
        bn: BatchNorm1d,
        relu,
        drop: Dropout(0.3),
        fc2: Linear(3),
    }
}

kiln::network! {
    /// Same names, fc1 wider.
    pub struct Wider {
        input: [1, 6, 6],
        flatten,
        fc1: Linear(20),
        bn: BatchNorm1d,
        relu,
        drop: Dropout(0.3),
        fc2: Linear(3),
    }
}

/// 50 images of 6×6 with 3 classes (the class decides which third is bright).
fn data() -> Dataset {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..50u32 {
        let c = i % 3;
        y.push(c);
        for p in 0..36u32 {
            let base = if (p / 12) == c { 0.8 } else { 0.2 };
            x.push(base + ((i * 7 + p * 13) % 11) as f32 / 50.0);
        }
    }
    Dataset { x, y, dim: 36 }
}

/// Shuffled, augmented, CutMix; 7 batches per epoch (the last of 2 samples).
fn loader(prefetch: usize) -> DataLoader {
    DataLoader::new(data(), 8)
        .shuffle(5)
        .image(1, 6, 6)
        .random_crop(1)
        .random_flip(0.5)
        .color_jitter(0.2, 0.2)
        .normalize(&[0.5], &[0.25])
        .cutmix(1.0, 0.5, 3)
        .prefetch(prefetch)
}

fn bits<M: Module<f32, Cpu>>(m: &M) -> Vec<(String, Vec<u32>)> {
    let mut v = Vec::new();
    m.visit(&PPath::ROOT, &mut |p, t| {
        v.push((
            p.to_string(),
            t.value[..t.numel].iter().map(|x| x.to_bits()).collect(),
        ))
    });
    v
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-resume-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join("run.safetensors")
}

const N: usize = 10;

/// Everything a run holds besides the network and the optimizer.
struct Run {
    tape: NetTape<f32, Cpu>,
    sched: LrScheduler<CosineAnnealingLr>,
    pos: Position,
}

/// Trains `steps` steps from `run.pos`, scheduling per step; saves after
/// `save_at` steps when asked.
fn train<O: Optimizer<f32, Cpu>>(
    net: &mut Net<f32, Cpu>,
    opt: &mut O,
    run: &mut Run,
    loader: &DataLoader,
    steps: usize,
    save_at: Option<(usize, &Path)>,
) {
    let mut grads = net.grads().unwrap();
    let mut x = Tensor::<S3<1, 6, 6>>::zeros(&Cpu, 8).unwrap();
    let mut t = Tensor::<S1<3>>::zeros(&Cpu, 8).unwrap();
    let mut dlogits = Tensor::<S1<3>>::zeros(&Cpu, 8).unwrap();
    let mut done = 0;
    while done < steps {
        for b in loader.resume(run.pos).unwrap() {
            x.set_batch(b.len()).unwrap();
            x.copy_from_slice(&b.x).unwrap();
            t.set_batch(b.len()).unwrap();
            t.copy_from_slice(&b.soft).unwrap();
            let logits = net.forward_train(&x, &mut run.tape).unwrap();
            soft_cross_entropy(logits, &t, 0.0, Some(&mut dlogits)).unwrap();
            net.backward(&mut run.tape, &dlogits, &mut grads).unwrap();
            opt.step(net, &grads).unwrap();
            run.sched.step(opt);
            run.pos = loader.position_after(&b);
            done += 1;
            if let Some((at, path)) = save_at {
                if at == done {
                    let mut c = Checkpoint::new();
                    c.add_module("", net).unwrap();
                    c.add_optimizer(net, opt).unwrap();
                    c.set_meta("scheduler.last_epoch", run.sched.epoch());
                    c.set_rng("rng.train", &run.tape.ctx.rng);
                    run.pos.save(&mut c);
                    c.save(path).unwrap();
                }
            }
            if done == steps {
                break;
            }
        }
    }
}

fn fresh_run(net: &Net<f32, Cpu>, opt: &mut impl Optimizer<f32, Cpu>, seed: u64) -> Run {
    Run {
        tape: net.tape_seeded(seed).unwrap(),
        sched: LrScheduler::new(
            CosineAnnealingLr::new(0.05, 2 * N as u64, 0.0).unwrap(),
            opt,
        ),
        pos: Position {
            epoch: 0,
            batch: 0,
            seed: 5,
        },
    }
}

/// Straight to 2N (saving at N), and resumed at N from another
/// initialisation and generator: the same bits.
fn resume_is_bitwise<O: Optimizer<f32, Cpu>>(name: &str, make: impl Fn() -> O) {
    let path = tmp(name);
    let mut net = Net::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    let mut opt = make();
    let mut run = fresh_run(&net, &mut opt, 11);
    train(
        &mut net,
        &mut opt,
        &mut run,
        &loader(0),
        2 * N,
        Some((N, &path)),
    );
    let straight = bits(&net);

    let mut net2 = Net::<f32, Cpu>::init(&Cpu, &mut rng(99)).unwrap();
    let mut opt2 = make();
    let mut run2 = fresh_run(&net2, &mut opt2, 12345);
    assert_ne!(bits(&net2), bits(&net));
    let c = Checkpoint::read(&path).unwrap();
    // Read every piece first, then load model and optimizer together (all or nothing).
    let last_epoch: u64 = c.meta("scheduler.last_epoch").unwrap();
    let r = c.rng("rng.train").unwrap();
    let pos = Position::load(&c).unwrap();
    assert_eq!(
        (last_epoch, pos),
        (
            N as u64,
            Position {
                epoch: 1,
                batch: 3,
                seed: 5
            }
        )
    );
    c.load_training(&mut net2, &mut opt2, &path).unwrap();
    run2.sched.set_epoch(&mut opt2, last_epoch);
    run2.tape.ctx.rng = r;
    run2.pos = pos;
    // The resumed half loads in a background thread: same batches.
    train(&mut net2, &mut opt2, &mut run2, &loader(3), N, None);
    assert_eq!(bits(&net2), straight, "{name}: resumed run differs");
    assert_eq!(
        opt2.state(&Cpu).unwrap(),
        opt.state(&Cpu).unwrap(),
        "{name}: optimizer state differs"
    );
}

#[test]
fn resume_adam_is_bitwise_identical() {
    resume_is_bitwise("adam", || Adam::new(0.05));
}

#[test]
fn resume_every_optimizer_is_bitwise_identical() {
    resume_is_bitwise("adamw-clip", || Adam::adamw(0.05).clip_grad_norm(1.0));
    resume_is_bitwise("nesterov-frozen", || {
        Sgd::new(0.05)
            .nesterov(0.9)
            .freeze(|p| p.starts_with("fc1."))
    });
    resume_is_bitwise("sgd", || Sgd::new(0.05));
    resume_is_bitwise("rmsprop", || {
        RmsProp::new(0.01).momentum(0.5).centered(true)
    });
    resume_is_bitwise("adagrad-l2", || {
        Adagrad::new(0.05).penalty(Penalty::l2(1e-3))
    });
}

#[test]
fn optimizer_state_is_named_like_pytorch() {
    let path = tmp("names");
    let mut net = Net::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    let mut opt = Adam::new(0.05).only(|p| p.starts_with("fc2."));
    let mut run = fresh_run(&net, &mut opt, 1);
    train(
        &mut net,
        &mut opt,
        &mut run,
        &loader(0),
        3,
        Some((3, &path)),
    );
    let c = Checkpoint::read(&path).unwrap();
    let optim: Vec<&str> = c
        .tensors
        .keys()
        .filter(|k| k.starts_with("optim."))
        .map(|s| s.as_str())
        .collect();
    assert_eq!(
        optim,
        [
            "optim.state.fc2.bias.exp_avg",
            "optim.state.fc2.bias.exp_avg_sq",
            "optim.state.fc2.bias.step",
            "optim.state.fc2.weight.exp_avg",
            "optim.state.fc2.weight.exp_avg_sq",
            "optim.state.fc2.weight.step",
        ]
    );
    assert_eq!(
        c.tensors["optim.state.fc2.weight.exp_avg"].shape,
        vec![3, 16]
    );
    assert_eq!(
        c.tensors["optim.state.fc2.weight.step"].bytes,
        3i64.to_le_bytes()
    );
    assert_eq!(c.metadata["optim.type"], "Adam");
    assert_eq!(c.metadata["optim.steps"], "3.0");
    // The model part of the checkpoint still loads on its own (optimizer tensors are not "unexpected").
    kiln::checkpoint::load(
        &mut Net::<f32, Cpu>::init(&Cpu, &mut rng(2)).unwrap(),
        &path,
    )
    .unwrap();
}

#[test]
fn optimizer_indices_follow_the_trainable_parameters() {
    // The checkpoint names optimizer state by the trainable parameters in
    // `visit` order; the optimizer keys it by `visit_grads` order. They agree
    // (batch-norm buffers are skipped by both).
    let mut net = Net::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    let grads = net.grads().unwrap();
    let mut a = Vec::new();
    net.visit(&PPath::ROOT, &mut |p, t| {
        if t.role == Role::Param {
            a.push(p.to_string())
        }
    });
    let mut b = Vec::new();
    net.visit_grads(&grads, &PPath::ROOT, &mut |p, t| {
        if t.grad.is_some() {
            b.push(p.to_string())
        }
    });
    assert_eq!(a, b);
    assert_eq!(
        a,
        [
            "fc1.weight",
            "fc1.bias",
            "bn.weight",
            "bn.bias",
            "fc2.weight",
            "fc2.bias"
        ]
    );
}

#[test]
fn a_mismatched_checkpoint_names_every_problem_and_changes_nothing() {
    let path = tmp("mismatch");
    let mut net = Net::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    let mut opt = Adam::new(0.05);
    let mut run = fresh_run(&net, &mut opt, 1);
    train(
        &mut net,
        &mut opt,
        &mut run,
        &loader(0),
        2,
        Some((2, &path)),
    );
    let c = Checkpoint::read(&path).unwrap();

    // Another network: the model's and the optimizer's mismatches, all named.
    let mut w = Wider::<f32, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
    let mut wopt = Adam::new(0.05);
    let mut wrun_tape = w.tape().unwrap();
    let mut g = w.grads().unwrap();
    let x = Tensor::<S3<1, 6, 6>>::zeros(&Cpu, 2).unwrap();
    let y = Labels::<3>::new::<f32>(&Cpu, &[0, 1]).unwrap();
    let mut d = Tensor::empty(&Cpu).unwrap();
    let logits = w.forward_train(&x, &mut wrun_tape).unwrap();
    cross_entropy(logits, &y, Some(&mut d)).unwrap();
    w.backward(&mut wrun_tape, &d, &mut g).unwrap();
    wopt.step(&mut w, &g).unwrap();
    let (before, state_before) = (bits_w(&w), wopt.state(&Cpu).unwrap());
    let e = c
        .load_training(&mut w, &mut wopt, &path)
        .unwrap_err()
        .to_string();
    for want in [
        "`fc1.weight`: shape [16, 36] in the checkpoint, [20, 36] in the model",
        "`bn.running_mean`: shape [16] in the checkpoint, [20] in the model",
        "`fc2.weight`: shape [3, 16] in the checkpoint, [3, 20] in the model",
        "`optim.state.fc1.weight.exp_avg`: shape [16, 36] in the checkpoint, parameter `fc1.weight` is [20, 36] in the model",
        "`optim.state.fc1.weight.exp_avg_sq`: shape [16, 36] in the checkpoint, parameter `fc1.weight` is [20, 36] in the model",
        "`optim.state.bn.bias.exp_avg`: shape [16] in the checkpoint, parameter `bn.bias` is [20] in the model",
        "`optim.state.fc2.weight.exp_avg_sq`: shape [3, 16] in the checkpoint, parameter `fc2.weight` is [3, 20] in the model",
    ] {
        assert!(e.contains(want), "missing {want:?} in\n{e}");
    }
    assert!(
        e.contains("run.safetensors: checkpoint does not match the model (17 problems)"),
        "{e}"
    );
    assert_eq!(
        bits_w(&w),
        before,
        "a failed load must not change the model"
    );
    assert_eq!(
        wopt.state(&Cpu).unwrap(),
        state_before,
        "a failed load must not change the optimizer"
    );

    // Same network, another optimizer: the kind is named, nothing changes.
    let mut net2 = Net::<f32, Cpu>::init(&Cpu, &mut rng(2)).unwrap();
    let before = bits(&net2);
    let mut sgd = Sgd::new(0.1).momentum(0.9);
    let e = c
        .load_training(&mut net2, &mut sgd, &path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("run.safetensors: checkpoint does not match the model (1 problem):\n  the state was written by Adam, this optimizer is SGD"), "{e}");
    assert_eq!(bits(&net2), before);
    assert!(sgd.state(&Cpu).unwrap().params.is_empty());

    // A checkpoint without optimizer state.
    let p2 = tmp("model-only");
    kiln::checkpoint::save(&net, &p2).unwrap();
    let e = Checkpoint::read(&p2)
        .unwrap()
        .load_training(&mut net2, &mut Adam::new(0.1), &p2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no optimizer state in the checkpoint"), "{e}");
    assert_eq!(bits(&net2), before);
}

fn bits_w(m: &Wider<f32, Cpu>) -> Vec<(String, Vec<u32>)> {
    bits(m)
}

#[test]
fn rng_state_round_trips_mid_stream() {
    use rand::RngCore;
    let mut r = rng(42);
    for _ in 0..13 {
        r.next_u32();
    }
    let mut c = Checkpoint::new();
    c.set_rng("r", &r);
    let path = tmp("rng");
    c.add_values::<f32>("x", &[1], &[0.0]);
    c.save(&path).unwrap();
    let mut back = Checkpoint::read(&path).unwrap().rng("r").unwrap();
    let want: Vec<u64> = (0..5).map(|_| r.next_u64()).collect();
    let got: Vec<u64> = (0..5).map(|_| back.next_u64()).collect();
    assert_eq!(got, want);
    assert!(Checkpoint::new()
        .rng("r")
        .unwrap_err()
        .to_string()
        .contains("`r.seed` is missing"));
}
