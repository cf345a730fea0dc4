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

mod args;
mod history;
mod objective;
#[cfg(feature = "plot")]
pub mod plot;
mod progress;
mod runner;
mod state;

pub use args::{DeviceArg, OptimizerKind, ScheduleKind, ScheduleSpec, TrainArgs};
pub use history::{History, Record, RunLog};
pub use objective::{Classify, Distance, LossFn, MacroF1, Metric, Objective, Reconstruct, TopK};
pub use progress::{EpochBar, Meter};
pub use runner::{
    evaluate, Budget, Control, Evaluation, Feed, Goal, Patience, Report, SampleFn, StepCtx,
    StepInfo, StepOut, Stopped, Trainer,
};
pub use state::{Checkpointed, RunState};

/// CPU seconds (user and system, all threads) this process has used so
/// far, from `/proc/self/stat` in the kernel's clock ticks of 1/100 s
/// (USER_HZ); `None` where that file does not exist (off Linux). On a
/// shared machine, `cpu_secs / threads` of a stretch of training is about
/// what it would take on dedicated cores, which wall time is not.
pub fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) in parentheses:
    // utime and stime are the 14th and 15th fields of the line.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Checks, before the first training step, that `path` (given with the
/// command-line flag `flag`) can be written: its directory exists, is a
/// directory and takes a new file, and `path` itself is not a directory.
/// A typo in `--save` then costs nothing instead of a run. For a prefix
/// such as `--plot run/curves` (→ `run/curves.png`) the same check holds.
pub fn check_output_path(flag: &'static str, path: &std::path::Path) -> crate::Result<()> {
    use crate::Error;
    if path.as_os_str().is_empty() {
        return Err(Error::invalid(flag, "the path is empty"));
    }
    if path.is_dir() {
        return Err(Error::invalid(
            flag,
            format!("{} is a directory; give a file name", path.display()),
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::invalid(
            flag,
            format!("directory {} does not exist", dir.display()),
        ));
    }
    let probe = dir.join(format!(".kiln-write-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Error::invalid(
            flag,
            format!("cannot write in directory {}: {e}", dir.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::check_output_path;

    #[test]
    fn output_paths_are_checked_before_training() {
        let d = std::env::temp_dir().join(format!("kiln-outpath-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        assert!(check_output_path("--save", &d.join("run.safetensors")).is_ok());
        assert!(check_output_path("--save", std::path::Path::new("run.safetensors")).is_ok());
        let e = check_output_path("--save", &d.join("nope/run.safetensors")).unwrap_err();
        assert!(
            e.to_string().contains("--save") && e.to_string().contains("nope does not exist"),
            "{e}"
        );
        let e = check_output_path("--log", &d).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let e = check_output_path("--plot", std::path::Path::new(""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            0,
            "the probe file is removed"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
