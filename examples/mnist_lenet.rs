//! Trains LeNet-5 on MNIST on the CPU or a CUDA GPU.
//!
//! ```text
//! scripts/fetch-mnist                                   # once: data/mnist/
//! cargo run --release --example mnist_lenet             # defaults reach ≥ 99.0% on t10k
//! cargo run --release --example mnist_lenet -- --optimizer nesterov --lr 0.05
//! cargo run --release --example mnist_lenet -- --save lenet.safetensors --log lenet.jsonl --plot lenet
//! cargo run --release --example mnist_lenet -- --resume lenet.safetensors --save lenet.safetensors
//! cargo run --release --features cuda --example mnist_lenet -- --device cuda
//! ```
//!
//! LeNet-5 as the course draws it, with ReLU and max pooling: a 5×5
//! convolution to 6 channels (padding 2, so 28×28 stays 28×28), 2×2 max pool,
//! a 5×5 convolution to 16 channels (10×10), 2×2 max pool (16×5×5), then
//! fully connected layers 400–120–84–10. All output sizes are computed by
//! `network!` when it expands; `LeNet::summary()` prints them.
//!
//! Each epoch shows a progress bar (on a terminal) and prints the mean
//! training loss, the accuracy on the training batches as they were seen, the
//! loss and accuracy on the 10,000 test images and the training throughput.
//! The last line is `test accuracy (MNIST t10k, 10000 images): 0.9xxx`.
//!
//! * `--save PATH` writes a checkpoint (safetensors) at the end of every
//!   epoch (and every `--save-every` steps): the weights under PyTorch
//!   `state_dict` names (`conv1.weight`, …), the optimizer's state, the
//!   schedule's step, the tape's generator, the loader's position, the
//!   epoch's running sums and the history. Saving is atomic.
//!   `examples/saliency.rs --load PATH` reads the weights from it (loading a
//!   module skips the `optim.*` tensors and the metadata).
//! * `--resume PATH` continues such a run where it stopped, mid-epoch
//!   included; with the same flags and thread count it ends with the same
//!   weights, bit for bit, as a run that never stopped.
//! * `--log PATH` appends one JSON line per epoch; `--plot PREFIX` draws the
//!   loss and accuracy curves into `PREFIX.png` and `PREFIX.svg`.
//! * `--export-onnx PATH` writes the trained network as an ONNX model
//!   (`docs/onnx.md`: `scripts/onnx/mnist_accuracy.py PATH` runs it on the
//!   test set in ONNX Runtime).
//! * `--device cpu|cuda|cuda:N` picks the device (default `cpu`; `cuda` is
//!   GPU 0). The CUDA device needs a binary built with `--features cuda`;
//!   without it, or when `kiln::Cuda::new` fails (no driver, no GPU, no
//!   NVRTC or cuBLAS: the message names what is missing), the program says
//!   so and exits with code 2 before loading any data. The network, the
//!   optimizer and the loop are the same code on both devices; the data
//!   loader runs on the CPU and each batch is uploaded. Checkpoints hold
//!   host values and no device, so `--save`/`--resume` work on either device
//!   and a run saved on one can be resumed on the other (the bit-for-bit
//!   promise above is for the CPU).
//!
//! The training loop allocates its buffers once (input batch, labels, tape,
//! gradients, the gradient of the loss, the loader's batches); every later
//! step reuses them.

use clap::{Parser, ValueEnum};
use kiln::checkpoint::Checkpoint;
use kiln::data::{DataLoader, Position};
use kiln::kernels::Kernels;
use kiln::metrics::count_correct;
use kiln::optim::{Adagrad, Optimizer, RmsProp};
use kiln::prelude::*;
use kiln::schedule::{
    ConstantLr, CosineAnnealingLr, CosineAnnealingWarmRestarts, ExponentialLr, LinearLr,
    LrScheduler, Schedule, Sequential, StepLr,
};
use kiln::train::{EpochBar, History, Meter, Record, RunLog};
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Instant;

/// LeNet-5, declared once in `kiln::models` (see there).
use kiln::models::{LeNet5 as LeNet, LeNet5Tape as LeNetTape};

