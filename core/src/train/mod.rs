//! Feedback while training: a progress bar per epoch ([`EpochBar`], feature
//! `progress`), running means of loss, accuracy and throughput ([`Meter`]),
//! a history of per-epoch numbers written as JSON lines ([`History`],
//! [`RunLog`]) and plots of the curves as PNG and SVG ([`plot`], feature
//! `plot`).
//!
//! ```no_run
//! use kiln_core::train::{EpochBar, History, Meter, Record, RunLog};
//! let mut history = History::default();
//! let mut log = RunLog::create("run.jsonl")?;
//! for epoch in 1..=3u64 {
//!     let mut meter = Meter::new();
//!     let bar = EpochBar::new(epoch, 3, 60_000);
//!     # let (loss, correct, n) = (0.1, 120, 128);
//!     // for each batch:
//!     meter.add(loss, correct, n);
//!     bar.update(&meter);
//!     bar.finish(&meter);
//!     let rec = Record::new(epoch).with("train_loss", meter.loss()).with("train_acc", meter.accuracy());
//!     log.write(&rec)?;
//!     history.push(rec);
//! }
//! # #[cfg(feature = "plot")]
//! kiln_core::train::plot::training_curves(&history, "run")?;   // run.png, run.svg
//! # Ok::<(), kiln_core::Error>(())
//! ```

mod history;
#[cfg(feature = "plot")]
pub mod plot;
mod progress;

pub use history::{History, Record, RunLog};
pub use progress::{EpochBar, Meter};
