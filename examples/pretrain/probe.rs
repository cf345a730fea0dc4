//! The linear probe of `examples/pretrain.rs`: an encoder's features of
//! every image (evaluation mode; `--readout`: the global average pooling, or
//! the average and the maximum of the last map), standardised with the training set's mean
//! and deviation per feature, and one `Linear(10)` trained on them with the
//! labels (`--probe-epochs`, `--probe-lr`, `--probe-schedule`).

use super::{cosine_schedule, normalise, Args, AvgMax, Encoder, Probe, ProbeAvgMax, PIX};
use kiln::checkpoint::Checkpoint;
use kiln::data::{DataLoader, Dataset};
use kiln::prelude::*;
use kiln::schedule::CosineAnnealingLr;
use kiln::train::{Classify, Trainer};
use kiln::Cpu;
use std::path::Path;

/// The `F` features of `data`'s images (pixels in `[0, 1]`) under `enc` in
/// evaluation mode, as a dataset with the same labels.
fn features<const F: usize, M>(enc: &M, data: &Dataset) -> kiln::Result<Dataset>
where
    M: Layer<f32, Cpu, In = S3<1, 28, 28>, Out = S1<F>>,
{
    const CHUNK: usize = 500;
    let mut cache = enc.cache()?;
    let mut x = Tensor::<S3<1, 28, 28>>::empty(&Cpu)?;
    let mut y = Tensor::<S1<F>>::empty(&Cpu)?;
    let mut out = vec![0f32; data.len() * F];
    let mut host = Vec::new();
    for (k, chunk) in data.x.chunks(CHUNK * PIX).enumerate() {
        let n = chunk.len() / PIX;
        host.clear();
        host.extend_from_slice(chunk);
        normalise(&mut host);
        x.set_batch(n)?;
        x.copy_from_slice(&host)?;
        enc.forward(&x, &mut y, &mut cache)?;
        y.copy_to_slice(&mut out[k * CHUNK * F..(k * CHUNK + n) * F])?;
    }
    Ok(Dataset {
        x: out,
        y: data.y.clone(),
        dim: F,
    })
}

/// Standardises every column of `train` and `test` by `train`'s mean and
/// deviation.
fn standardise(train: &mut Dataset, test: &mut Dataset) {
    let d = train.dim;
    let n = train.len().max(1) as f64;
    let mut mean = vec![0f64; d];
    let mut var = vec![0f64; d];
    for row in train.x.chunks_exact(d) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64 / n;
        }
    }
    for row in train.x.chunks_exact(d) {
        for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (v as f64 - m).powi(2) / n;
        }
    }
    for data in [train, test] {
        for row in data.x.chunks_exact_mut(d) {
            for ((v, m), s) in row.iter_mut().zip(&mean).zip(&var) {
                *v = ((*v as f64 - m) / (s.sqrt() + 1e-6)) as f32;
            }
        }
    }
}

/// Trains a linear classifier `P` on `train` (standardised here with
/// `test`) and returns its test accuracy.
pub(super) fn probe<const F: usize, P>(
    a: &Args,
    mut train: Dataset,
    mut test: Dataset,
    tag: &str,
) -> kiln::Result<f64>
where
    P: Layer<f32, Cpu, In = S1<F>, Out = S1<10>> + kiln::Build<f32, Cpu>,
    P::Config: Default,
{
    standardise(&mut train, &mut test);
    let mut net = P::build(&Cpu, &mut rng(a.seed + 7), Default::default())?;
    let test = DataLoader::new(test, 1000);
    let loader = DataLoader::new(train, 256).shuffle(a.seed);
    let mut trainer = Trainer::new()
        .epochs(a.probe_epochs)
        .quiet(true)
        .validate(&test);
    if cosine_schedule("--probe-schedule", &a.probe_schedule)? {
        let steps = (a.probe_epochs * loader.batches_per_epoch() as u64).max(1);
        trainer = trainer.schedule(CosineAnnealingLr::new(a.probe_lr, steps, 0.0)?);
    }
    let report = trainer.fit(
        &mut net,
        &mut Adam::new(a.probe_lr),
        &loader,
        Classify::new(),
    )?;
    let acc = report.last("test_acc").unwrap_or(f64::NAN);
    println!(
        "  {tag}: linear probe test accuracy {acc:.4} ({} probe epochs)",
        a.probe_epochs
    );
    Ok(acc)
}

/// The linear probe on `enc`'s features of `train` and `test`, read as
/// `--readout` says: `gap`, the encoder's output (128); `avg-max`, its last
/// block's map pooled by average and by maximum ([`AvgMax`], 256), with the
/// encoder's weights copied in by name.
pub(super) fn probe_encoder(
    a: &Args,
    enc: &Encoder<f32, Cpu>,
    train: &Dataset,
    test: &Dataset,
    tag: &str,
) -> kiln::Result<f64> {
    if a.readout == "gap" {
        return probe::<128, Probe<f32, Cpu>>(a, features(enc, train)?, features(enc, test)?, tag);
    }
    let avg_max = avg_max(enc)?;
    probe::<256, ProbeAvgMax<f32, Cpu>>(
        a,
        features(&avg_max, train)?,
        features(&avg_max, test)?,
        tag,
    )
}

/// The [`AvgMax`] view of `enc`: its trunk's weights and batch norm
/// statistics (the only parameters either network has), copied by name.
pub fn avg_max(enc: &Encoder<f32, Cpu>) -> kiln::Result<AvgMax<f32, Cpu>> {
    let mut weights = Checkpoint::new();
    weights.add_module("trunk", &enc.trunk)?;
    let mut out = AvgMax::<f32, Cpu>::init(&Cpu, &mut rng(0))?;
    weights.load_module(
        "trunk",
        &mut out.trunk,
        Path::new("(the encoder in memory)"),
    )?;
    Ok(out)
}
