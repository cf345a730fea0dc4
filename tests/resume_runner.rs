//! The runner (`kiln::train::Trainer`) keeps the promises of the explicit
//! loop: a run stopped and resumed from its checkpoint ends bit for bit
//! where an uninterrupted one does (one network with batch norm, dropout,
//! CutMix, Adam and a cosine schedule, with and without gradient
//! accumulation; and a custom step training two networks with two
//! optimizers); accumulation over k batches of b equals one batch of k·b to
//! 1e-10 in f64; early stopping, step budgets and closure-fed batches work;
//! a checkpoint of another run is refused with every difference named.

use kiln::checkpoint::Checkpoint;
use kiln::data::{Batch, DataLoader, Dataset};
use kiln::optim::Optimizer;
use kiln::prelude::*;
use kiln::schedule::CosineAnnealingLr;
use kiln::train::{
    Checkpointed, Classify, Control, Feed, Goal, Patience, Record, StepCtx, StepOut, Stopped,
    Trainer,
};
use kiln::Path as PPath;
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
    /// No batch norm, no dropout: accumulation is exact.
    pub struct Plain {
        input: [1, 6, 6],
        flatten,
        fc1: Linear(7),
        tanh,
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
fn loader() -> DataLoader {
    DataLoader::new(data(), 8)
        .shuffle(5)
        .image(1, 6, 6)
        .random_crop(1)
        .random_flip(0.5)
        .color_jitter(0.2, 0.2)
        .cutmix(1.0, 0.5, 3)
        .prefetch(1)
}

fn bits<E: Elem, M: Module<E, Cpu>>(m: &M) -> Vec<(String, Vec<u64>)> {
    let mut v = Vec::new();
    m.visit(&PPath::ROOT, &mut |p, t| {
        v.push((
            p.to_string(),
            t.value[..t.numel]
                .iter()
                .map(|x| x.f64().to_bits())
                .collect(),
        ))
    });
    v
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-runner-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join("run.safetensors")
}

fn trainer<'h>(epochs: u64, k: usize, path: &Path) -> Trainer<'h> {
    Trainer::new()
        .epochs(epochs)
        .accumulate(k)
        .seed(11)
        .quiet(true)
        .schedule(CosineAnnealingLr::new(0.01, 3 * 7, 0.0).unwrap())
        .save(path)
        .fingerprint("lr", 0.01)
}

/// 3 epochs straight, and 3 epochs stopped after `stop` steps and resumed
/// into a network of other initial weights: the same bits, and the same
/// history.
fn one_network_resume_is_bitwise(k: usize, stop: u64) {
    let test = DataLoader::new(data(), 16);
    let (pa, pb) = (tmp(&format!("a{k}")), tmp(&format!("b{k}")));
    let mut a = Net::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    let ra = trainer(3, k, &pa)
        .validate(&test)
        .fit(&mut a, &mut Adam::new(0.01), &loader(), Classify::new())
        .unwrap();
    assert_eq!(ra.stopped, Stopped::Budget);
    assert_eq!(ra.history.records.len(), 3);

    let mut b = Net::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    let rb = trainer(3, k, &pb)
        .validate(&test)
        .stop_after(stop)
        .fit(&mut b, &mut Adam::new(0.01), &loader(), Classify::new())
        .unwrap();
    assert_eq!(rb.stopped, Stopped::StopAfter);
    assert_eq!(rb.steps, stop);
    let mut c = Net::<f32, Cpu>::init(&Cpu, &mut rng(99)).unwrap();
    let rc = trainer(3, k, &pb)
        .validate(&test)
        .resume(&pb)
        .fit(&mut c, &mut Adam::new(0.01), &loader(), Classify::new())
        .unwrap();
    assert_eq!(rc.steps, ra.steps);
    assert_eq!(bits(&a), bits(&c), "resumed weights differ (k = {k})");
    let strip = |r: &kiln::train::Report| -> Vec<(u64, Vec<(String, u64)>)> {
        r.history
            .records
            .iter()
            .map(|x| {
                let v = x
                    .values
                    .iter()
                    .filter(|(n, _)| n != "secs" && n != "samples_per_sec")
                    .map(|(n, v)| (n.clone(), v.to_bits()))
                    .collect();
                (x.epoch, v)
            })
            .collect()
    };
    assert_eq!(strip(&ra), strip(&rc), "histories differ (k = {k})");
    // The saved file of the finished run equals the finished run.
    let saved = Checkpoint::read(&pa).unwrap();
    let mut d = Net::<f32, Cpu>::init(&Cpu, &mut rng(5)).unwrap();
    saved.load_module("", &mut d, &pa).unwrap();
    assert_eq!(bits(&a), bits(&d));
}

#[test]
fn fit_resumed_mid_epoch_is_bitwise_identical() {
    one_network_resume_is_bitwise(1, 10);
}

#[test]
fn fit_with_accumulation_resumed_mid_epoch_is_bitwise_identical() {
    // 7 batches per epoch in groups of 2: 4 steps per epoch, the last of one batch.
    one_network_resume_is_bitwise(2, 5);
}

#[test]
fn a_checkpoint_of_other_flags_is_refused_with_every_difference() {
    let p = tmp("flags");
    let mut a = Net::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    trainer(1, 1, &p)
        .stop_after(3)
        .fit(&mut a, &mut Adam::new(0.01), &loader(), Classify::new())
        .unwrap();
    let before = bits(&a);
    let e = Trainer::new()
        .epochs(1)
        .quiet(true)
        .resume(&p)
        .fingerprint("lr", 0.02)
        .accumulate(2)
        .fit(&mut a, &mut Adam::new(0.01), &loader(), Classify::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--lr: 0.01 in the checkpoint, 0.02 now")
            && e.contains("--accumulate: 1 in the checkpoint, 2 now"),
        "{e}"
    );
    assert_eq!(before, bits(&a), "a refused resume changed the network");
}

/// One step of `k` accumulated batches of 4 against one batch of 4k, SGD
/// on an f64 network without batch norm or dropout: the same weights to 1e-10.
#[test]
fn accumulating_k_batches_equals_one_batch_k_times_larger() {
    for k in [2usize, 3] {
        let run = |batch: usize, acc: usize| {
            let mut net = Plain::<f64, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
            let l = DataLoader::new(data(), batch).image(1, 6, 6);
            let r = Trainer::new()
                .steps(1)
                .accumulate(acc)
                .quiet(true)
                .fit(&mut net, &mut Sgd::new(0.5), &l, Classify::new())
                .unwrap();
            assert_eq!(r.steps, 1);
            bits(&net)
        };
        let (small, big) = (run(4, k), run(4 * k, 1));
        let init = {
            let n = Plain::<f64, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
            bits(&n)
        };
        let mut moved = 0.0f64;
        for ((_, a), ((name, b), (_, i))) in small.iter().zip(big.iter().zip(&init)) {
            for ((x, y), z) in a.iter().zip(b).zip(i) {
                let (x, y, z) = (f64::from_bits(*x), f64::from_bits(*y), f64::from_bits(*z));
                assert!(
                    (x - y).abs() <= 1e-10 * (1.0 + y.abs()),
                    "{name}: {x} vs {y} (k = {k})"
                );
                moved = moved.max((y - z).abs());
            }
        }
        assert!(moved > 1e-3, "the step changed nothing ({moved})");
    }
}

#[test]
fn patience_stops_when_the_metric_stops_improving() {
    let test = DataLoader::new(data(), 50);
    let mut net = Plain::<f32, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
    // A learning rate of 0 never improves the loss after the first evaluation.
    let r = Trainer::new()
        .epochs(20)
        .quiet(true)
        .validate(&test)
        .patience(Patience {
            metric: "test_loss".into(),
            evals: 2,
            goal: Goal::Min,
            min_delta: 0.0,
        })
        .fit(&mut net, &mut Sgd::new(0.0), &loader(), Classify::new())
        .unwrap();
    assert_eq!(r.stopped, Stopped::Patience);
    assert_eq!(r.history.records.len(), 3);
    // And a hook that stops at the second evaluation.
    let mut seen = 0;
    let r = Trainer::new()
        .epochs(20)
        .quiet(true)
        .on_eval(|rec: &mut Record| {
            seen += 1;
            rec.set("seen", seen as f64);
            Ok(if seen == 2 {
                Control::Stop
            } else {
                Control::Continue
            })
        })
        .fit(&mut net, &mut Sgd::new(0.1), &loader(), Classify::new())
        .unwrap();
    assert_eq!((r.stopped, r.history.records.len()), (Stopped::Hook, 2));
    assert_eq!(r.last("seen"), Some(2.0));
    // A metric the evaluation does not record is an error naming it.
    let e = Trainer::new()
        .quiet(true)
        .patience(Patience {
            metric: "test_acc".into(),
            evals: 2,
            goal: Goal::Max,
            min_delta: 0.0,
        })
        .fit(&mut net, &mut Sgd::new(0.1), &loader(), Classify::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("records no `test_acc`") && e.contains("train_loss"),
        "{e}"
    );
}

/// Two networks, two optimizers, one custom step: a toy of what a GAN
/// or teacher–student run needs from the runner.
struct Pair {
    a: Plain<f32, Cpu>,
    b: Plain<f32, Cpu>,
    oa: Adam,
    ob: Sgd,
    ta: PlainTape<f32, Cpu>,
    tb: PlainTape<f32, Cpu>,
    ga: PlainGrads<f32, Cpu>,
    gb: PlainGrads<f32, Cpu>,
    x: Tensor<S3<1, 6, 6>>,
    y: Labels<3>,
    d: Tensor<S1<3>>,
}

impl Pair {
    fn new(seed: u64) -> Pair {
        let a = Plain::init(&Cpu, &mut rng(seed)).unwrap();
        let b = Plain::init(&Cpu, &mut rng(seed + 1)).unwrap();
        Pair {
            ta: a.tape_seeded(1).unwrap(),
            tb: b.tape_seeded(2).unwrap(),
            ga: a.grads().unwrap(),
            gb: b.grads().unwrap(),
            a,
            b,
            oa: Adam::new(0.01),
            ob: Sgd::new(0.1).momentum(0.9),
            x: Tensor::zeros(&Cpu, 8).unwrap(),
            y: Labels::empty::<f32>(&Cpu).unwrap(),
            d: Tensor::zeros(&Cpu, 8).unwrap(),
        }
    }
    /// `a` learns the labels; `b` learns `a`'s predictions (a student).
    fn step(&mut self, batch: &Batch, _c: &StepCtx) -> kiln::Result<StepOut> {
        self.x.set_batch(batch.len())?;
        self.x.copy_from_slice(&batch.x)?;
        self.y.set::<f32>(&batch.y)?;
        let la = cross_entropy(
            self.a.forward_train(&self.x, &mut self.ta)?,
            &self.y,
            Some(&mut self.d),
        )?;
        self.a.backward(&mut self.ta, &self.d, &mut self.ga)?;
        self.oa.step(&mut self.a, &self.ga)?;
        let teacher = kiln::metrics::argmax_rows(&self.ta.out_y.to_vec()?, 3);
        self.y.set::<f32>(&teacher)?;
        cross_entropy(
            self.b.forward_train(&self.x, &mut self.tb)?,
            &self.y,
            Some(&mut self.d),
        )?;
        self.b.backward(&mut self.tb, &self.d, &mut self.gb)?;
        self.ob.step(&mut self.b, &self.gb)?;
        Ok(StepOut {
            loss: la as f64,
            correct: None,
            stepped: true,
            lr: self.oa.lr(),
        })
    }
}

impl Checkpointed for Pair {
    fn problems(&self, c: &Checkpoint) -> Vec<String> {
        let mut p = c.training_part_problems("a", &self.a);
        p.extend(c.training_part_problems("b", &self.b));
        p
    }
    fn save_to(&self, c: &mut Checkpoint) -> kiln::Result<()> {
        c.add_training_part("a", &self.a, &self.oa, &self.ta.ctx.rng)?;
        c.add_training_part("b", &self.b, &self.ob, &self.tb.ctx.rng)
    }
    fn load_from(&mut self, c: &Checkpoint, path: &Path) -> kiln::Result<()> {
        let Pair {
            a,
            b,
            oa,
            ob,
            ta,
            tb,
            ..
        } = self;
        c.load_training_part("a", a, oa, &mut ta.ctx.rng, path)?;
        c.load_training_part("b", b, ob, &mut tb.ctx.rng, path)
    }
}

#[test]
fn a_custom_step_with_two_networks_resumes_bitwise() {
    let l = loader();
    let go = |pair: &mut Pair, t: Trainer<'_>| {
        t.run(
            pair,
            Feed::Loader(&l),
            &mut |p: &mut Pair, b: &Batch, c: &StepCtx| p.step(b, c),
            &mut |p: &mut Pair, r: &mut Record| {
                r.set("last_batch", p.tb.out_y.batch() as f64);
                Ok(())
            },
        )
        .unwrap()
    };
    let (pa, pb) = (tmp("pair-a"), tmp("pair-b"));
    let mut x = Pair::new(1);
    let rx = go(&mut x, Trainer::new().epochs(2).quiet(true).save(&pa));
    let mut y = Pair::new(1);
    assert_eq!(
        go(
            &mut y,
            Trainer::new().epochs(2).quiet(true).save(&pb).stop_after(9)
        )
        .steps,
        9
    );
    let mut z = Pair::new(40);
    let rz = go(
        &mut z,
        Trainer::new().epochs(2).quiet(true).save(&pb).resume(&pb),
    );
    assert_eq!(rx.steps, 14);
    assert_eq!(rz.steps, 14);
    assert_eq!(bits(&x.a), bits(&z.a));
    assert_eq!(bits(&x.b), bits(&z.b));
    assert_ne!(bits(&x.a), bits(&Pair::new(1).a), "nothing trained");
    // The saved tensors are named by part, like PyTorch's state_dict of two modules.
    let c = Checkpoint::read(&pa).unwrap();
    assert!(
        c.tensors.contains_key("a.fc1.weight")
            && c.tensors
                .contains_key("b.optim.state.fc1.weight.momentum_buffer"),
        "{:?}",
        c.tensors.keys().collect::<Vec<_>>()
    );
    // A checkpoint whose part `b` is another network is refused, naming it.
    let mut c2 = c.clone();
    c2.tensors.remove("b.fc2.bias");
    c2.save(&pb).unwrap();
    let mut w = Pair::new(3);
    let e = Trainer::new()
        .epochs(2)
        .quiet(true)
        .resume(&pb)
        .run(
            &mut w,
            Feed::Loader(&l),
            &mut |p: &mut Pair, b: &Batch, c: &StepCtx| p.step(b, c),
            &mut |_: &mut Pair, _: &mut Record| Ok(()),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("[b] `fc2.bias`"), "{e}");
}

