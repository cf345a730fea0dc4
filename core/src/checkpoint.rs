//! Checkpoints in the safetensors format, with PyTorch `state_dict` names.
//!
//! Tensor names are the dotted paths of the network's fields (`fc1.weight`,
//! `bn1.running_mean`), so `torch.nn.Module.load_state_dict(strict=True)` reads
//! what kiln writes and kiln reads what PyTorch writes
//! (`safetensors.torch.save_file(model.state_dict(), …)`). Shapes are
//! PyTorch's (a `Linear`'s weight is `[out, in]`); dtypes follow the element
//! type (`F32`, `F64`).
//!
//! * **Writing is atomic**: the bytes go to a temporary file in the same
//!   directory, which is fsynced and then renamed over the target, and the
//!   directory is fsynced. A crash at any point leaves either the old file or
//!   the new one, never a torn one. A failed save removes its temporary
//!   file; the next save removes those of killed processes
//!   (`.<name>.tmp-<pid>` whose `/proc/<pid>` is gone). The target must be
//!   absent or a regular file: a directory or a device node (`/dev/full`)
//!   is refused, and an empty path is an error that says so.
//! * **Loading checks everything first**: every expected name present, no
//!   unexpected one, every dtype and shape equal. All problems are reported
//!   together, by name with both shapes, and the model is left untouched
//!   unless every check passed.
//! * A corrupt or truncated file is an [`Error::Format`] naming the file.
//!
//! Beyond the model, a [`Checkpoint`] holds any other named tensors (optimizer
//! state) and string metadata (step counters, random-number state, the
//! loader's position), so a run can resume exactly — bitwise, with the same
//! thread count (`tests/resume.rs`):
//!
//! | what | how | stored as |
//! |---|---|---|
//! | parameters, buffers | [`Checkpoint::add_module`] | `fc1.weight`, `bn.running_mean`, … |
//! | optimizer state | [`Checkpoint::add_optimizer`] | `optim.state.fc1.weight.exp_avg`, `….step` (I64), metadata `optim.type`, `optim.lr` |
//! | schedule position | [`Checkpoint::set_meta`]`("scheduler.last_epoch", sched.epoch())` | metadata |
//! | random generators | [`Checkpoint::set_rng`]`("rng.dropout", &tape.ctx.rng)` | metadata `….seed`, `….stream`, `….word_pos` |
//! | loader position | [`crate::data::Position::save`] | metadata `loader.epoch`, `loader.batch`, `loader.seed` |
//!
//! ```no_run
//! # use kiln_core::{checkpoint::Checkpoint, data::{DataLoader, Position}, optim::{Adam, Optimizer}, Cpu, Module};
//! # fn demo<M: Module<f32, Cpu>>(net: &mut M, opt: &mut Adam, rng: &mut kiln_core::Rng, pos: Position) -> kiln_core::Result<()> {
//! let mut c = Checkpoint::new();
//! c.add_module("", net)?;
//! c.add_optimizer(net, opt)?;
//! c.set_rng("rng.dropout", rng);
//! pos.save(&mut c);
//! c.save("run.safetensors")?;
//! // … later, in a fresh process: read every piece first, then load the
//! // model and the optimizer together (all or nothing).
//! let path = std::path::Path::new("run.safetensors");
//! let c = Checkpoint::read(path)?;
//! let (r, pos) = (c.rng("rng.dropout")?, Position::load(&c)?);
//! c.load_training(net, opt, path)?;
//! # let _ = (r, pos); Ok(()) }
//! ```

use crate::atomic::Stage;
use crate::device::Backend;
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::module::{Module, Path as PPath, Role};
use crate::optim::{OptimState, Optimizer, ParamState};
use crate::shape::fmt_dims;
use crate::Rng;
pub use safetensors::tensor::Dtype;
use safetensors::tensor::TensorView;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One stored tensor: dtype, shape and little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// Element type.
    pub dtype: Dtype,
    /// Shape (PyTorch's).
    pub shape: Vec<usize>,
    /// Raw little-endian bytes.
    pub bytes: Vec<u8>,
}

