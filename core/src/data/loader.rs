//! [`DataLoader`]: mini-batches as an iterator, shuffled by a seed, with
//! optional per-channel normalisation, image augmentation ([`super::augment`])
//! and loading in a background thread.
//!
//! ```
//! use kiln_core::data::{Dataset, DataLoader};
//! let data = Dataset { x: (0..20).map(|v| v as f32).collect(), y: vec![0, 1, 0, 1, 1], dim: 4 };
//! let loader = DataLoader::new(data, 2).shuffle(7).drop_last(true).prefetch(2);
//! for epoch in 0..2 {
//!     for batch in loader.epoch(epoch)? {
//!         assert_eq!((batch.len(), batch.x.len()), (2, 8));   // the short last batch is dropped
//!     }
//! }
//! # Ok::<(), kiln_core::Error>(())
//! ```
//!
//! * **Order.** Epoch `e` visits the samples in a permutation drawn from
//!   ChaCha8 seeded with the loader's seed, stream `2e`: the same seed gives
//!   the same batches on every machine, and epoch `e`'s order does not depend
//!   on whether epochs before it were run (so a run resumes mid-epoch with
//!   [`DataLoader::resume`] and a saved [`Position`]).
//! * **Randomness of augmentation** comes from stream `2e + 1`, at word
//!   position `batch << 32`: batch `b` of epoch `e` is transformed the same
//!   way whichever thread builds it and whether or not the run was resumed.
//! * **Buffers are reused**: a [`Batch`] owns its vectors and hands them back
//!   to its loader when dropped, so after the first few batches no batch
//!   allocates.
//! * **Background loading** ([`DataLoader::prefetch`]`(k)`): a thread builds
//!   up to `k` batches ahead and sends them through a bounded channel; the
//!   thread stops when the iterator is dropped. With `prefetch(0)` (the
//!   default) batches are built on `next()`.
//!
//! Measured on the 2-core machine (`cargo run --release --example mnist_mlp
//! -- --bench-loader`, MNIST, batches of 128, others' jobs running): the
//! loader alone gives 470,000–950,000 samples/s (shuffled gather of 784
//! floats per sample), 110,000–230,000 samples/s with random crop (padding
//! 2), flip, brightness/contrast jitter and normalisation; the MLP example
//! trains at 24,000 samples/s on a quiet machine (6,000 under that load). So
//! a batch is ready 5–40× faster than a step consumes it, and with
//! `prefetch(2)` its preparation overlaps the step instead of adding to it.

use super::augment::{self, ImageShape};
use super::Dataset;
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::Rng;
use rand::seq::SliceRandom;
use rand::{Rng as _, SeedableRng};
use rand_distr::Distribution;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A data set a [`DataLoader`] can draw samples from: `len()` samples of
/// `dim()` `f32` values, each with a class label. Implemented by the
/// in-memory [`Dataset`]; implement it to read samples lazily.
pub trait Source: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Values per sample.
    fn dim(&self) -> usize;
    /// Label of sample `i` (`i < len()`).
    fn label(&self, i: usize) -> u32;
    /// Writes sample `i`'s `dim()` values into `x`.
    fn read(&self, i: usize, x: &mut [f32]);
}

impl Source for Dataset {
    fn len(&self) -> usize {
        self.y.len()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn label(&self, i: usize) -> u32 {
        self.y[i]
    }
    fn read(&self, i: usize, x: &mut [f32]) {
        x.copy_from_slice(&self.x[i * self.dim..(i + 1) * self.dim]);
    }
}

/// Where a loader is: the next batch to load is batch `batch` of epoch
/// `epoch`, in the order drawn from `seed`. Saved in a checkpoint as the
/// metadata `loader.epoch`, `loader.batch` and `loader.seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Position {
    /// Epoch (from 0).
    pub epoch: u64,
    /// Index of the next batch within the epoch.
    pub batch: usize,
    /// The shuffling seed.
    pub seed: u64,
}