/// Which optimizer trains the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OptKind {
    /// Plain SGD.
    Sgd,
    /// SGD with momentum 0.9.
    Momentum,
    /// SGD with Nesterov momentum 0.9 (try `--lr 0.05`).
    Nesterov,
    /// Adam (β = 0.9, 0.999).
    Adam,
    /// AdamW (decoupled weight decay, `--weight-decay`, default 0.01).
    Adamw,
    /// Adagrad (try `--lr 0.01`).
    Adagrad,
    /// RMSprop (α = 0.99).
    Rmsprop,
}

/// How the learning rate changes over training (applied every step).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ScheduleKind {
    /// The same learning rate throughout.
    Constant,
    /// Cosine decay from `--lr` to 0 over all steps.
    Cosine,
    /// Cosine with warm restarts, the first period one epoch, each next one twice as long.
    CosineRestarts,
    /// Multiply by `--gamma` every `--step-epochs` epochs.
    Step,
    /// Multiply by `--gamma` every epoch (smoothly, a little every step).
    Exponential,
    /// A linear warm-up from 0.1·lr over `--warmup-epochs`, then cosine decay.
    WarmupCosine,
    /// 0.1·lr for `--warmup-epochs`, then lr (a constant warm-up).
    WarmupConstant,
}

/// The device that trains the network (`--device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeviceArg {
    Cpu,
    /// A CUDA GPU by ordinal.
    Cuda(usize),
}

impl FromStr for DeviceArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceArg::Cpu),
            "cuda" => Ok(DeviceArg::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceArg::Cuda(n)),
                _ => {
                    Err("expected `cpu`, `cuda` or `cuda:N` (N: the GPU's ordinal, from 0)".into())
                }
            },
        }
    }
}

/// Train LeNet-5 on MNIST.
#[derive(Parser, Debug)]
#[command(about = "Train LeNet-5 on MNIST with kiln")]
struct Args {
    /// Passes over the 60,000 training images.
    #[arg(long, default_value_t = 8)]
    epochs: u64,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Peak learning rate (the default suits Adam; try 0.05 for momentum/Nesterov, 0.1 for SGD).
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptKind::Adam)]
    optimizer: OptKind,
    /// Weight decay (AdamW's decoupled decay; L2 for the others).
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = ScheduleKind::Cosine)]
    schedule: ScheduleKind,
    /// Decay factor of the step and exponential schedules.
    #[arg(long, default_value_t = 0.5)]
    gamma: f64,
    /// Epochs between decays of the step schedule.
    #[arg(long, default_value_t = 3)]
    step_epochs: u64,
    /// Warm-up length of the warm-up schedules, in epochs.
    #[arg(long, default_value_t = 1)]
    warmup_epochs: u64,
    /// Normalise the pixels with MNIST's mean and std (0.1307, 0.3081).
    #[arg(long)]
    normalize: bool,
    /// Batches the background loader prepares ahead (0: load in the training thread).
    #[arg(long, default_value_t = 2)]
    prefetch: usize,
    /// CPU threads (0: rayon's default, one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Seed of the initial weights, of the shuffling and of the tape's generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory holding the four MNIST idx files.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    data_dir: PathBuf,
    /// Write a checkpoint to PATH at the end of every epoch (atomically); saliency --load reads it.
    #[arg(long, value_name = "PATH")]
    save: Option<PathBuf>,
    /// Also save every N steps (with --save; 0: only at the end of epochs).
    #[arg(long, default_value_t = 0, value_name = "N")]
    save_every: u64,
    /// Continue the run saved in PATH (same flags; --epochs may grow).
    #[arg(long, value_name = "PATH")]
    resume: Option<PathBuf>,
    /// Append one JSON line per epoch to PATH.
    #[arg(long, value_name = "PATH")]
    log: Option<PathBuf>,
    /// Draw loss and accuracy curves into PREFIX.png and PREFIX.svg after every epoch.
    #[arg(long, value_name = "PREFIX")]
    plot: Option<PathBuf>,
    /// Stop after this many steps in total (to try --resume), saving first with --save.
    #[arg(long, value_name = "STEPS")]
    stop_after: Option<u64>,
    /// After training, write the network as an ONNX model (opset 17) to PATH (docs/onnx.md).
    #[arg(long, value_name = "PATH")]
    export_onnx: Option<PathBuf>,
    /// Device: cpu, cuda (GPU 0) or cuda:N (needs a build with --features cuda).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    device: DeviceArg,
}

