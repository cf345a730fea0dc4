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
//!   the new one, never a torn one.
//! * **Loading checks everything first**: every expected name present, no
//!   unexpected one, every dtype and shape equal. All problems are reported
//!   together, by name with both shapes, and the model is left untouched
//!   unless every check passed.
//! * A corrupt or truncated file is an [`Error::Format`] naming the file.
//!
//! Beyond the model, a [`Checkpoint`] holds any other named tensors (optimizer
//! state) and string metadata (step counters, random-number state, the
//! loader's position), so a run can resume exactly.

use crate::device::Backend;
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::module::{Module, Path as PPath, Role};
use crate::shape::fmt_dims;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

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
}

/// The safetensors dtype of an element type.
pub fn dtype_of<E: Elem>() -> Dtype {
    match E::NAME {
        "f64" => Dtype::F64,
        _ => Dtype::F32,
    }
}

fn to_bytes<E: Elem>(v: &[E]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * std::mem::size_of::<E>());
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
            .map(|c| E::of(f64::from_le_bytes(c.try_into().expect("kiln internal error: chunk of 8"))))
            .collect()
    } else {
        b.chunks_exact(4)
            .map(|c| E::of(f32::from_le_bytes(c.try_into().expect("kiln internal error: chunk of 4")) as f64))
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
    pub fn add_module<E: Elem, D: Backend<E>, M: Module<E, D>>(&mut self, prefix: &str, m: &M) -> Result<()> {
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
            self.tensors.insert(
                path.to_string(),
                Stored {
                    dtype: dtype_of::<E>(),
                    shape: p.dims.to_vec(),
                    bytes: to_bytes(&host),
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
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_inner(path.as_ref(), false)
    }

    /// `save`, but stops after writing the temporary file, as a process killed
    /// mid-save would (for tests of atomicity).
    #[doc(hidden)]
    pub fn save_interrupted(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_inner(path.as_ref(), true)
    }

    fn save_inner(&self, path: &Path, interrupt: bool) -> Result<()> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
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
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        {
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        if interrupt {
            return Ok(());
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Reads a checkpoint; a damaged file is an error naming it.
    pub fn read(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes).map_err(|msg| Error::Format {
            path: path.to_path_buf(),
            msg,
        })
    }

    /// Decodes safetensors bytes.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Checkpoint, String> {
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| format!("not a valid safetensors file: {e}"))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| format!("bad safetensors header: {e}"))?;
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

    /// Loads `m`'s parameters and buffers from the tensors under `prefix`,
    /// after checking every name, dtype and shape; on any mismatch returns
    /// [`Error::Checkpoint`] listing all of them and changes nothing.
    pub fn load_module<E: Elem, D: Backend<E>, M: Module<E, D>>(&self, prefix: &str, m: &mut M, path: &Path) -> Result<()> {
        let want = dtype_of::<E>();
        let mut problems = Vec::new();
        let mut expected: Vec<(String, Vec<usize>)> = Vec::new();
        let root = PPath::ROOT;
        let base = root.child(prefix);
        let start = if prefix.is_empty() { &root } else { &base };
        m.visit(start, &mut |path, p| expected.push((path.to_string(), p.dims.to_vec())));
        for (name, dims) in &expected {
            match self.tensors.get(name) {
                None => problems.push(format!("`{name}` {}: missing from the checkpoint", fmt_dims(dims))),
                Some(t) => {
                    if t.dtype != want {
                        problems.push(format!("`{name}`: dtype {:?} in the checkpoint, the model uses {:?}", t.dtype, want));
                    }
                    if t.shape != *dims {
                        problems.push(format!(
                            "`{name}`: shape {} in the checkpoint, {} in the model",
                            fmt_dims(&t.shape),
                            fmt_dims(dims)
                        ));
                    }
                }
            }
        }
        let pre = if prefix.is_empty() { String::new() } else { format!("{prefix}.") };
        for name in self.tensors.keys() {
            if name.starts_with(&pre) && !expected.iter().any(|(n, _)| n == name) && !name.starts_with("optim.") && !name.starts_with("__") {
                problems.push(format!("`{name}`: in the checkpoint but not in the model"));
            }
        }
        if !problems.is_empty() {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                problems,
            });
        }
        let mut res = Ok(());
        m.visit_mut(start, &mut |path, p, _role: Role| {
            if res.is_err() {
                return;
            }
            let t = &self.tensors[&path.to_string()];
            res = p.dev.upload(&from_bytes::<E>(&t.bytes), p.value);
        });
        res
    }
}

/// Saves a model's parameters and buffers to `path` (atomically).
pub fn save<E: Elem, D: Backend<E>, M: Module<E, D>>(m: &M, path: impl AsRef<Path>) -> Result<()> {
    let mut c = Checkpoint::new();
    c.add_module("", m)?;
    c.save(path)
}

/// Loads a model's parameters and buffers from `path`, all or nothing.
pub fn load<E: Elem, D: Backend<E>, M: Module<E, D>>(m: &mut M, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    Checkpoint::read(path)?.load_module("", m, path)
}
