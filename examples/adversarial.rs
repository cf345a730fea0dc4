//! Adversarial examples against LeNet-5 on MNIST: FGSM and PGD (untargeted
//! and toward a chosen class), accuracy versus ε for a plainly trained
//! network and for one trained on PGD examples (Madry et al. 2018).
//!
//! ```text
//! scripts/fetch-mnist                                   # once: data/mnist/
//! cargo run --release --example adversarial             # docs/visualisation.md's table
//! cargo run --release --example adversarial -- --smoke  # the CI run (tests/vis_smoke.rs)
//! ```
//!
//! Pixels are in `[0, 1]` and LeNet-5 reads them as they are (no
//! normalisation), so ε is in pixel units and the attacked images are
//! clipped to `[0, 1]` (`kiln::attack`). The loss gradient with respect to
//! the image is one `backward_from("fc3" → "x")` seeded with `∂CE/∂logits`:
//! no parameter gradient is computed while attacking.
//!
//! 1. Train LeNet-5 plainly (Adam, cosine decay).
//! 2. Adversarial training: from the plain weights, `--adv-epochs` more
//!    epochs on PGD examples only (`--adv-eps`, `--adv-steps` steps of
//!    `--adv-step`, random start), crafted against the current weights for
//!    every batch; stops early when `--adv-budget-min` minutes have passed.
//! 3. For both networks and each ε of `--eps`: accuracy on FGSM and on PGD
//!    (`--pgd-iters` steps of `--pgd-step`, random start) examples of the
//!    `--test-count` test images (after `--test-skip`), the attack's success rate (the
//!    share of correctly classified images it turns wrong), the mean `L∞`
//!    perturbation, and the success rate of PGD toward class `--target`
//!    (the share of images of other classes it makes the network call
//!    `--target`). Writes `accuracy_vs_eps.png`/`.svg`, `table.md` and
//!    `examples.png` (clean | FGSM | PGD at ε = 0.1, per row) to `--out-dir`.

use clap::Parser;
use kiln::attack::{fgsm, mean_linf, pgd, softmax_ce_grad, Goal, Pgd};
use kiln::metrics::argmax;
use kiln::models::{LeNet5 as LeNet, LeNet5Tape as LeNetTape};
use kiln::prelude::*;
use kiln::train::plot::{plot_panels_x, Panel};
use kiln::GradMode;
use rand::seq::SliceRandom;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Attack LeNet-5 with FGSM and PGD, plainly and adversarially trained.
#[derive(Parser, Debug, Clone)]
#[command(about = "FGSM and PGD adversarial examples against LeNet-5 on MNIST with kiln")]
pub struct Args {
    /// Epochs of plain training.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Epochs of PGD training after the plain ones (0: none).
    #[arg(long, default_value_t = 3)]
    pub adv_epochs: usize,
    /// Stop PGD training after this many minutes (wall clock).
    #[arg(long, default_value_t = 30.0)]
    pub adv_budget_min: f64,
    /// ε of the PGD examples trained on.
    #[arg(long, default_value_t = 0.1)]
    pub adv_eps: f32,
    /// PGD steps per training batch.
    #[arg(long, default_value_t = 7)]
    pub adv_steps: usize,
    /// PGD step size while training (2.5·ε/steps, Madry et al.).
    #[arg(long, default_value_t = 0.036)]
    pub adv_step: f32,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Peak learning rate of Adam (cosine decay to 0 within each phase).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Only the first N training images (0: all 60 000).
    #[arg(long, default_value_t = 0)]
    pub train_count: usize,
    /// N test images are attacked (the first ones, after --test-skip).
    #[arg(long, default_value_t = 10_000)]
    pub test_count: usize,
    /// Skip the first N test images (with --test-count, a slice of the test set).
    #[arg(long, default_value_t = 0)]
    pub test_skip: usize,
    /// The budgets ε (pixel units of [0, 1]), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,0.05,0.1,0.2,0.3")]
    pub eps: Vec<f32>,
    /// PGD steps at evaluation.
    #[arg(long, default_value_t = 40)]
    pub pgd_iters: usize,
    /// PGD step size at evaluation.
    #[arg(long, default_value_t = 0.01)]
    pub pgd_step: f32,
    /// The class targeted PGD pushes toward.
    #[arg(long, default_value_t = 0)]
    pub target: u32,
    /// Images per attack batch.
    #[arg(long, default_value_t = 500)]
    pub eval_batch: usize,
    /// CPU threads (0: rayon's default); `main` sets them, not `run`.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Seed of weights, shuffling and random starts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory holding the MNIST idx files.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    pub data_dir: PathBuf,
    /// Directory for the table, plot and pictures (created if missing).
    #[arg(long, default_value = "adversarial")]
    pub out_dir: PathBuf,
    /// Only redraw `accuracy_vs_eps.png`/`.svg` in --out-dir from a
    /// `table.md` this example wrote (no training, no attack).
    #[arg(long)]
    pub replot: Option<PathBuf>,
    /// CI run: 1 epoch on 4000 images, 1 epoch of PGD-3 training on 1000,
    /// 300 test images, ε ∈ {0, 0.1, 0.3}, PGD-10 of step 0.05.
    #[arg(long)]
    pub smoke: bool,
}

