//! Running means and a progress bar per epoch.

use std::time::Instant;

/// Running sums over an epoch: mean loss (weighted by batch size), accuracy
/// and samples per second since [`Meter::new`].
#[derive(Clone, Debug)]
pub struct Meter {
    loss_sum: f64,
    correct: usize,
    seen: usize,
    timed: usize,
    start: Instant,
    /// When the last batch was added: samples/s stops there, so an
    /// evaluation run after the epoch does not count as training time.
    last: Instant,
}

impl Default for Meter {
    fn default() -> Self {
        Self::new()
    }
}

impl Meter {
    /// Empty sums; the clock starts now.
    pub fn new() -> Self {
        Meter {
            loss_sum: 0.0,
            correct: 0,
            seen: 0,
            timed: 0,
            start: Instant::now(),
            last: Instant::now(),
        }
    }
    /// Adds a batch of `n` samples with mean loss `loss` and `correct` right predictions.
    pub fn add(&mut self, loss: f64, correct: usize, n: usize) {
        self.loss_sum += loss * n as f64;
        self.correct += correct;
        self.seen += n;
        self.timed += n;
        self.last = Instant::now();
    }
    /// The running sums `(Σ loss·n, correct, seen)`, to save mid-epoch.
    pub fn sums(&self) -> (f64, usize, usize) {
        (self.loss_sum, self.correct, self.seen)
    }
    /// A meter continuing from saved [`Meter::sums`] (the clock starts now).
    ///
    /// Fails (naming the value) when the sums cannot come from a run: a
    /// non-finite loss sum, more correct samples than seen.
    pub fn resume(loss_sum: f64, correct: usize, seen: usize) -> crate::Result<Self> {
        if !loss_sum.is_finite() {
            return Err(crate::Error::invalid(
                "Meter::resume",
                format!("the saved loss sum {loss_sum} is not finite"),
            ));
        }
        if correct > seen {
            return Err(crate::Error::invalid(
                "Meter::resume",
                format!("{correct} correct out of {seen} samples seen"),
            ));
        }
        Ok(Meter {
            loss_sum,
            correct,
            seen,
            timed: 0,
            start: Instant::now(),
            last: Instant::now(),
        })
    }
    /// Samples so far.
    pub fn seen(&self) -> usize {
        self.seen
    }
    /// Mean loss per sample (0 before the first batch).
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.seen.max(1) as f64
    }
    /// Fraction of right predictions (0 before the first batch).
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.seen.max(1) as f64
    }
    /// Seconds since [`Meter::new`].
    pub fn secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
    /// Samples per second from [`Meter::new`] (or [`Meter::resume`]) to the
    /// last [`Meter::add`]: what happens after the last batch (an evaluation)
    /// does not lower it.
    pub fn samples_per_sec(&self) -> f64 {
        self.timed as f64 / (self.last - self.start).as_secs_f64().max(1e-9)
    }
}

/// A progress bar for one epoch on standard error, showing the samples done,
/// the running loss, accuracy and samples/s. It draws nothing when standard
/// error is not a terminal (logs, CI) or without the `progress` feature.
pub struct EpochBar {
    #[cfg(feature = "progress")]
    bar: indicatif::ProgressBar,
}

impl EpochBar {
    /// A bar for epoch `epoch` of `epochs`, `samples` samples long.
    pub fn new(epoch: u64, epochs: u64, samples: usize) -> Self {
        #[cfg(feature = "progress")]
        {
            use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
            use std::io::IsTerminal;
            let target = if std::io::stderr().is_terminal() {
                ProgressDrawTarget::stderr_with_hz(10)
            } else {
                ProgressDrawTarget::hidden()
            };
            let bar = ProgressBar::with_draw_target(Some(samples as u64), target);
            let style = ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos:>6}/{len:6} {msg} ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(format!("{epoch:>2}/{epochs}"));
            EpochBar { bar }
        }
        #[cfg(not(feature = "progress"))]
        {
            let _ = (epoch, epochs, samples);
            EpochBar {}
        }
    }
    /// Whether the bar is drawn (standard error is a terminal).
    pub fn is_visible(&self) -> bool {
        #[cfg(feature = "progress")]
        {
            !self.bar.is_hidden()
        }
        #[cfg(not(feature = "progress"))]
        {
            false
        }
    }
    /// Shows `m`'s numbers.
    pub fn update(&self, m: &Meter) {
        #[cfg(feature = "progress")]
        {
            if self.bar.is_hidden() {
                return;
            }
            self.bar.set_position(m.seen() as u64);
            self.bar.set_message(format!(
                "loss {:.4}  acc {:.4}  {:>6.0} samples/s",
                m.loss(),
                m.accuracy(),
                m.samples_per_sec()
            ));
        }
        #[cfg(not(feature = "progress"))]
        let _ = m;
    }
    /// Removes the bar (the caller prints the epoch's summary line).
    pub fn finish(&self, m: &Meter) {
        #[cfg(feature = "progress")]
        {
            self.update(m);
            self.bar.finish_and_clear();
        }
        #[cfg(not(feature = "progress"))]
        let _ = m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_by_hand() {
        let mut m = Meter::new();
        assert_eq!((m.loss(), m.accuracy()), (0.0, 0.0));
        // Batches of 2 (loss 1, 1 right) and 6 (loss 0.5, 6 right): loss (2 + 3)/8, accuracy 7/8.
        m.add(1.0, 1, 2);
        m.add(0.5, 6, 6);
        assert_eq!((m.loss(), m.accuracy(), m.seen()), (0.625, 0.875, 8));
        assert!(m.samples_per_sec() > 0.0);
        // Time after the last batch (an evaluation) does not count.
        let rate = m.samples_per_sec();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(m.samples_per_sec(), rate);
        // Under `cargo test` standard error is captured: the bar stays hidden.
        let bar = EpochBar::new(1, 2, 8);
        bar.update(&m);
        bar.finish(&m);
    }

    #[test]
    fn resumed_sums_must_be_possible() {
        let m = Meter::resume(12.5, 3, 10).unwrap();
        assert_eq!(m.sums(), (12.5, 3, 10));
        let e = Meter::resume(f64::NAN, 3, 10).err().unwrap().to_string();
        assert!(e.contains("loss sum NaN is not finite"), "{e}");
        let e = Meter::resume(1.0, 11, 10).err().unwrap().to_string();
        assert!(e.contains("11 correct out of 10"), "{e}");
    }
}