impl Position {
    /// Writes the position into `c`'s metadata.
    pub fn save(&self, c: &mut Checkpoint) {
        c.set_meta("loader.epoch", self.epoch);
        c.set_meta("loader.batch", self.batch);
        c.set_meta("loader.seed", self.seed);
    }
    /// Reads a position written by [`Position::save`].
    pub fn load(c: &Checkpoint) -> Result<Position> {
        Ok(Position {
            epoch: c.meta("loader.epoch")?,
            batch: c.meta("loader.batch")?,
            seed: c.meta("loader.seed")?,
        })
    }
    /// Fails unless this position, reached after `step` optimizer steps
    /// (one per batch), lies within a run of `epochs` epochs of
    /// `batches_per_epoch` batches: an epoch beyond the run would skip
    /// training, a batch beyond the epoch the rest of it, a step count
    /// beyond the run (or short of the position) would start a schedule in
    /// the wrong place. What a resumed run checks before it continues.
    pub fn check_within(&self, step: u64, epochs: u64, batches_per_epoch: usize) -> Result<()> {
        let per = batches_per_epoch as u64;
        let total = epochs.saturating_mul(per);
        let ok = self.epoch <= epochs
            && self.batch <= batches_per_epoch
            && step <= total
            && step
                >= self
                    .epoch
                    .saturating_mul(per)
                    .saturating_add(self.batch as u64);
        if ok {
            return Ok(());
        }
        Err(Error::invalid(
            "resume",
            format!(
                "the saved position (epoch {}, batch {}, step {step}) is not within this run of {epochs} epochs of {batches_per_epoch} batches ({total} steps)",
                self.epoch, self.batch
            ),
        ))
    }
}

/// The reusable vectors of one batch.
type Bufs = (Vec<f32>, Vec<u32>, Vec<f32>);

/// One mini-batch: `len()` samples of `dim` values in `x`, their labels in
/// `y`, and, with CutMix, soft labels in `soft` (`len() · classes` values,
/// rows summing to 1; empty otherwise). Dropping it returns its buffers to
/// the loader.
pub struct Batch {
    /// Sample values, row-major (`len() · dim`).
    pub x: Vec<f32>,
    /// Class labels (with CutMix, the label of the sample the box was pasted into).
    pub y: Vec<u32>,
    /// Soft labels (CutMix), row-major `len() · classes`; empty without CutMix.
    pub soft: Vec<f32>,
    /// The epoch this batch belongs to.
    pub epoch: u64,
    /// Its index within the epoch.
    pub index: usize,
    pool: Option<SyncSender<Bufs>>,
}

impl Batch {
    /// A batch made by hand (not from a loader): `y.len()` samples of
    /// `x.len() / y.len()` values, no soft labels, epoch 0, index 0. What a
    /// closure that samples its own batches fills
    /// ([`crate::train::Feed::Sample`]).
    pub fn new(x: Vec<f32>, y: Vec<u32>) -> Batch {
        Batch {
            x,
            y,
            soft: Vec::new(),
            epoch: 0,
            index: 0,
            pool: None,
        }
    }
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }
    /// True for a batch of no samples (never yielded by a loader).
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let bufs = (
                std::mem::take(&mut self.x),
                std::mem::take(&mut self.y),
                std::mem::take(&mut self.soft),
            );
            // A full pool (more batches alive than it holds) drops the
            // buffers; a bounded channel never allocates to take one.
            let _ = pool.try_send(bufs);
        }
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("epoch", &self.epoch)
            .field("index", &self.index)
            .field("len", &self.len())
            .finish()
    }
}

#[derive(Clone, Debug)]
struct Config {
    batch: usize,
    shuffle: bool,
    seed: u64,
    drop_last: bool,
    image: Option<ImageShape>,
    mean: Vec<f32>,
    std: Vec<f32>,
    flip: f64,
    pad: usize,
    brightness: f64,
    contrast: f64,
    cutmix: Option<(f64, f64, usize)>,
    prefetch: usize,
}