/// One row of the table: a network, an attack, a budget.
#[derive(Clone, Debug)]
pub struct Row {
    pub model: &'static str,
    pub attack: &'static str,
    pub eps: f32,
    pub accuracy: f64,
    /// Share of the correctly classified images the attack turned wrong.
    pub success: f64,
    pub mean_linf: f64,
    /// PGD toward `--target`: share of images of other classes classified as it.
    pub targeted: Option<f64>,
}

/// What a run measured.
pub struct Outcome {
    pub clean_plain: f64,
    pub clean_adv: Option<f64>,
    pub rows: Vec<Row>,
    pub plain_epoch_secs: Vec<f64>,
    pub adv_epoch_secs: Vec<f64>,
}

/// `∂CE(f(x), y)/∂x` for a batch of images `x` (pixels in [0, 1]):
/// forward, the cross-entropy's gradient at the logits, `backward_from`
/// down to the image (no parameter gradient).
fn loss_grad(
    net: &mut LeNet<f32, Cpu>,
    tape: &mut LeNetTape<f32, Cpu>,
    x: &[f32],
    y: &[u32],
) -> kiln::Result<Vec<f32>> {
    let xt = Tensor::<S3<1, 28, 28>>::from_vec(&Cpu, y.len(), x.to_vec())?;
    net.forward_train(&xt, tape)?;
    let (_, g) = softmax_ce_grad(&tape.activation("fc3")?.data, 10, y)?;
    net.backward_from(tape, "fc3", &g, "x", GradMode::Plain)?;
    Ok(tape.gradient("x")?.data)
}

/// The predicted classes of a batch.
fn predict(
    net: &LeNet<f32, Cpu>,
    tape: &mut LeNetTape<f32, Cpu>,
    x: &[f32],
) -> kiln::Result<Vec<usize>> {
    let xt = Tensor::<S3<1, 28, 28>>::from_vec(&Cpu, x.len() / 784, x.to_vec())?;
    let logits = net.forward_with(&xt, tape)?.to_vec()?;
    Ok(logits.chunks_exact(10).map(argmax).collect())
}

/// Epochs of Adam (cosine decay) on `data`, each batch replaced by its PGD
/// examples when `adv` is given; stops after `budget_s` seconds. Returns
/// the seconds of each epoch.
fn train(
    net: &mut LeNet<f32, Cpu>,
    data: &Dataset,
    args: &Args,
    epochs: usize,
    adv: Option<Pgd>,
    budget_s: f64,
    rng: &mut Rng,
) -> kiln::Result<Vec<f64>> {
    let mut opt = Adam::new(args.lr);
    let (mut tape, mut atk_tape) = (net.tape_seeded(args.seed)?, net.tape()?);
    let mut grads = net.grads()?;
    let mut x = Tensor::<S3<1, 28, 28>>::zeros(&Cpu, args.batch_size)?;
    let mut y = Labels::<10>::empty::<f32>(&Cpu)?;
    let mut dlogits = Tensor::<S1<10>>::zeros(&Cpu, args.batch_size)?;
    let (mut hx, mut hy): (Vec<f32>, Vec<u32>) = (Vec::new(), Vec::new());
    let mut order: Vec<usize> = (0..data.len()).collect();
    let total = (data.len().div_ceil(args.batch_size) * epochs).max(1);
    let (start, mut step, mut secs) = (Instant::now(), 0usize, Vec::new());
    for epoch in 1..=epochs {
        order.shuffle(rng);
        let t0 = Instant::now();
        let (mut loss_sum, mut seen) = (0.0f64, 0usize);
        for idx in order.chunks(args.batch_size) {
            if start.elapsed().as_secs_f64() > budget_s {
                break;
            }
            let t = step as f64 / total as f64;
            opt.set_lr(args.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()));
            data.gather(idx, &mut hx, &mut hy);
            if let Some(cfg) = &adv {
                hx = pgd(&hx, cfg, Goal::Untargeted(&hy), rng, |x, y| {
                    loss_grad(net, &mut atk_tape, x, y)
                })?;
            }
            x.set_batch(idx.len())?;
            x.copy_from_slice(&hx)?;
            y.set::<f32>(&hy)?;
            let logits = net.forward_train(&x, &mut tape)?;
            let loss = cross_entropy(logits, &y, Some(&mut dlogits))?;
            net.backward(&mut tape, &dlogits, &mut grads)?;
            opt.step(net, &grads)?;
            loss_sum += loss as f64 * idx.len() as f64;
            seen += idx.len();
            step += 1;
        }
        secs.push(t0.elapsed().as_secs_f64());
        println!(
            "  epoch {epoch}/{epochs}{}  loss {:.4}  {} samples  {:.1} s",
            if adv.is_some() { " (PGD)" } else { "" },
            loss_sum / seen.max(1) as f64,
            seen,
            secs[secs.len() - 1]
        );
        if start.elapsed().as_secs_f64() > budget_s {
            println!("  time budget of {:.1} min reached", budget_s / 60.0);
            break;
        }
    }
    Ok(secs)
}