/// Batches from a closure (as nanoGPT samples random windows), a step
/// budget and evaluation every N steps.
#[test]
fn closure_batches_with_a_step_budget() {
    let d = data();
    let mut pair = Pair::new(2);
    let r = Trainer::new()
        .steps(25)
        .eval_every(10)
        .quiet(true)
        .run(
            &mut pair,
            Feed::Sample {
                f: Box::new(|step, b: &mut Batch| {
                    // 8 samples from a window chosen by the step.
                    let s = (step as usize * 3) % 40;
                    b.x.clear();
                    b.x.extend_from_slice(&d.x[s * 36..(s + 8) * 36]);
                    b.y.clear();
                    b.y.extend_from_slice(&d.y[s..s + 8]);
                    Ok(())
                }),
                per_epoch: 10,
            },
            &mut |p: &mut Pair, b: &Batch, c: &StepCtx| p.step(b, c),
            &mut |_: &mut Pair, _: &mut Record| Ok(()),
        )
        .unwrap();
    assert_eq!(r.steps, 25);
    let steps: Vec<f64> = r
        .history
        .records
        .iter()
        .map(|x| x.get("step").unwrap())
        .collect();
    assert_eq!(steps, vec![10.0, 20.0, 25.0]);
    let first = r.history.records[0].get("train_loss").unwrap();
    let last = r.history.records[2].get("train_loss").unwrap();
    assert!(last < first, "loss {first} → {last}");
    // Sampled batches need a step budget.
    let e = Trainer::new()
        .epochs(1)
        .quiet(true)
        .run(
            &mut pair,
            Feed::Sample {
                f: Box::new(|_, _: &mut Batch| Ok(())),
                per_epoch: 1,
            },
            &mut |p: &mut Pair, b: &Batch, c: &StepCtx| p.step(b, c),
            &mut |_: &mut Pair, _: &mut Record| Ok(()),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("budget in steps"), "{e}");
}

/// A loader that yields no batch (an empty dataset, or fewer samples than
/// one batch with `drop_last`) is refused with an error naming it, where the
/// epoch loop used to spin forever waiting for a step.
#[test]
fn a_loader_without_batches_is_an_error_not_a_hang() {
    let short = DataLoader::new(data().take(5), 8).drop_last(true);
    let empty = DataLoader::new(data().take(0), 8);
    for l in [short, empty] {
        assert_eq!(l.batches_per_epoch(), 0);
        let mut net = Plain::<f64, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
        let e = Trainer::new()
            .epochs(2)
            .quiet(true)
            .fit(&mut net, &mut Sgd::new(0.1), &l, Classify::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("yields no batch") && e.contains("batch size 8"),
            "{e}"
        );
    }
}