/// Mini-batches over a [`Source`] (see the [module docs](self)).
pub struct DataLoader<S: Source + 'static = Dataset> {
    data: Arc<S>,
    cfg: Config,
}

impl<S: Source + 'static> Clone for DataLoader<S> {
    fn clone(&self) -> Self {
        DataLoader {
            data: self.data.clone(),
            cfg: self.cfg.clone(),
        }
    }
}

impl<S: Source + 'static> DataLoader<S> {
    /// Batches of `batch_size` samples in order, the last one shorter when
    /// the data set is not a multiple; no transforms, no background thread.
    pub fn new(data: impl Into<Arc<S>>, batch_size: usize) -> Self {
        DataLoader {
            data: data.into(),
            cfg: Config {
                batch: batch_size,
                shuffle: false,
                seed: 0,
                drop_last: false,
                image: None,
                mean: Vec::new(),
                std: Vec::new(),
                flip: 0.0,
                pad: 0,
                brightness: 0.0,
                contrast: 0.0,
                cutmix: None,
                prefetch: 0,
            },
        }
    }
    /// Shuffles every epoch, with a permutation drawn from `seed` and the epoch.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.cfg.shuffle = true;
        self.cfg.seed = seed;
        self
    }
    /// Seeds the augmentations without shuffling.
    pub fn seed(mut self, seed: u64) -> Self {
        self.cfg.seed = seed;
        self
    }
    /// Drops the last batch of an epoch when it is short (`drop_last=True`).
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.cfg.drop_last = drop;
        self
    }
    /// Declares the samples to be images of shape `[c, h, w]` (needed by the
    /// augmentations and by normalisation with several channels).
    pub fn image(mut self, c: usize, h: usize, w: usize) -> Self {
        self.cfg.image = Some(ImageShape::new(c, h, w));
        self
    }
    /// Normalises each channel: `x ← (x − mean[c]) / std[c]`, after the augmentations.
    pub fn normalize(mut self, mean: &[f32], std: &[f32]) -> Self {
        self.cfg.mean = mean.to_vec();
        self.cfg.std = std.to_vec();
        self
    }
    /// Mirrors each image with probability `p` (`RandomHorizontalFlip(p)`).
    pub fn random_flip(mut self, p: f64) -> Self {
        self.cfg.flip = p;
        self
    }
    /// Pads each image with `padding` zeros and cuts the original size at a
    /// random offset (`RandomCrop(size, padding)`).
    pub fn random_crop(mut self, padding: usize) -> Self {
        self.cfg.pad = padding;
        self
    }
    /// Colour jitter: brightness and contrast factors drawn uniformly from
    /// `[max(0, 1 − b), 1 + b]` and `[max(0, 1 − c), 1 + c]` (`ColorJitter(b, c)`).
    pub fn color_jitter(mut self, brightness: f64, contrast: f64) -> Self {
        self.cfg.brightness = brightness;
        self.cfg.contrast = contrast;
        self
    }
    /// CutMix with `λ ~ Beta(alpha, alpha)` applied to a batch with
    /// probability `p`, filling [`Batch::soft`] with soft labels over
    /// `classes` classes (one-hot for batches left unmixed).
    pub fn cutmix(mut self, alpha: f64, p: f64, classes: usize) -> Self {
        self.cfg.cutmix = Some((alpha, p, classes));
        self
    }
    /// Builds up to `depth` batches ahead in a background thread (0: none).
    pub fn prefetch(mut self, depth: usize) -> Self {
        self.cfg.prefetch = depth;
        self
    }

    /// The data set.
    pub fn source(&self) -> &S {
        &self.data
    }
    /// The shuffling seed.
    pub fn seed_value(&self) -> u64 {
        self.cfg.seed
    }
    /// Samples per batch.
    pub fn batch_size(&self) -> usize {
        self.cfg.batch
    }
    /// Batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.data.len(), self.cfg.batch.max(1));
        if self.cfg.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }
    /// Samples in one epoch (fewer than the data set with `drop_last`).
    pub fn samples_per_epoch(&self) -> usize {
        if self.cfg.drop_last {
            self.batches_per_epoch() * self.cfg.batch
        } else {
            self.data.len()
        }
    }
    /// The position after `batch` has been consumed (for checkpoints).
    pub fn position_after(&self, batch: &Batch) -> Position {
        let next = batch.index + 1;
        if next >= self.batches_per_epoch() {
            Position {
                epoch: batch.epoch + 1,
                batch: 0,
                seed: self.cfg.seed,
            }
        } else {
            Position {
                epoch: batch.epoch,
                batch: next,
                seed: self.cfg.seed,
            }
        }
    }
    /// The order in which epoch `epoch` visits the samples.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.data.len()).collect();
        if self.cfg.shuffle {
            let mut r = crate::rng(self.cfg.seed);
            r.set_stream(epoch.wrapping_mul(2));
            idx.shuffle(&mut r);
        }
        idx
    }

    fn check(&self) -> Result<ImageShape> {
        const OP: &str = "DataLoader";
        let c = &self.cfg;
        let dim = self.data.dim();
        if c.batch == 0 {
            return Err(Error::invalid(OP, "batch size must be at least 1"));
        }
        let augments = c.flip > 0.0
            || c.pad > 0
            || c.brightness > 0.0
            || c.contrast > 0.0
            || c.cutmix.is_some();
        let shape = match c.image {
            Some(s) => {
                if s.numel() != dim {
                    return Err(Error::invalid(
                        OP,
                        format!(
                            "image shape [{}, {}, {}] has {} values, the samples {dim}",
                            s.c,
                            s.h,
                            s.w,
                            s.numel()
                        ),
                    ));
                }
                s
            }
            None if augments => {
                return Err(Error::invalid(
                    OP,
                    "image augmentations need the image shape: call `.image(c, h, w)`",
                ))
            }
            None => {
                let ch = c.mean.len().max(1);
                if !dim.is_multiple_of(ch) {
                    return Err(Error::invalid(OP, format!("{ch} normalisation channels do not divide {dim} values; call `.image(c, h, w)`")));
                }
                ImageShape::new(ch, 1, dim / ch)
            }
        };
        if c.mean.len() != c.std.len() || (!c.mean.is_empty() && c.mean.len() != shape.c) {
            return Err(Error::invalid(
                OP,
                format!(
                    "normalisation needs one mean and one std per channel ({}), got {} and {}",
                    shape.c,
                    c.mean.len(),
                    c.std.len()
                ),
            ));
        }
        if let Some(s) = c.std.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
            return Err(Error::invalid(
                OP,
                format!("std must be positive and finite, got {s}"),
            ));
        }
        if c.mean.iter().any(|m| !m.is_finite()) {
            return Err(Error::invalid(OP, "mean must be finite"));
        }
        if !(0.0..=1.0).contains(&c.flip) {
            return Err(Error::invalid(
                OP,
                format!("flip probability must lie in [0, 1], got {}", c.flip),
            ));
        }
        if !(c.brightness >= 0.0
            && c.brightness.is_finite()
            && c.contrast >= 0.0
            && c.contrast.is_finite())
        {
            return Err(Error::invalid(
                OP,
                format!(
                    "jitter strengths must be ≥ 0, got {} and {}",
                    c.brightness, c.contrast
                ),
            ));
        }
        if let Some((alpha, p, classes)) = c.cutmix {
            if alpha <= 0.0 || !alpha.is_finite() || !(0.0..=1.0).contains(&p) || classes == 0 {
                return Err(Error::invalid(OP, format!("CutMix needs alpha > 0, p in [0, 1] and classes ≥ 1, got {alpha}, {p}, {classes}")));
            }
            if let Some(i) = (0..self.data.len()).find(|&i| self.data.label(i) as usize >= classes)
            {
                return Err(Error::LabelOutOfRange {
                    index: i,
                    label: self.data.label(i) as usize,
                    classes,
                });
            }
        }
        Ok(shape)
    }

    /// The batches of epoch `epoch` (from 0).
    pub fn epoch(&self, epoch: u64) -> Result<Batches> {
        self.epoch_from(epoch, 0)
    }
    /// The batches of epoch `epoch` from batch `first` on (resuming mid-epoch).
    pub fn epoch_from(&self, epoch: u64, first: usize) -> Result<Batches> {
        let shape = self.check()?;
        if first > self.batches_per_epoch() {
            return Err(Error::invalid(
                "DataLoader",
                format!(
                    "batch {first} is past the end of an epoch of {} batches (a position from another data set or batch size?)",
                    self.batches_per_epoch()
                ),
            ));
        }
        // Bounded: an unbounded channel allocates a block every 31 sends,
        // which would be an allocation per 31 training steps
        // (`tests/zero_alloc.rs`). Batches alive at once: the prefetched
        // ones, the one in use, and one more a caller may keep.
        let (pool_tx, pool_rx) = mpsc::sync_channel(self.cfg.prefetch + 4);
        let mut p = Producer {
            data: self.data.clone(),
            cfg: self.cfg.clone(),
            shape,
            order: self.order(epoch),
            epoch,
            next: first,
            end: self.batches_per_epoch(),
            pool_tx,
            pool_rx,
            scratch: Vec::new(),
        };
        if self.cfg.prefetch == 0 {
            return Ok(Batches {
                inner: Inner::Here(Box::new(p)),
                remaining: p_remaining(first, self.batches_per_epoch()),
            });
        }
        let (tx, rx): (SyncSender<Batch>, Receiver<Batch>) = mpsc::sync_channel(self.cfg.prefetch);
        let handle = std::thread::Builder::new()
            .name("kiln-loader".into())
            .spawn(move || {
                while let Some(b) = p.produce() {
                    if tx.send(b).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| {
                Error::invalid(
                    "DataLoader",
                    format!("cannot start the loading thread: {e}"),
                )
            })?;
        Ok(Batches {
            inner: Inner::Thread {
                rx: Some(rx),
                handle: Some(handle),
            },
            remaining: p_remaining(first, self.batches_per_epoch()),
        })
    }
    /// The rest of the epoch at `pos` (as saved with [`Position::save`]); an
    /// error when `pos` was saved by a loader with another seed.
    pub fn resume(&self, pos: Position) -> Result<Batches> {
        if pos.seed != self.cfg.seed {
            return Err(Error::invalid(
                "DataLoader::resume",
                format!(
                    "the position was saved with seed {}, this loader has seed {}",
                    pos.seed, self.cfg.seed
                ),
            ));
        }
        self.epoch_from(pos.epoch, pos.batch)
    }
}

fn p_remaining(first: usize, end: usize) -> usize {
    end.saturating_sub(first)
}

/// Builds batches (in the caller's thread or the loading thread).
struct Producer<S: Source> {
    data: Arc<S>,
    cfg: Config,
    shape: ImageShape,
    order: Vec<usize>,
    epoch: u64,
    next: usize,
    end: usize,
    pool_tx: SyncSender<Bufs>,
    pool_rx: Receiver<Bufs>,
    scratch: Vec<f32>,
}

impl<S: Source> Producer<S> {
    fn produce(&mut self) -> Option<Batch> {
        if self.next >= self.end {
            return None;
        }
        let b = self.cfg.batch;
        let start = self.next * b;
        let stop = (start + b).min(self.order.len());
        let index = self.next;
        self.next += 1;
        let (mut x, mut y, mut soft) = self.pool_rx.try_recv().unwrap_or_default();
        let d = self.data.dim();
        let n = stop - start;
        x.clear();
        x.resize(n * d, 0.0);
        y.clear();
        soft.clear();
        let mut r = batch_rng(self.cfg.seed, self.epoch, index);
        let c = &self.cfg;
        let s = self.shape;
        for (k, &i) in self.order[start..stop].iter().enumerate() {
            let xs = &mut x[k * d..(k + 1) * d];
            self.data.read(i, xs);
            y.push(self.data.label(i));
            if c.pad > 0 {
                let dy = r.random_range(0..=2 * c.pad);
                let dx = r.random_range(0..=2 * c.pad);
                augment::shift_crop(xs, s, c.pad, dy, dx, &mut self.scratch);
            }
            if c.flip > 0.0 && r.random::<f64>() < c.flip {
                augment::hflip(xs, s);
            }
            if c.brightness > 0.0 {
                let f = r.random_range((1.0 - c.brightness).max(0.0)..=1.0 + c.brightness);
                augment::brightness(xs, f as f32);
            }
            if c.contrast > 0.0 {
                let f = r.random_range((1.0 - c.contrast).max(0.0)..=1.0 + c.contrast);
                augment::contrast(xs, s, f as f32);
            }
            if !c.mean.is_empty() {
                augment::normalize(xs, s, &c.mean, &c.std);
            }
        }
        if let Some((alpha, p, classes)) = c.cutmix {
            if r.random::<f64>() < p {
                let lam = rand_distr::Beta::new(alpha, alpha)
                    .map(|beta| beta.sample(&mut r))
                    .unwrap_or(1.0);
                let cy = r.random_range(0..s.h.max(1));
                let cx = r.random_range(0..s.w.max(1));
                let bx = augment::cutmix_box(s, lam, cy, cx);
                augment::cutmix(&mut x, &y, s, bx, classes, &mut soft);
            } else {
                soft.resize(n * classes, 0.0);
                for (k, &l) in y.iter().enumerate() {
                    soft[k * classes + l as usize] = 1.0;
                }
            }
        }
        Some(Batch {
            x,
            y,
            soft,
            epoch: self.epoch,
            index,
            pool: Some(self.pool_tx.clone()),
        })
    }
}

enum Inner {
    Here(Box<dyn ProduceDyn>),
    Thread {
        rx: Option<Receiver<Batch>>,
        handle: Option<JoinHandle<()>>,
    },
}

trait ProduceDyn: Send {
    fn produce(&mut self) -> Option<Batch>;
}

impl<S: Source + 'static> ProduceDyn for Producer<S> {
    fn produce(&mut self) -> Option<Batch> {
        Producer::produce(self)
    }
}

/// The batches of one epoch, an iterator of [`Batch`]es (see [`DataLoader::epoch`]).
pub struct Batches {
    inner: Inner,
    remaining: usize,
}

impl Iterator for Batches {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        let b = match &mut self.inner {
            Inner::Here(p) => p.produce(),
            Inner::Thread { rx, .. } => rx.as_ref().and_then(|rx| rx.recv().ok()),
        };
        if b.is_some() {
            self.remaining = self.remaining.saturating_sub(1);
        }
        b
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Batches {}

impl Drop for Batches {
    fn drop(&mut self) {
        if let Inner::Thread { rx, handle } = &mut self.inner {
            // Closing the channel makes the thread's next send fail, so it stops.
            drop(rx.take());
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}

/// A generator for one batch's augmentations (exposed for tests and custom loaders).
pub fn batch_rng(seed: u64, epoch: u64, batch: usize) -> Rng {
    let mut r = Rng::seed_from_u64(seed);
    r.set_stream(epoch.wrapping_mul(2).wrapping_add(1));
    r.set_word_pos((batch as u128) << 32);
    r
}

#[cfg(test)]
mod tests;