/// Every attack at every ε on the test images, for one network.
fn attack_all(
    name: &'static str,
    net: &mut LeNet<f32, Cpu>,
    test: &Dataset,
    args: &Args,
    examples: &mut Vec<Vec<f32>>,
) -> kiln::Result<(f64, Vec<Row>)> {
    let (mut tape, mut eval) = (net.tape()?, net.tape()?);
    let mut rng = kiln::rng(args.seed ^ 0xadd);
    let n = test.len();
    let mut clean_ok = vec![false; n];
    for s in (0..n).step_by(args.eval_batch) {
        let e = (s + args.eval_batch).min(n);
        let p = predict(net, &mut eval, &test.x[s * 784..e * 784])?;
        for i in s..e {
            clean_ok[i] = p[i - s] == test.y[i] as usize;
        }
    }
    let clean = clean_ok.iter().filter(|&&c| c).count() as f64 / n as f64;
    let mut rows = Vec::new();
    for &eps in &args.eps {
        for attack in ["FGSM", "PGD"] {
            let cfg = Pgd {
                eps,
                step: args.pgd_step,
                iters: args.pgd_iters,
                random_start: true,
            };
            let (mut correct, mut flipped, mut linf, mut hit, mut others) =
                (0usize, 0usize, 0.0f64, 0usize, 0usize);
            for s in (0..n).step_by(args.eval_batch) {
                let e = (s + args.eval_batch).min(n);
                let (x, y) = (&test.x[s * 784..e * 784], &test.y[s..e]);
                let g = |x: &[f32], y: &[u32]| loss_grad(net, &mut tape, x, y);
                let adv = match attack {
                    "FGSM" => fgsm(x, eps, Goal::Untargeted(y), g)?,
                    _ => pgd(x, &cfg, Goal::Untargeted(y), &mut rng, g)?,
                };
                linf += mean_linf(x, &adv, 784) as f64 * (e - s) as f64;
                let p = predict(net, &mut eval, &adv)?;
                for i in 0..e - s {
                    let ok = p[i] == y[i] as usize;
                    correct += ok as usize;
                    flipped += (clean_ok[s + i] && !ok) as usize;
                }
                if s == 0 && (eps - 0.1).abs() < 1e-6 {
                    examples.push(adv[..8 * 784].to_vec());
                }
                if attack == "PGD" && eps > 0.0 {
                    let targets = vec![args.target; e - s];
                    let g = |x: &[f32], y: &[u32]| loss_grad(net, &mut tape, x, y);
                    let adv = pgd(x, &cfg, Goal::Toward(&targets), &mut rng, g)?;
                    let p = predict(net, &mut eval, &adv)?;
                    for i in 0..e - s {
                        if y[i] != args.target {
                            others += 1;
                            hit += (p[i] == args.target as usize) as usize;
                        }
                    }
                }
            }
            let n_ok = clean_ok.iter().filter(|&&c| c).count().max(1);
            let row = Row {
                model: name,
                attack: if attack == "FGSM" { "FGSM" } else { "PGD" },
                eps,
                accuracy: correct as f64 / n as f64,
                success: flipped as f64 / n_ok as f64,
                mean_linf: linf / n as f64,
                targeted: (others > 0).then(|| hit as f64 / others as f64),
            };
            println!(
                "  {name:<11} {:<4} ε {:.2}: accuracy {:.4}  success {:.4}  mean L∞ {:.4}{}",
                row.attack,
                eps,
                row.accuracy,
                row.success,
                row.mean_linf,
                row.targeted.map_or(String::new(), |t| format!(
                    "  toward {}: {t:.4}",
                    args.target
                ))
            );
            rows.push(row);
        }
    }
    Ok((clean, rows))
}