impl Args {
    /// The flags a resumed run must share with the saved one.
    fn fingerprint(&self) -> Vec<(&'static str, String)> {
        vec![
            ("run.batch_size", self.batch_size.to_string()),
            ("run.lr", format!("{:?}", self.lr)),
            ("run.optimizer", format!("{:?}", self.optimizer)),
            ("run.weight_decay", format!("{:?}", self.weight_decay)),
            ("run.schedule", format!("{:?}", self.schedule)),
            ("run.gamma", format!("{:?}", self.gamma)),
            ("run.step_epochs", self.step_epochs.to_string()),
            ("run.warmup_epochs", self.warmup_epochs.to_string()),
            ("run.normalize", self.normalize.to_string()),
            ("run.seed", self.seed.to_string()),
            ("run.epochs", self.epochs.to_string()),
        ]
    }
}

fn make_optimizer<D: Kernels<f32>>(args: &Args) -> Box<dyn Optimizer<f32, D>> {
    let lr = args.lr;
    let wd = args.weight_decay.unwrap_or(0.0);
    match args.optimizer {
        OptKind::Sgd => Box::new(Sgd::new(lr).weight_decay(wd)),
        OptKind::Momentum => Box::new(Sgd::new(lr).momentum(0.9).weight_decay(wd)),
        OptKind::Nesterov => Box::new(Sgd::new(lr).nesterov(0.9).weight_decay(wd)),
        OptKind::Adam => Box::new(Adam::new(lr).weight_decay(wd)),
        OptKind::Adamw => Box::new(Adam::adamw(lr).weight_decay(args.weight_decay.unwrap_or(0.01))),
        OptKind::Adagrad => Box::new(Adagrad::new(lr).weight_decay(wd)),
        OptKind::Rmsprop => Box::new(RmsProp::new(lr).weight_decay(wd)),
    }
}

/// The schedule, counted in steps.
fn make_schedule(
    args: &Args,
    steps_per_epoch: u64,
) -> kiln::Result<Box<dyn Schedule + Send + Sync>> {
    let (lr, spe) = (args.lr, steps_per_epoch.max(1));
    let total = (spe * args.epochs).max(1);
    let warm = (spe * args.warmup_epochs).clamp(1, total);
    Ok(match args.schedule {
        ScheduleKind::Constant => Box::new(ConstantLr::new(lr, 1.0, 0)?),
        ScheduleKind::Cosine => Box::new(CosineAnnealingLr::new(lr, total, 0.0)?),
        ScheduleKind::CosineRestarts => {
            Box::new(CosineAnnealingWarmRestarts::new(lr, spe, 2, 0.0)?)
        }
        ScheduleKind::Step => Box::new(StepLr::new(lr, spe * args.step_epochs.max(1), args.gamma)?),
        ScheduleKind::Exponential => {
            Box::new(ExponentialLr::new(lr, args.gamma.powf(1.0 / spe as f64)))
        }
        ScheduleKind::WarmupCosine => Box::new(Sequential::warmup(
            LinearLr::new(lr, 0.1, 1.0, warm)?,
            warm,
            CosineAnnealingLr::new(lr, (total - warm).max(1), 0.0)?,
        )),
        ScheduleKind::WarmupConstant => Box::new(ConstantLr::new(lr, 0.1, warm)?),
    })
}

/// Buffers reused by every evaluation.
struct EvalBufs<D: Kernels<f32>> {
    x: Tensor<S3<1, 28, 28>, f32, D>,
    y: Labels<10, D>,
    tape: LeNetTape<f32, D>,
    host: Vec<f32>,
}

/// Mean loss and accuracy of `net` on `data`, in evaluation mode, 1000 samples at a time.
fn evaluate<D: Kernels<f32>>(
    net: &LeNet<f32, D>,
    data: &DataLoader,
    bufs: &mut EvalBufs<D>,
) -> kiln::Result<(f64, f64)> {
    let mut m = Meter::new();
    for b in data.epoch(0)? {
        let n = b.len();
        bufs.x.set_batch(n)?;
        bufs.x.copy_from_slice(&b.x)?;
        bufs.y.set::<f32>(&b.y)?;
        let logits = net.forward_with(&bufs.x, &mut bufs.tape)?;
        let loss = cross_entropy(logits, &bufs.y, None)?;
        bufs.host.resize(n * 10, 0.0);
        logits.copy_to_slice(&mut bufs.host)?;
        m.add(loss as f64, count_correct(&bufs.host, 10, &b.y)?, n);
    }
    Ok((m.loss(), m.accuracy()))
}