/// A set of named tensors and string metadata, read from or written to a
/// safetensors file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// Tensors by name.
    pub tensors: BTreeMap<String, Stored>,
    /// String metadata (the safetensors header's `__metadata__`).
    pub metadata: BTreeMap<String, String>,
    /// Load parameters and optimizer state that hold NaN or infinity (for
    /// debugging a run that diverged). `false` (the default): loading them
    /// is an error naming the tensor and the first bad element, because a
    /// poisoned weight would otherwise train on silently and be saved again.
    pub allow_non_finite: bool,
}

/// The first NaN or infinite value of a stored float tensor and how many
/// there are: `(index, value, count)`; `None` for integer tensors.
fn first_non_finite(t: &Stored) -> Option<(usize, f64, usize)> {
    let values: Box<dyn Iterator<Item = f64> + '_> = match t.dtype {
        Dtype::F64 => Box::new(
            t.bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))),
        ),
        Dtype::F32 => Box::new(
            t.bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as f64),
        ),
        _ => return None,
    };
    let mut first = None;
    let mut count = 0;
    for (i, v) in values.enumerate() {
        if !v.is_finite() {
            first.get_or_insert((i, v));
            count += 1;
        }
    }
    first.map(|(i, v)| (i, v, count))
}

/// The problem line for a non-finite tensor `name`, if it is one.
fn non_finite_problem(name: &str, t: &Stored) -> Option<String> {
    let (i, v, n) = first_non_finite(t)?;
    Some(format!(
        "`{name}`: element {i} is {v} ({n} non-finite value{} in all); set `allow_non_finite` on the checkpoint to load it anyway",
        if n == 1 { "" } else { "s" }
    ))
}

/// The safetensors dtype of an element type.
pub fn dtype_of<E: Elem>() -> Dtype {
    match E::NAME {
        "f64" => Dtype::F64,
        _ => Dtype::F32,
    }
}

fn to_bytes<E: Elem>(v: &[E]) -> Vec<u8> {
    let mut out = Vec::with_capacity(std::mem::size_of_val(v));
    for x in v {
        if E::NAME == "f64" {
            out.extend_from_slice(&x.f64().to_le_bytes());
        } else {
            out.extend_from_slice(&(x.f64() as f32).to_le_bytes());
        }
    }
    out
}

fn from_bytes<E: Elem>(b: &[u8]) -> Vec<E> {
    if E::NAME == "f64" {
        b.chunks_exact(8)
            .map(|c| E::of(f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))))
            .collect()
    } else {
        b.chunks_exact(4)
            .map(|c| E::of(f32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as f64))
            .collect()
    }
}

impl Checkpoint {
    /// An empty checkpoint.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every parameter and buffer of `m`, named by path under `prefix`
    /// (empty for the model itself).
    pub fn add_module<E: Elem, D: Backend<E>, M: Module<E, D>>(
        &mut self,
        prefix: &str,
        m: &M,
    ) -> Result<()> {
        let mut res = Ok(());
        let root = PPath::ROOT;
        let base = root.child(prefix);
        let start = if prefix.is_empty() { &root } else { &base };
        m.visit(start, &mut |path, p| {
            if res.is_err() {
                return;
            }
            let mut host = vec![E::zero(); p.numel];
            res = p.dev.download(p.value, &mut host);
            let (dtype, bytes) = if p.role == Role::Counter {
                // PyTorch's counters (num_batches_tracked) are int64.
                (
                    Dtype::I64,
                    host.iter()
                        .flat_map(|v| (v.f64().round() as i64).to_le_bytes())
                        .collect(),
                )
            } else {
                (dtype_of::<E>(), to_bytes(&host))
            };
            self.tensors.insert(
                path.to_string(),
                Stored {
                    dtype,
                    shape: p.dims.to_vec(),
                    bytes,
                },
            );
        });
        res
    }

    /// Adds a host tensor.
    pub fn add_values<E: Elem>(&mut self, name: &str, shape: &[usize], values: &[E]) {
        self.tensors.insert(
            name.to_string(),
            Stored {
                dtype: dtype_of::<E>(),
                shape: shape.to_vec(),
                bytes: to_bytes(values),
            },
        );
    }

    /// A stored tensor's values, if present with element type `E`.
    pub fn values<E: Elem>(&self, name: &str) -> Option<Vec<E>> {
        let t = self.tensors.get(name)?;
        (t.dtype == dtype_of::<E>()).then(|| from_bytes(&t.bytes))
    }

