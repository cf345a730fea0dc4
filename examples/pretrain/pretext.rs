//! The pretext tasks of `examples/pretrain.rs` and the loop that pretrains
//! them: rotation prediction, SimCLR (one state per projection head) and
//! [`pretrain`], which runs one within the epoch and CPU budgets and then
//! probes its encoder.

use super::probe::probe_encoder;
use super::{
    cosine_schedule, normalise, Args, Encoder, MethodResult, RotNet, RotNetGrads, RotNetTape,
    SimClr, SimClrBn, SimClrBnGrads, SimClrBnTape, SimClrGrads, SimClrTape, IMG, PIX,
};
use kiln::checkpoint::Checkpoint;
use kiln::data::augment;
use kiln::data::{Batch, DataLoader, Dataset};
use kiln::loss::NtXent;
use kiln::prelude::*;
use kiln::train::{Checkpointed, Control, Feed, Record, StepCtx, StepOut, Trainer};
use kiln::Cpu;
use std::path::Path;
use std::time::Instant;

/// One SimCLR view of an image in `[0, 1]`, in place.
fn view(img: &mut [f32], min_crop: f64, r: &mut Rng, scratch: &mut Vec<f32>) {
    let b = augment::resized_crop_box(IMG, (min_crop, 1.0), (0.75, 4.0 / 3.0), r);
    augment::resized_crop(img, IMG, b, scratch);
    if r.random_bool(0.5) {
        augment::hflip(img, IMG);
    }
    if r.random_bool(0.8) {
        augment::brightness(img, r.random_range(0.6..=1.4));
        augment::contrast(img, IMG, r.random_range(0.6..=1.4));
    }
}

/// What a pretext task trains: its network, optimizer and buffers.
pub(super) trait Pretext: Checkpointed + Parts {
    /// One step on a batch of images in `[0, 1]`.
    fn step(&mut self, b: &Batch, c: &StepCtx) -> kiln::Result<StepOut>;
}

/// What every state's `net` (holding `enc`) and `opt` give the loop, the
/// same for each ([`state_parts!`] writes it with `Checkpointed`).
pub(super) trait Parts {
    /// The encoder it trains.
    fn encoder(&self) -> &Encoder<f32, Cpu>;
    /// Sets the optimizer's learning rate (the budget's cosine schedule).
    fn set_lr(&mut self, lr: f64);
}

/// What every pretext step reports: its loss, and Adam's rate after it.
fn stepped(loss: f64, opt: &Adam) -> StepOut {
    StepOut {
        loss,
        correct: None,
        stepped: true,
        lr: opt.lr(),
    }
}

/// Rotation prediction.
pub(super) struct Rotation {
    net: RotNet<f32, Cpu>,
    tape: RotNetTape<f32, Cpu>,
    grads: RotNetGrads<f32, Cpu>,
    opt: Adam,
    x: Tensor<S3<1, 28, 28>>,
    y: Labels<4>,
    d: Tensor<S1<4>>,
    host: Vec<f32>,
    labels: Vec<u32>,
    scratch: Vec<f32>,
}

impl Rotation {
    pub(super) fn new(a: &Args) -> kiln::Result<Self> {
        let net = RotNet::<f32, Cpu>::init(&Cpu, &mut rng(a.seed))?;
        Ok(Rotation {
            tape: net.tape_seeded(a.seed)?,
            grads: net.grads()?,
            net,
            opt: Adam::new(a.rate("rotation")),
            x: Tensor::empty(&Cpu)?,
            y: Labels::empty::<f32>(&Cpu)?,
            d: Tensor::empty(&Cpu)?,
            host: Vec::new(),
            labels: Vec::new(),
            scratch: Vec::new(),
        })
    }
}