/// What a checkpoint carries besides the network and the optimizer.
struct RunState {
    /// Steps taken (the schedule's position).
    step: u64,
    /// The next batch to train on.
    pos: Position,
    /// The current epoch's running sums.
    meter: Meter,
    history: History,
}

fn save<D: Kernels<f32>>(
    path: &std::path::Path,
    args: &Args,
    net: &LeNet<f32, D>,
    opt: &dyn Optimizer<f32, D>,
    tape: &LeNetTape<f32, D>,
    st: &RunState,
) -> kiln::Result<()> {
    let mut c = Checkpoint::new();
    c.add_module("", net)?;
    c.add_optimizer(net, opt)?;
    c.set_meta("scheduler.last_epoch", st.step);
    c.set_rng("rng.dropout", &tape.ctx.rng);
    st.pos.save(&mut c);
    let (loss_sum, correct, seen) = st.meter.sums();
    c.set_meta("meter.loss_sum", format!("{loss_sum:?}"));
    c.set_meta("meter.correct", correct);
    c.set_meta("meter.seen", seen);
    c.set_meta("history", st.history.to_jsonl());
    for (k, v) in args.fingerprint() {
        c.set_meta(k, v);
    }
    c.save(path)
}

/// Reads every piece of a saved run, checks the flags, then loads the network
/// and the optimizer together (all or nothing).
fn resume<D: Kernels<f32>>(
    path: &std::path::Path,
    args: &Args,
    net: &mut LeNet<f32, D>,
    opt: &mut Box<dyn Optimizer<f32, D>>,
    tape: &mut LeNetTape<f32, D>,
    batches_per_epoch: usize,
) -> kiln::Result<RunState> {
    let c = Checkpoint::read(path)?;
    // A checkpoint of another network is that problem alone, before any
    // flag differences (which would send the user to fix flags first).
    let problems = c.module_problems("", net);
    if !problems.is_empty() {
        return Err(kiln::Error::Checkpoint {
            path: path.to_path_buf(),
            problems,
        });
    }
    let mut problems = Vec::new();
    for (k, want) in args.fingerprint() {
        let got = c.metadata.get(k).map(String::as_str).unwrap_or("(missing)");
        if got != want && k != "run.epochs" {
            problems.push(format!(
                "--{}: {got} in the checkpoint, {want} now",
                &k[4..].replace('_', "-")
            ));
        }
    }
    if !problems.is_empty() {
        return Err(kiln::Error::Checkpoint {
            path: path.to_path_buf(),
            problems,
        });
    }
    if c.metadata.get("run.epochs").map(String::as_str) != Some(&args.epochs.to_string()) {
        eprintln!(
            "note: --epochs differs from the saved run's; the schedule follows the new total"
        );
    }
    let step: u64 = c
        .meta("scheduler.last_epoch")
        .map_err(|e| e.in_file(path))?;
    let rng = c.rng("rng.dropout").map_err(|e| e.in_file(path))?;
    let pos = Position::load(&c).map_err(|e| e.in_file(path))?;
    let meter = Meter::resume(
        c.meta("meter.loss_sum").map_err(|e| e.in_file(path))?,
        c.meta("meter.correct").map_err(|e| e.in_file(path))?,
        c.meta("meter.seen").map_err(|e| e.in_file(path))?,
    )
    .map_err(|e| e.in_file(path))?;
    pos.check_within(step, args.epochs, batches_per_epoch)
        .map_err(|e| e.in_file(path))?;
    let history = History::from_jsonl(c.metadata.get("history").map(String::as_str).unwrap_or(""))
        .map_err(|msg| kiln::Error::Format {
            path: path.to_path_buf(),
            msg: format!("metadata `history`: {msg}"),
        })?;
    c.load_training(net, opt, path)?;
    tape.ctx.rng = rng;
    Ok(RunState {
        step,
        pos,
        meter,
        history,
    })
}