    /// Writes the checkpoint atomically (temporary file, fsync, rename).
    ///
    /// Stale temporary files of this target left by killed processes are
    /// removed first, a failed save removes its own, and a target that is
    /// not a regular file (a directory, a device node) is refused; see the
    /// module docs.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_inner(path.as_ref(), Stage::Done)
    }

    /// `save`, but stops after writing the temporary file, as a process killed
    /// mid-save would (for tests of atomicity).
    #[doc(hidden)]
    pub fn save_interrupted(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_inner(path.as_ref(), Stage::Interrupt)
    }

    /// `save`, but fails after writing the temporary file, as a full disk
    /// would (for tests that a failed save leaves nothing behind).
    #[doc(hidden)]
    pub fn save_failing(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_inner(path.as_ref(), Stage::Fail)
    }

    fn save_inner(&self, path: &Path, stage: Stage) -> Result<()> {
        let views: Vec<(String, TensorView<'_>)> = self
            .tensors
            .iter()
            .map(|(n, t)| {
                TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| Error::Format {
                        path: path.to_path_buf(),
                        msg: format!("tensor `{n}`: {e}"),
                    })
            })
            .collect::<Result<_>>()?;
        let meta: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        crate::atomic::write_atomic(path, &bytes, stage)
    }

    /// Reads a checkpoint; a damaged file is an error naming it.
    pub fn read(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        let bytes = crate::data::read_file(path)?;
        Self::parse(&bytes).map_err(|msg| Error::Format {
            path: path.to_path_buf(),
            msg,
        })
    }

    /// Decodes safetensors bytes.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Checkpoint, String> {
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| format!("not a valid safetensors file: {e}"))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| format!("bad safetensors header: {e}"))?;
        let mut c = Checkpoint::new();
        for (name, v) in st.tensors() {
            c.tensors.insert(
                name,
                Stored {
                    dtype: v.dtype(),
                    shape: v.shape().to_vec(),
                    bytes: v.data().to_vec(),
                },
            );
        }
        if let Some(m) = meta.metadata() {
            c.metadata = m.clone().into_iter().collect();
        }
        Ok(c)
    }

    /// Every way in which the tensors under `prefix` fail to fit `m`'s
    /// parameters and buffers (names, dtypes, shapes); empty when they fit.
    pub fn module_problems<E: Elem, D: Backend<E>, M: Module<E, D>>(
        &self,
        prefix: &str,
        m: &M,
    ) -> Vec<String> {
        let want = dtype_of::<E>();
        let mut problems = Vec::new();
        let mut expected: Vec<(String, Vec<usize>, Role)> = Vec::new();
        let root = PPath::ROOT;
        let base = root.child(prefix);
        let start = if prefix.is_empty() { &root } else { &base };
        m.visit(start, &mut |path, p| {
            expected.push((path.to_string(), p.dims.to_vec(), p.role))
        });
        for (name, dims, role) in &expected {
            match self.tensors.get(name) {
                None => problems.push(format!(
                    "`{name}` {}: missing from the checkpoint",
                    fmt_dims(dims)
                )),
                Some(t) => {
                    // A counter is int64 as PyTorch writes it (the element type is accepted too).
                    let counter_ok = *role == Role::Counter && t.dtype == Dtype::I64;
                    if t.dtype != want && !counter_ok {
                        problems.push(format!(
                            "`{name}`: dtype {:?} in the checkpoint, the model uses {:?}",
                            t.dtype, want
                        ));
                    }
                    if t.shape != *dims {
                        problems.push(format!(
                            "`{name}`: shape {} in the checkpoint, {} in the model",
                            fmt_dims(&t.shape),
                            fmt_dims(dims)
                        ));
                    } else if !self.allow_non_finite {
                        problems.extend(non_finite_problem(name, t));
                    }
                }
            }
        }
        let pre = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}.")
        };
        for name in self.tensors.keys() {
            if name.starts_with(&pre)
                && !expected.iter().any(|(n, _, _)| n == name)
                && !name.starts_with("optim.")
                && !name.starts_with("__")
            {
                problems.push(format!("`{name}`: in the checkpoint but not in the model"));
            }
        }
        problems
    }

    /// Copies the tensors under `prefix` into `m` (checked by [`Checkpoint::module_problems`] first).
    fn apply_module<E: Elem, D: Backend<E>, M: Module<E, D>>(
        &self,
        prefix: &str,
        m: &mut M,
    ) -> Result<()> {
        let root = PPath::ROOT;
        let base = root.child(prefix);
        let start = if prefix.is_empty() { &root } else { &base };
        let mut res = Ok(());
        m.visit_mut(start, &mut |path, p, _role: Role| {
            if res.is_err() {
                return;
            }
            res = match self.tensors.get(&path.to_string()) {
                Some(t) if t.dtype == Dtype::I64 => {
                    let v: Vec<E> = t
                        .bytes
                        .chunks_exact(8)
                        .map(|c| E::of(i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64))
                        .collect();
                    p.dev.upload(&v, p.value)
                }
                Some(t) => p.dev.upload(&from_bytes::<E>(&t.bytes), p.value),
                None => Err(Error::invalid(
                    "Checkpoint::load_module",
                    format!("kiln internal error: `{path}` vanished"),
                )),
            };
        });
        res
    }

    /// Loads `m`'s parameters and buffers from the tensors under `prefix`,
    /// after checking every name, dtype and shape; on any mismatch returns
    /// [`Error::Checkpoint`] listing all of them and changes nothing.
    pub fn load_module<E: Elem, D: Backend<E>, M: Module<E, D>>(
        &self,
        prefix: &str,
        m: &mut M,
        path: &Path,
    ) -> Result<()> {
        let problems = self.module_problems(prefix, m);
        if !problems.is_empty() {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                problems,
            });
        }
        self.apply_module(prefix, m)
    }

    // ---- optimizer state ------------------------------------------------------

    /// Adds `opt`'s state (see [`crate::optim::state`]) for the parameters
    /// of `m`: per parameter `optim.state.<path>.<buffer>` (`exp_avg`, …,
    /// shaped like the parameter) and `optim.state.<path>.step` (an `I64`
    /// scalar); metadata `optim.type` (PyTorch's class name) and
    /// `optim.<scalar>` (`optim.lr`, Adam's `optim.steps`).
    pub fn add_optimizer<
        E: Elem,
        D: crate::kernels::OptimKernels<E>,
        M: Module<E, D>,
        O: Optimizer<E, D> + ?Sized,
    >(
        &mut self,
        m: &M,
        opt: &O,
    ) -> Result<()> {
        let params = trainable(m);
        let dev = device_of(m).ok_or_else(|| {
            Error::invalid("Checkpoint::add_optimizer", "the model has no parameters")
        })?;
        let state = opt.state(&dev)?;
        for (&i, p) in &state.params {
            let (name, dims) = params.get(i).ok_or_else(|| {
                Error::invalid(
                    "Checkpoint::add_optimizer",
                    format!("the optimizer holds state for parameter {i} but the model has {}; one optimizer serves one network", params.len()),
                )
            })?;
            for (buf, values) in &p.buffers {
                self.add_values(&format!("{OPTIM_STATE}{name}.{buf}"), dims, values);
            }
            self.tensors.insert(
                format!("{OPTIM_STATE}{name}.step"),
                Stored {
                    dtype: Dtype::I64,
                    shape: vec![],
                    bytes: (p.step as i64).to_le_bytes().to_vec(),
                },
            );
        }
        self.metadata
            .insert("optim.type".into(), state.kind.clone());
        for (k, v) in &state.scalars {
            self.metadata.insert(format!("optim.{k}"), format!("{v:?}"));
        }
        Ok(())
    }

    /// The optimizer state stored for model `m`, or every way in which it
    /// does not fit `m` (state for a parameter `m` lacks, shapes, dtypes,
    /// missing step counts).
    pub fn optimizer_state<E: Elem, D: Backend<E>, M: Module<E, D>>(
        &self,
        m: &M,
    ) -> std::result::Result<OptimState<E>, Vec<String>> {
        let params = trainable(m);
        let mut problems = Vec::new();
        let Some(kind) = self.metadata.get("optim.type") else {
            return Err(vec![
                "no optimizer state in the checkpoint (metadata `optim.type` is missing)".into(),
            ]);
        };
        let mut state = OptimState::new(kind.clone());
        for (k, v) in &self.metadata {
            let Some(key) = k.strip_prefix("optim.") else {
                continue;
            };
            if key == "type" {
                continue;
            }
            match v.parse::<f64>() {
                Ok(x) if !x.is_finite() && !self.allow_non_finite => problems.push(format!(
                    "metadata `{k}` = {v}: not finite; set `allow_non_finite` on the checkpoint to load it anyway"
                )),
                Ok(x) => {
                    state.scalars.insert(key.to_string(), x);
                }
                Err(_) => problems.push(format!("metadata `{k}` = {v:?} is not a number")),
            }
        }
        let want = dtype_of::<E>();
        let mut by_param: BTreeMap<usize, ParamState<E>> = BTreeMap::new();
        let mut has_step = std::collections::BTreeSet::new();
        for (name, t) in &self.tensors {
            let Some(rest) = name.strip_prefix(OPTIM_STATE) else {
                continue;
            };
            let Some((pname, buf)) = rest.rsplit_once('.') else {
                problems.push(format!(
                    "`{name}`: not of the form optim.state.<parameter>.<buffer>"
                ));
                continue;
            };
            let Some(i) = params.iter().position(|(n, _)| n == pname) else {
                problems.push(format!(
                    "`{name}`: state for parameter `{pname}`, which the model does not have"
                ));
                continue;
            };
            let dims = &params[i].1;
            let numel: usize = dims.iter().product();
            let entry = by_param.entry(i).or_insert_with(|| ParamState {
                name: pname.to_string(),
                numel,
                step: 0,
                buffers: Vec::new(),
            });
            if buf == "step" {
                if t.dtype != Dtype::I64 || !t.shape.is_empty() || t.bytes.len() != 8 {
                    problems.push(format!(
                        "`{name}`: expected an I64 scalar, found {:?} {}",
                        t.dtype,
                        fmt_dims(&t.shape)
                    ));
                } else {
                    let v = i64::from_le_bytes(t.bytes[..8].try_into().unwrap_or([0; 8]));
                    entry.step = v.max(0) as u64;
                    has_step.insert(i);
                }
                continue;
            }
            let mut ok = true;
            if t.dtype != want {
                problems.push(format!(
                    "`{name}`: dtype {:?} in the checkpoint, the model uses {:?}",
                    t.dtype, want
                ));
                ok = false;
            }
            if t.shape != *dims {
                problems.push(format!(
                    "`{name}`: shape {} in the checkpoint, parameter `{pname}` is {} in the model",
                    fmt_dims(&t.shape),
                    fmt_dims(dims)
                ));
                ok = false;
            }
            if ok && !self.allow_non_finite {
                if let Some(p) = non_finite_problem(name, t) {
                    problems.push(p);
                    ok = false;
                }
            }
            if ok {
                entry.buffers.push((buf.to_string(), from_bytes(&t.bytes)));
            }
        }
        for (i, p) in &by_param {
            if !has_step.contains(i) {
                problems.push(format!(
                    "`{OPTIM_STATE}{}.step`: missing from the checkpoint",
                    p.name
                ));
            }
        }
        state.params = by_param;
        if problems.is_empty() {
            Ok(state)
        } else {
            Err(problems)
        }
    }

    /// Loads `opt`'s state for model `m`, all or nothing (every problem is
    /// reported by name, and `opt` is unchanged on error).
    pub fn load_optimizer<
        E: Elem,
        D: crate::kernels::OptimKernels<E>,
        M: Module<E, D>,
        O: Optimizer<E, D> + ?Sized,
    >(
        &self,
        m: &M,
        opt: &mut O,
        path: &Path,
    ) -> Result<()> {
        let state = self
            .optimizer_state(m)
            .map_err(|problems| Error::Checkpoint {
                path: path.to_path_buf(),
                problems,
            })?;
        let dev = device_of(m).ok_or_else(|| {
            Error::invalid("Checkpoint::load_optimizer", "the model has no parameters")
        })?;
        opt.load_state(&dev, &state).map_err(|e| at_path(e, path))
    }

    /// Loads the model `m` (parameters and buffers) and the state of its
    /// optimizer `opt` together: every problem of both is checked first and
    /// reported at once, and on any error neither is changed.
    pub fn load_training<
        E: Elem,
        D: crate::kernels::OptimKernels<E>,
        M: Module<E, D>,
        O: Optimizer<E, D> + ?Sized,
    >(
        &self,
        m: &mut M,
        opt: &mut O,
        path: &Path,
    ) -> Result<()> {
        let mut problems = self.module_problems("", m);
        let state = match self.optimizer_state(m) {
            Ok(s) => Some(s),
            Err(p) => {
                problems.extend(p);
                None
            }
        };
        let (Some(state), true) = (state, problems.is_empty()) else {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                problems,
            });
        };
        let dev = device_of(m).ok_or_else(|| {
            Error::invalid("Checkpoint::load_training", "the model has no parameters")
        })?;
        // The optimizer checks its own part (kind, buffer names) before
        // changing anything; the model's part has been checked above.
        opt.load_state(&dev, &state).map_err(|e| at_path(e, path))?;
        self.apply_module("", m)
    }

    // ---- metadata ---------------------------------------------------------------

    /// Sets metadata `key` to `value`'s text (`Display`; for `f64` the
    /// shortest text that reads back to the same bits).
    pub fn set_meta(&mut self, key: &str, value: impl std::fmt::Display) {
        self.metadata.insert(key.to_string(), value.to_string());
    }

    /// Metadata `key` parsed as `T`; an error names the key when it is
    /// missing or does not parse.
    pub fn meta<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        let v = self
            .metadata
            .get(key)
            .ok_or_else(|| Error::invalid("checkpoint metadata", format!("`{key}` is missing")))?;
        v.parse::<T>().map_err(|_| {
            Error::invalid(
                "checkpoint metadata",
                format!(
                    "`{key}` = {v:?} is not a valid {}",
                    std::any::type_name::<T>()
                ),
            )
        })
    }

    /// Stores a random-number generator's exact state under `key`
    /// (`key.seed` as 64 hex digits, `key.stream`, `key.word_pos`), so that a
    /// resumed run draws the same numbers as the uninterrupted one.
    pub fn set_rng(&mut self, key: &str, rng: &Rng) {
        let seed: String = rng.get_seed().iter().map(|b| format!("{b:02x}")).collect();
        self.set_meta(&format!("{key}.seed"), seed);
        self.set_meta(&format!("{key}.stream"), rng.get_stream());
        self.set_meta(&format!("{key}.word_pos"), rng.get_word_pos());
    }

    /// The generator stored by [`Checkpoint::set_rng`] under `key`.
    pub fn rng(&self, key: &str) -> Result<Rng> {
        use rand::SeedableRng;
        let hex: String = self.meta(&format!("{key}.seed"))?;
        let bad = || {
            Error::invalid(
                "checkpoint metadata",
                format!("`{key}.seed` is not 64 hex digits"),
            )
        };
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let mut r = Rng::from_seed(seed);
        r.set_stream(self.meta(&format!("{key}.stream"))?);
        r.set_word_pos(self.meta(&format!("{key}.word_pos"))?);
        Ok(r)
    }
}