fn check(args: &Args) -> kiln::Result<()> {
    let bad = |what: &'static str, msg: String| Err(kiln::Error::invalid(what, msg));
    if args.batch_size == 0 || args.eval_batch < 8 {
        return bad("--batch-size/--eval-batch", "need at least 1 and 8".into());
    }
    if let Some(e) = args.eps.iter().find(|e| !(0.0..=1.0).contains(*e)) {
        return bad("--eps", format!("{e} is not in [0, 1]"));
    }
    if args.target >= 10 {
        return bad("--target", format!("{} is not a class of 0–9", args.target));
    }
    if !(args.pgd_step > 0.0 && args.adv_step > 0.0) {
        return bad("--pgd-step/--adv-step", "must be positive".into());
    }
    Ok(())
}

pub fn run(args: &Args) -> kiln::Result<Outcome> {
    let mut args = args.clone();
    if args.smoke {
        (
            args.epochs,
            args.adv_epochs,
            args.train_count,
            args.test_count,
        ) = (1, 1, 4000, 300);
        (args.eps, args.pgd_iters, args.adv_steps, args.eval_batch) =
            (vec![0.0, 0.1, 0.3], 10, 3, 300);
        (args.adv_step, args.pgd_step) = (0.05, 0.05);
    }
    check(&args)?;
    if let Some(table) = &args.replot {
        let rows = read_table(table)?;
        plot(&args, &rows)?;
        return Ok(Outcome {
            clean_plain: f64::NAN,
            clean_adv: None,
            rows,
            plain_epoch_secs: Vec::new(),
            adv_epoch_secs: Vec::new(),
        });
    }
    let data = Mnist::load(&args.data_dir)?;
    let train_set = if args.train_count > 0 {
        data.train.take(args.train_count)
    } else {
        data.train.take(data.train.len())
    };
    let first = args.test_skip.min(data.test.len().saturating_sub(8));
    let last = (first + args.test_count.max(8)).min(data.test.len());
    let test = data.test.subset(&(first..last).collect::<Vec<_>>())?;
    std::fs::create_dir_all(&args.out_dir).map_err(|e| kiln::Error::Io {
        path: args.out_dir.clone(),
        source: e,
    })?;
    let mut rng = kiln::rng(args.seed);
    let mut net = LeNet::<f32, Cpu>::init(&Cpu, &mut rng)?;
    println!(
        "plain training: {} epochs on {} images",
        args.epochs,
        train_set.len()
    );
    let plain_secs = train(
        &mut net,
        &train_set,
        &args,
        args.epochs,
        None,
        f64::INFINITY,
        &mut rng,
    )?;
    let mut examples = vec![test.x[..8 * 784].to_vec()];
    println!(
        "attacks on {} test images (PGD-{} step {})",
        test.len(),
        args.pgd_iters,
        args.pgd_step
    );
    let (clean_plain, mut rows) = attack_all("plain", &mut net, &test, &args, &mut examples)?;
    let (mut clean_adv, mut adv_secs) = (None, Vec::new());
    if args.adv_epochs > 0 {
        let cfg = Pgd {
            eps: args.adv_eps,
            step: args.adv_step,
            iters: args.adv_steps,
            random_start: true,
        };
        let smoke_set =
            train_set.take(
                train_set
                    .len()
                    .min(if args.smoke { 1000 } else { usize::MAX }),
            );
        println!(
            "PGD training from the plain weights: {} epochs, ε {}, {} steps of {}, budget {} min",
            args.adv_epochs, args.adv_eps, args.adv_steps, args.adv_step, args.adv_budget_min
        );
        adv_secs = train(
            &mut net,
            &smoke_set,
            &args,
            args.adv_epochs,
            Some(cfg),
            args.adv_budget_min * 60.0,
            &mut rng,
        )?;
        let (c, r) = attack_all("PGD-trained", &mut net, &test, &args, &mut examples)?;
        clean_adv = Some(c);
        rows.extend(r);
    }
    write_outputs(&args, &rows, &examples)?;
    Ok(Outcome {
        clean_plain,
        clean_adv,
        rows,
        plain_epoch_secs: plain_secs,
        adv_epoch_secs: adv_secs,
    })
}