/// Trains on `dev` and returns the final test accuracy and the number of test
/// images (`None` when it stopped early with `--stop-after`).
fn run<D: Kernels<f32>>(args: &Args, dev: &D) -> kiln::Result<Option<(f64, usize)>> {
    if args.threads > 0 {
        kiln::set_threads(args.threads)?;
    }
    if args.batch_size == 0 {
        return Err(kiln::Error::invalid("--batch-size", "must be at least 1"));
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(kiln::Error::invalid(
            "--lr",
            format!("must be a positive number, got {}", args.lr),
        ));
    }
    for (flag, path) in [
        ("--save", &args.save),
        ("--log", &args.log),
        ("--plot", &args.plot),
        ("--export-onnx", &args.export_onnx),
    ] {
        if let Some(path) = path {
            kiln::train::check_output_path(flag, path)?;
        }
    }
    let data = Mnist::load(&args.data_dir)?;
    if data.train.dim != 784 || data.test.dim != 784 {
        return Err(kiln::Error::invalid(
            "Mnist::load",
            format!(
                "expected 28×28 images, got {} and {} values per sample",
                data.train.dim, data.test.dim
            ),
        ));
    }
    let n_test = data.test.len();
    let mut train = DataLoader::new(data.train, args.batch_size)
        .shuffle(args.seed)
        .image(1, 28, 28)
        .prefetch(args.prefetch);
    let mut test = DataLoader::new(data.test, 1000).image(1, 28, 28);
    if args.normalize {
        train = train.normalize(&[0.1307], &[0.3081]);
        test = test.normalize(&[0.1307], &[0.3081]);
    }

    let mut net = LeNet::<f32, D>::init(dev, &mut rng(args.seed))?;
    print!("{}", LeNet::summary());
    println!(
        "device {}, optimizer {:?}, lr {}, schedule {:?}, batch {}, epochs {}, seed {}, threads {}, prefetch {}",
        dev.name(),
        args.optimizer,
        args.lr,
        args.schedule,
        args.batch_size,
        args.epochs,
        args.seed,
        match args.threads {
            0 => "one per core".to_string(),
            n => n.to_string(),
        },
        args.prefetch,
    );

    let mut opt = make_optimizer(args);
    let steps_per_epoch = train.batches_per_epoch() as u64;
    let mut sched = LrScheduler::new(make_schedule(args, steps_per_epoch)?, &mut opt);
    // Everything the loop touches is allocated here, once.
    let mut tape = net.tape_seeded(args.seed)?;
    let mut grads = net.grads()?;
    let mut x = Tensor::<S3<1, 28, 28>, f32, D>::zeros(dev, args.batch_size)?;
    let mut y = Labels::<10, D>::empty::<f32>(dev)?;
    let mut dlogits = Tensor::<S1<10>, f32, D>::zeros(dev, args.batch_size)?;
    let mut host_logits: Vec<f32> = vec![0.0; args.batch_size * 10];
    let mut eval = EvalBufs {
        x: Tensor::zeros(dev, 1000)?,
        y: Labels::empty::<f32>(dev)?,
        tape: net.tape()?,
        host: Vec::with_capacity(10_000),
    };

    let mut st = RunState {
        step: 0,
        pos: Position {
            epoch: 0,
            batch: 0,
            seed: args.seed,
        },
        meter: Meter::new(),
        history: History::default(),
    };
    if let Some(path) = &args.resume {
        st = resume(
            path,
            args,
            &mut net,
            &mut opt,
            &mut tape,
            train.batches_per_epoch(),
        )?;
        sched.set_epoch(&mut opt, st.step);
        println!(
            "resumed {} at epoch {}, batch {} (step {})",
            path.display(),
            st.pos.epoch + 1,
            st.pos.batch,
            st.step
        );
    }
    let mut log = match &args.log {
        Some(p) if args.resume.is_some() => Some(RunLog::append(p)?),
        Some(p) => Some(RunLog::create(p)?),
        None => None,
    };

    let mut test_acc = 0.0;
    let t_all = Instant::now();
    let first_epoch = st.pos.epoch;
    for epoch in first_epoch..args.epochs {
        if st.pos.batch == 0 {
            st.meter = Meter::new();
        }
        let bar = EpochBar::new(epoch + 1, args.epochs, train.samples_per_epoch());
        let t0 = Instant::now();
        for batch in train.resume(st.pos)? {
            let n = batch.len();
            x.set_batch(n)?;
            x.copy_from_slice(&batch.x)?;
            y.set::<f32>(&batch.y)?;

            let logits = net.forward_train(&x, &mut tape)?;
            let loss = cross_entropy(logits, &y, Some(&mut dlogits))
                .map_err(|e| e.at_step(st.step + 1, opt.lr()))?;
            host_logits.resize(n * 10, 0.0);
            logits.copy_to_slice(&mut host_logits)?;
            let correct = count_correct(&host_logits, 10, &batch.y)?;
            net.backward(&mut tape, &dlogits, &mut grads)?;
            opt.step(&mut net, &grads)?;
            sched.step(&mut opt);

            st.step += 1;
            st.meter.add(loss as f64, correct, n);
            st.pos = train.position_after(&batch);
            bar.update(&st.meter);
            let stop = args.stop_after == Some(st.step);
            let periodic =
                args.save_every > 0 && st.step.is_multiple_of(args.save_every) && st.pos.batch != 0;
            if let Some(path) = args.save.as_ref().filter(|_| stop || periodic) {
                save(path, args, &net, &*opt, &tape, &st)?;
            }
            if stop {
                bar.finish(&st.meter);
                println!(
                    "stopped after step {} (next: epoch {}, batch {}); continue with --resume",
                    st.step,
                    st.pos.epoch + 1,
                    st.pos.batch
                );
                return Ok(None);
            }
        }
        bar.finish(&st.meter);
        let secs = t0.elapsed().as_secs_f64();
        // Training throughput, read before the evaluation adds to the meter's clock.
        let samples_per_sec = st.meter.samples_per_sec();
        let (test_loss, acc) = evaluate(&net, &test, &mut eval)?;
        test_acc = acc;
        let m = std::mem::take(&mut st.meter);
        println!(
            "epoch {:>2}/{}  loss {:.4}  train acc {:.4}  test loss {:.4}  test acc {:.4}  {:>6.0} samples/s  ({:.1} s)",
            epoch + 1,
            args.epochs,
            m.loss(),
            m.accuracy(),
            test_loss,
            test_acc,
            samples_per_sec,
            secs,
        );
        let rec = Record::new(epoch + 1)
            .with("train_loss", m.loss())
            .with("train_acc", m.accuracy())
            .with("test_loss", test_loss)
            .with("test_acc", test_acc)
            .with("lr", sched.last_lr())
            .with("samples_per_sec", samples_per_sec)
            .with("secs", secs);
        if let Some(log) = &mut log {
            log.write(&rec)?;
        }
        st.history.push(rec);
        if let Some(path) = &args.save {
            save(path, args, &net, &*opt, &tape, &st)?;
        }
        if let Some(prefix) = &args.plot {
            kiln::train::plot::training_curves(&st.history, prefix)?;
        }
    }
    if first_epoch >= args.epochs {
        test_acc = evaluate(&net, &test, &mut eval)?.1;
    }
    println!("total {:.1} s", t_all.elapsed().as_secs_f64());
    if let Some(path) = &args.export_onnx {
        net.to_onnx(path)?;
        println!(
            "exported the network to {} (ONNX, opset 17)",
            path.display()
        );
    }
    if let Some(path) = &args.save {
        println!("saved the checkpoint to {}", path.display());
    }
    if let Some(prefix) = &args.plot {
        println!("curves: {0}.png, {0}.svg", prefix.display());
    }
    Ok(Some((test_acc, n_test)))
}

/// Opens the device `--device` names and trains on it; `Err` (exit code 2)
/// when the device cannot be opened.
fn run_on_device(args: &Args) -> Result<kiln::Result<Option<(f64, usize)>>, String> {
    match args.device {
        DeviceArg::Cpu => Ok(run(args, &Cpu)),
        #[cfg(feature = "cuda")]
        DeviceArg::Cuda(ordinal) => {
            let dev = kiln::Cuda::new(ordinal).map_err(|e| e.to_string())?;
            println!("{}: {}", dev.name(), dev.describe());
            Ok(run(args, &dev))
        }
        #[cfg(not(feature = "cuda"))]
        DeviceArg::Cuda(ordinal) => Err(format!(
            "--device cuda:{ordinal}: this binary was built without CUDA support; rebuild with \
             `--features cuda` (cargo run --release --features cuda --example mnist_lenet -- --device cuda)"
        )),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match run_on_device(&args) {
        Ok(r) => r,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(Some((acc, n))) => {
            println!("test accuracy (MNIST t10k, {n} images): {acc:.4}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