impl Pretext for Rotation {
    fn step(&mut self, b: &Batch, _: &StepCtx) -> kiln::Result<StepOut> {
        augment::rotation_task(
            &b.x,
            IMG,
            &mut self.host,
            &mut self.labels,
            &mut self.scratch,
        );
        normalise(&mut self.host);
        self.x.set_batch(self.labels.len())?;
        self.x.copy_from_slice(&self.host)?;
        self.y.set::<f32>(&self.labels)?;
        let out = self.net.forward_train(&self.x, &mut self.tape)?;
        let loss = cross_entropy(out, &self.y, Some(&mut self.d))? as f64;
        self.net
            .backward(&mut self.tape, &self.d, &mut self.grads)?;
        self.opt.step(&mut self.net, &self.grads)?;
        Ok(stepped(loss, &self.opt))
    }
}

/// SimCLR's state for the network `$net` (one struct per head).
macro_rules! simclr_state {
    ($name:ident, $net:ident, $tape:ident, $grads:ident) => {
        /// SimCLR.
        pub(super) struct $name {
            net: $net<f32, Cpu>,
            tape: $tape<f32, Cpu>,
            grads: $grads<f32, Cpu>,
            opt: Adam,
            loss: NtXent,
            x: Tensor<S3<1, 28, 28>>,
            dz: Tensor<S1<64>>,
            host: Vec<f32>,
            scratch: Vec<f32>,
            min_crop: f64,
            seed: u64,
        }

        impl $name {
            pub(super) fn new(a: &Args) -> kiln::Result<Self> {
                let net = $net::<f32, Cpu>::init(&Cpu, &mut rng(a.seed))?;
                Ok($name {
                    tape: net.tape_seeded(a.seed)?,
                    grads: net.grads()?,
                    net,
                    opt: Adam::new(a.rate("contrastive")),
                    loss: NtXent::new(a.temperature)?,
                    x: Tensor::empty(&Cpu)?,
                    dz: Tensor::empty(&Cpu)?,
                    host: Vec::new(),
                    scratch: Vec::new(),
                    min_crop: a.min_crop,
                    seed: a.seed,
                })
            }
        }

        impl Pretext for $name {
            fn step(&mut self, b: &Batch, c: &StepCtx) -> kiln::Result<StepOut> {
                let n = b.len();
                // The views of a step depend only on the seed and the step.
                let mut r = rng(self.seed.wrapping_mul(0x5eed_c1a5) ^ c.step);
                self.host.resize(2 * n * PIX, 0.0);
                for v in 0..2 {
                    for k in 0..n {
                        let row = &mut self.host[(v * n + k) * PIX..(v * n + k + 1) * PIX];
                        row.copy_from_slice(&b.x[k * PIX..(k + 1) * PIX]);
                        view(row, self.min_crop, &mut r, &mut self.scratch);
                    }
                }
                normalise(&mut self.host);
                self.x.set_batch(2 * n)?;
                self.x.copy_from_slice(&self.host)?;
                let z = self.net.forward_train(&self.x, &mut self.tape)?;
                let loss = self.loss.loss(z, Some(&mut self.dz))? as f64;
                self.net
                    .backward(&mut self.tape, &self.dz, &mut self.grads)?;
                self.opt.step(&mut self.net, &self.grads)?;
                Ok(stepped(loss, &self.opt))
            }
        }
    };
}
simclr_state!(Contrastive, SimClr, SimClrTape, SimClrGrads);
simclr_state!(ContrastiveBn, SimClrBn, SimClrBnTape, SimClrBnGrads);