/// Prefix of the optimizer-state tensors.
pub const OPTIM_STATE: &str = "optim.state.";

/// `m`'s trainable parameters in visiting order (the optimizer's indices): path and dims.
fn trainable<E: Elem, D: Backend<E>, M: Module<E, D>>(m: &M) -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    m.visit(&PPath::ROOT, &mut |path, p| {
        if p.role == Role::Param {
            v.push((path.to_string(), p.dims.to_vec()))
        }
    });
    v
}

/// The device holding `m`'s parameters.
fn device_of<E: Elem, D: Backend<E>, M: Module<E, D>>(m: &M) -> Option<D> {
    let mut dev = None;
    m.visit(&PPath::ROOT, &mut |_, p| {
        if dev.is_none() {
            dev = Some(p.dev.clone());
        }
    });
    dev
}

/// An optimizer's own [`Error::Checkpoint`] re-addressed to the file.
fn at_path(e: Error, path: &Path) -> Error {
    match e {
        Error::Checkpoint { problems, .. } => Error::Checkpoint {
            path: path.to_path_buf(),
            problems,
        },
        e => e,
    }
}

/// Saves a model's parameters and buffers to `path` (atomically).
pub fn save<E: Elem, D: Backend<E>, M: Module<E, D>>(m: &M, path: impl AsRef<Path>) -> Result<()> {
    let mut c = Checkpoint::new();
    c.add_module("", m)?;
    c.save(path)
}

/// Loads a model's parameters and buffers from `path`, all or nothing.
pub fn load<E: Elem, D: Backend<E>, M: Module<E, D>>(
    m: &mut M,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    Checkpoint::read(path)?.load_module("", m, path)
}