/// The rows of a `table.md` written by [`write_outputs`] (model, attack,
/// ε, accuracy; the other columns are not needed for the plot).
fn read_table(path: &std::path::Path) -> kiln::Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).map_err(|e| kiln::Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let bad = |line: &str| {
        kiln::Error::invalid(
            "--replot",
            format!("{}: cannot read the row `{line}`", path.display()),
        )
    };
    let mut rows = Vec::new();
    for line in text.lines().skip(2).filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let model = match cells.get(1) {
            Some(&"plain") => "plain",
            Some(&"PGD-trained") => "PGD-trained",
            _ => return Err(bad(line)),
        };
        let attack = match cells.get(2) {
            Some(&"FGSM") => "FGSM",
            Some(&"PGD") => "PGD",
            _ => return Err(bad(line)),
        };
        let num = |i: usize| -> kiln::Result<f64> {
            cells
                .get(i)
                .and_then(|c| c.trim_end_matches(" %").parse().ok())
                .ok_or_else(|| bad(line))
        };
        rows.push(Row {
            model,
            attack,
            eps: num(3)? as f32,
            accuracy: num(4)? / 100.0,
            success: num(5)? / 100.0,
            mean_linf: num(6)?,
            targeted: None,
        });
    }
    Ok(rows)
}

/// `accuracy_vs_eps.png`/`.svg`: accuracy against ε per network and attack.
fn plot(args: &Args, rows: &[Row]) -> kiln::Result<()> {
    let mut series = Vec::new();
    for model in ["plain", "PGD-trained"] {
        for attack in ["FGSM", "PGD"] {
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.model == model && r.attack == attack)
                .map(|r| (r.eps as f64, r.accuracy))
                .collect();
            if !pts.is_empty() {
                series.push((format!("{model}, {attack}"), pts));
            }
        }
    }
    let panel = Panel {
        title: "LeNet-5 on MNIST under attack".into(),
        y_label: "test accuracy".into(),
        series,
    };
    let x_label = "eps (L-infinity budget, pixels in [0, 1])";
    plot_panels_x(
        &[panel],
        x_label,
        args.out_dir.join("accuracy_vs_eps"),
        640,
        420,
    )?;
    Ok(())
}

/// `table.md`, `accuracy_vs_eps.png`/`.svg` and `examples.png`.
fn write_outputs(args: &Args, rows: &[Row], examples: &[Vec<f32>]) -> kiln::Result<()> {
    let mut md = format!(
        "| model | attack | ε | accuracy | success rate | mean L∞ | PGD toward {} |\n|---|---|---|---|---|---|---|\n",
        args.target
    );
    for r in rows {
        md += &format!(
            "| {} | {} | {:.2} | {:.2} % | {:.2} % | {:.4} | {} |\n",
            r.model,
            r.attack,
            r.eps,
            100.0 * r.accuracy,
            100.0 * r.success,
            r.mean_linf,
            r.targeted
                .map_or("–".into(), |t| format!("{:.2} %", 100.0 * t))
        );
    }
    let path = args.out_dir.join("table.md");
    std::fs::write(&path, &md).map_err(|e| kiln::Error::Io { path, source: e })?;
    plot(args, rows)?;
    // Rows of 8 images: clean, then each network's FGSM and PGD at ε = 0.1.
    let tiles: Vec<Vec<u8>> = examples
        .iter()
        .flat_map(|set| {
            set.chunks_exact(784).map(|img| {
                img.iter()
                    .flat_map(|&p| [(p.clamp(0.0, 1.0) * 255.0).round() as u8; 3])
                    .collect()
            })
        })
        .collect();
    kiln::vis::write_tiles(args.out_dir.join("examples.png"), &tiles, 28, 28, 8, 2)
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The threads are set here, not in `run`, which a smoke test calls in a
    // process whose pool may be running already (`set_threads` works once).
    match kiln::set_threads(args.threads).and_then(|()| run(&args)) {
        Ok(_) if args.replot.is_some() => {
            println!(
                "wrote accuracy_vs_eps.png/.svg to {}",
                args.out_dir.display()
            );
            ExitCode::SUCCESS
        }
        Ok(o) => {
            println!(
                "clean accuracy: plain {:.4}{}",
                o.clean_plain,
                o.clean_adv
                    .map_or(String::new(), |c| format!(", PGD-trained {c:.4}"))
            );
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            println!(
                "seconds per epoch: plain {:.1}, PGD training {:.1} (the machine is shared: timings are noisy)",
                mean(&o.plain_epoch_secs),
                mean(&o.adv_epoch_secs)
            );
            println!(
                "wrote table.md, accuracy_vs_eps.png/.svg, examples.png to {}",
                args.out_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