/// `Checkpointed` and [`Parts`] of a state with fields `net` (holding
/// `enc`), `opt` and `tape`.
macro_rules! state_parts {
    ($t:ty) => {
        impl Parts for $t {
            fn encoder(&self) -> &Encoder<f32, Cpu> {
                &self.net.enc
            }
            fn set_lr(&mut self, lr: f64) {
                self.opt.set_lr(lr);
            }
        }
        impl Checkpointed for $t {
            fn problems(&self, c: &Checkpoint) -> Vec<String> {
                c.training_part_problems("model", &self.net)
            }
            fn save_to(&self, c: &mut Checkpoint) -> kiln::Result<()> {
                c.add_training_part("model", &self.net, &self.opt, &self.tape.ctx.rng)
            }
            fn load_from(&mut self, c: &Checkpoint, path: &Path) -> kiln::Result<()> {
                c.load_training_part(
                    "model",
                    &mut self.net,
                    &mut self.opt,
                    &mut self.tape.ctx.rng,
                    path,
                )
            }
        }
    };
}
state_parts!(Rotation);
state_parts!(Contrastive);
state_parts!(ContrastiveBn);

/// Pretrains `state` on `train`'s images (labels unread), then probes its
/// encoder.
pub(super) fn pretrain<P: Pretext>(
    a: &Args,
    method: &str,
    mut state: P,
    train: &Dataset,
    test: &Dataset,
) -> kiln::Result<MethodResult> {
    let unlabelled = DataLoader::new(train.clone(), a.batch)
        .shuffle(a.seed)
        .drop_last(true);
    let (start, cpu0) = (Instant::now(), kiln::train::cpu_secs());
    let budget = a.budget_cpu_mins * 60.0;
    let losses = std::cell::RefCell::new(Vec::new());
    let mut since = 0;
    let cosine = cosine_schedule("--lr-schedule", &a.lr_schedule)?;
    let used = || match (kiln::train::cpu_secs(), cpu0) {
        (Some(c1), Some(c0)) => c1 - c0,
        _ => start.elapsed().as_secs_f64() * kiln::cpu::threads() as f64,
    };
    let steps_total = (a.epochs * unlabelled.batches_per_epoch() as u64).max(1);
    let report = Trainer::new()
        .epochs(a.epochs)
        .quiet(true)
        .on_step(|_| {
            Ok(if used() > budget {
                println!(
                    "  {method}: budget of {} CPU-minutes reached",
                    a.budget_cpu_mins
                );
                Control::Stop
            } else {
                Control::Continue
            })
        })
        .run(
            &mut state,
            Feed::Loader(&unlabelled),
            &mut |s: &mut P, b: &Batch, c: &StepCtx| {
                if cosine {
                    // The share of the run done: of the CPU budget, or of
                    // the epochs if they end first.
                    let done = (used() / budget).max(c.step as f64 / steps_total as f64);
                    s.set_lr(
                        0.5 * a.rate(method) * (1.0 + (std::f64::consts::PI * done.min(1.0)).cos()),
                    );
                }
                let out = s.step(b, c)?;
                losses.borrow_mut().push(out.loss);
                Ok(out)
            },
            &mut |_: &mut P, rec: &mut Record| {
                let losses = losses.borrow();
                let recent = &losses[since..];
                since = losses.len();
                println!(
                    "  {method}: epoch {}: pretext loss {:.4} ({:.0} s)",
                    rec.epoch,
                    recent.iter().sum::<f64>() / recent.len().max(1) as f64,
                    start.elapsed().as_secs_f64()
                );
                Ok(())
            },
        )?;
    let pretrain_secs = start.elapsed().as_secs_f64();
    let pretrain_cpu_secs = kiln::train::cpu_secs().zip(cpu0).map(|(c1, c0)| c1 - c0);
    let t = Instant::now();
    let enc = state.encoder();
    if let Some(dir) = &a.save_dir {
        // `run` created the directory before any pretraining.
        let path = dir.join(format!("{method}_encoder.safetensors"));
        kiln::checkpoint::save(enc, &path)?;
        println!("  {method}: encoder saved to {}", path.display());
    }
    let test_acc = probe_encoder(a, enc, train, test, method)?;
    Ok(MethodResult {
        method: method.into(),
        test_acc,
        losses: losses.into_inner(),
        steps: report.steps,
        pretrain_secs,
        probe_secs: t.elapsed().as_secs_f64(),
        pretrain_cpu_secs,
    })
}
