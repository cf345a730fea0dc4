//! Tensors: a run-time batch of samples whose per-sample shape is a type.

use crate::device::{Backend, Device};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::shape::{fmt_dims, Shape};
use std::fmt;
use std::marker::PhantomData;

/// `batch · numel` elements of samples of shape `dims`, or an
/// [`Error::InvalidArgument`] naming both sizes when that overflows `usize`
/// (a batch size a user typed must not wrap into a small buffer).
pub(crate) fn batch_elems(
    op: &'static str,
    batch: usize,
    dims: &[usize],
    numel: usize,
) -> Result<usize> {
    batch.checked_mul(numel).ok_or_else(|| {
        Error::invalid(
            op,
            format!(
                "a batch of {batch} samples of {} ({numel} elements each) has more than usize::MAX = {} elements",
                fmt_dims(dims),
                usize::MAX
            ),
        )
    })
}

/// A batch of `batch` samples of shape `S`, stored row-major on device `D`
/// (sample-major: sample `i` occupies elements `i·S::NUMEL .. (i+1)·S::NUMEL`,
/// exactly PyTorch's contiguous `[batch, dims…]` layout).
///
/// Parameters are tensors too, with a batch of 1 and their PyTorch shape as `S`
/// (a `Linear`'s weight is `Tensor<S2<out, in>>`).
///
/// Buffers keep their capacity: [`Tensor::set_batch`] to a smaller or an earlier
/// size allocates nothing, so the tape of a training loop is allocated once.
pub struct Tensor<S: Shape, E: Elem = f32, D: Device = crate::Cpu> {
    pub(crate) buf: D::Buf<E>,
    pub(crate) batch: usize,
    pub(crate) dev: D,
    _s: PhantomData<S>,
}

impl<S: Shape, E: Elem, D: Backend<E>> Tensor<S, E, D> {
    /// A zero-filled batch of `batch` samples.
    pub fn zeros(dev: &D, batch: usize) -> Result<Self> {
        let n = batch_elems("Tensor::zeros", batch, S::DIMS, S::NUMEL)?;
        Ok(Tensor {
            buf: dev.zeros(n)?,
            batch,
            dev: dev.clone(),
            _s: PhantomData,
        })
    }
    /// An empty batch (0 samples) to be filled later; allocates nothing.
    pub fn empty(dev: &D) -> Result<Self> {
        Self::zeros(dev, 0)
    }
    /// A batch from host values in row-major order; `data.len()` must be a
    /// multiple of `S::NUMEL`.
    pub fn from_slice(dev: &D, data: &[E]) -> Result<Self> {
        if S::NUMEL == 0 || !data.len().is_multiple_of(S::NUMEL) {
            return Err(Error::LengthMismatch {
                what: format!("Tensor<{}>::from_slice", fmt_dims(S::DIMS)),
                expected: (data.len() / S::NUMEL.max(1)) * S::NUMEL,
                shape: format!("a multiple of {} = {}", S::NUMEL, fmt_dims(S::DIMS)),
                got: data.len(),
            });
        }
        let mut t = Self::zeros(dev, data.len() / S::NUMEL)?;
        dev.upload(data, &mut t.buf)?;
        Ok(t)
    }
    /// A batch of exactly `batch` samples from host values.
    pub fn from_vec(dev: &D, batch: usize, data: Vec<E>) -> Result<Self> {
        let n = batch_elems("Tensor::from_vec", batch, S::DIMS, S::NUMEL)?;
        if data.len() != n {
            return Err(Error::LengthMismatch {
                what: format!("Tensor<{}>::from_vec", fmt_dims(S::DIMS)),
                expected: n,
                shape: format!("{batch} × {}", fmt_dims(S::DIMS)),
                got: data.len(),
            });
        }
        Self::from_slice(dev, &data)
    }
    /// Number of samples.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Number of elements (`batch · S::NUMEL`).
    pub fn numel(&self) -> usize {
        self.batch * S::NUMEL
    }
    /// The full shape `[batch, dims…]`.
    pub fn shape(&self) -> Vec<usize> {
        let mut v = vec![self.batch];
        v.extend_from_slice(S::DIMS);
        v
    }
    /// The device holding the data.
    pub fn device(&self) -> &D {
        &self.dev
    }
    /// Changes the number of samples, keeping capacity. New elements are zero;
    /// existing ones are unspecified after a change.
    pub fn set_batch(&mut self, batch: usize) -> Result<()> {
        if batch != self.batch {
            let n = batch_elems("Tensor::set_batch", batch, S::DIMS, S::NUMEL)?;
            self.dev.resize(&mut self.buf, n)?;
            self.batch = batch;
        }
        Ok(())
    }
    /// Copies the data to the host.
    pub fn to_vec(&self) -> Result<Vec<E>> {
        let mut v = crate::cpu::try_vec(self.numel(), E::zero())?;
        self.dev.download(&self.buf, &mut v)?;
        Ok(v)
    }
    /// Copies the data into a host slice of exactly `numel()` values, without
    /// allocating (for reading predictions in a loop).
    pub fn copy_to_slice(&self, dst: &mut [E]) -> Result<()> {
        if dst.len() != self.numel() {
            return Err(Error::LengthMismatch {
                what: format!("Tensor<{}>::copy_to_slice", fmt_dims(S::DIMS)),
                expected: self.numel(),
                shape: format!("{} × {}", self.batch, fmt_dims(S::DIMS)),
                got: dst.len(),
            });
        }
        self.dev.download(&self.buf, dst)
    }
    /// Overwrites the data from host values (the length must match).
    pub fn copy_from_slice(&mut self, data: &[E]) -> Result<()> {
        if data.len() != self.numel() {
            return Err(Error::LengthMismatch {
                what: format!("Tensor<{}>::copy_from_slice", fmt_dims(S::DIMS)),
                expected: self.numel(),
                shape: format!("{} × {}", self.batch, fmt_dims(S::DIMS)),
                got: data.len(),
            });
        }
        self.dev.upload(data, &mut self.buf)
    }
    /// Makes `self` a copy of `src` (resizing the batch without reallocating
    /// when capacity allows).
    pub fn assign(&mut self, src: &Tensor<S, E, D>) -> Result<()> {
        self.set_batch(src.batch)?;
        self.dev.copy(&src.buf, &mut self.buf, src.numel())
    }
    /// Reinterprets the samples as another shape with the same element count
    /// (flatten/reshape); free, no data moves. `T::NUMEL` must equal `S::NUMEL`:
    /// the macro checks this at expansion time; called by hand a mismatch is an error.
    pub fn reshape<T: Shape>(self) -> Result<Tensor<T, E, D>> {
        if T::NUMEL != S::NUMEL {
            return Err(Error::invalid(
                "reshape",
                format!(
                    "cannot view {} ({} values) as {} ({} values)",
                    fmt_dims(S::DIMS),
                    S::NUMEL,
                    fmt_dims(T::DIMS),
                    T::NUMEL
                ),
            ));
        }
        Ok(Tensor {
            buf: self.buf,
            batch: self.batch,
            dev: self.dev,
            _s: PhantomData,
        })
    }
    /// The device buffer (for device crates and custom kernels).
    pub fn buf(&self) -> &D::Buf<E> {
        &self.buf
    }
    /// The device buffer, mutable.
    pub fn buf_mut(&mut self) -> &mut D::Buf<E> {
        &mut self.buf
    }
    /// Largest absolute value, or `None` when some value is NaN or infinite.
    pub fn max_abs(&self) -> Result<Option<E>> {
        let v = self.to_vec()?;
        let mut m = E::zero();
        for x in v {
            if !x.is_finite() {
                return Ok(None);
            }
            m = m.max(x.abs());
        }
        Ok(Some(m))
    }
}

impl<S: Shape, E: Elem, D: Backend<E>> Tensor<S, E, D> {
    /// A copy in a new buffer.
    pub fn try_clone(&self) -> Result<Self> {
        let mut t = Self::zeros(&self.dev, self.batch)?;
        self.dev.copy(&self.buf, &mut t.buf, self.numel())?;
        Ok(t)
    }
}

impl<S: Shape, E: Elem, D: Backend<E>> fmt::Debug for Tensor<S, E, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor<{}> {{ batch: {}, device: {} }}",
            fmt_dims(S::DIMS),
            self.batch,
            self.dev.name()
        )
    }
}

/// An integer type that class labels can be given in: the unsigned types
/// (`u8`, as MNIST's idx files store labels, `u16`, `u32`, `u64`, `usize`)
/// and the signed ones (`i32`, what an integer literal defaults to, and
/// `i64`, PyTorch's label type), whose negative values are an error.
pub trait LabelId: Copy + std::fmt::Display {
    /// The value as an index, `None` when negative or too large for `usize`.
    fn index(self) -> Option<usize>;
}

macro_rules! label_id {
    ($($t:ty),*) => {$(
        impl LabelId for $t {
            fn index(self) -> Option<usize> {
                usize::try_from(self).ok()
            }
        }
    )*};
}
label_id!(u8, u16, u32, u64, usize, i32, i64);

/// Class labels for a batch: one index below `C` per sample.
///
/// The class count is part of the type, so pairing `Tensor<S1<10>>` logits with
/// `Labels<5>` is a compile error.
pub struct Labels<const C: usize, D: Device = crate::Cpu> {
    pub(crate) buf: D::Buf<u32>,
    pub(crate) host: Vec<u32>,
    pub(crate) dev: D,
}

impl<const C: usize, D: Device> Labels<C, D> {
    /// No labels yet (a batch of 0), to be [`set`](Self::set) every step.
    pub fn empty<E: Elem>(dev: &D) -> Result<Self>
    where
        D: Backend<E>,
    {
        Ok(Labels {
            buf: <D as Backend<E>>::zeros::<u32>(dev, 0)?,
            host: Vec::new(),
            dev: dev.clone(),
        })
    }
    /// Labels from host values of any integer type ([`LabelId`]: `u8` as
    /// the idx files store them, `u32`, `usize`, `i64`, …); every value must
    /// be below `C` (and not negative).
    pub fn new<E: Elem>(dev: &D, labels: &[impl LabelId]) -> Result<Self>
    where
        D: Backend<E>,
    {
        let mut l = Self::empty::<E>(dev)?;
        l.set::<E>(labels)?;
        Ok(l)
    }
    /// Replaces the labels, reusing the buffers (no allocation once large
    /// enough). On an out-of-range or negative label the labels held before
    /// are kept.
    pub fn set<E: Elem>(&mut self, labels: &[impl LabelId]) -> Result<()>
    where
        D: Backend<E>,
    {
        for (i, &l) in labels.iter().enumerate() {
            match l.index() {
                Some(v) if v < C => {}
                Some(v) => {
                    return Err(Error::LabelOutOfRange {
                        index: i,
                        label: v,
                        classes: C,
                    })
                }
                None => {
                    return Err(Error::invalid(
                        "Labels",
                        format!("label {l} at sample {i} is negative (or does not fit in usize)"),
                    ))
                }
            }
        }
        self.host.clear();
        // Checked above: every value is below C, which fits in u32.
        self.host
            .extend(labels.iter().map(|l| l.index().unwrap_or(0) as u32));
        <D as Backend<E>>::resize(&self.dev, &mut self.buf, labels.len())?;
        <D as Backend<E>>::upload(&self.dev, &self.host, &mut self.buf)
    }
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.host.len()
    }
    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.host.is_empty()
    }
    /// The labels on the host.
    pub fn as_slice(&self) -> &[u32] {
        &self.host
    }
    /// The device buffer.
    pub fn buf(&self) -> &D::Buf<u32> {
        &self.buf
    }
}

/// Token ids for a batch: one `u32` id below `V` per position of the
/// per-sample shape `S` (`S1<T>` for a sequence of `T` tokens), stored
/// row-major `[batch, dims…]` like [`Tensor`].
///
/// The vocabulary size is part of the type, so an `Embedding` over another
/// vocabulary, or per-position cross-entropy against logits of another width,
/// is a compile error. Ids are checked on the host when they are put in (an
/// id `≥ V` is [`Error::TokenOutOfRange`] naming the sample, the position
/// and the value), so kernels can index with them unchecked. The buffers keep
/// their capacity: [`Tokens::set`] and [`Tokens::set_batch`] allocate nothing
/// once the largest batch has been seen.
pub struct Tokens<S: Shape, const V: usize, D: Device = crate::Cpu> {
    pub(crate) buf: D::Buf<u32>,
    pub(crate) host: Vec<u32>,
    pub(crate) batch: usize,
    pub(crate) dev: D,
    _s: PhantomData<S>,
}

impl<S: Shape, const V: usize, D: Device> Tokens<S, V, D> {
    /// The vocabulary size `V`.
    pub const VOCAB: usize = V;

    /// Tokens from host ids in row-major order: `ids.len()` must be a
    /// multiple of `S::NUMEL` (the batch is `ids.len() / S::NUMEL`) and every
    /// id below `V`.
    pub fn new<E: Elem>(dev: &D, ids: &[u32]) -> Result<Self>
    where
        D: Backend<E>,
    {
        let mut t = Self::zeros::<E>(dev, 0)?;
        t.set::<E>(ids)?;
        Ok(t)
    }
    /// A batch of `batch` samples of id 0.
    pub fn zeros<E: Elem>(dev: &D, batch: usize) -> Result<Self>
    where
        D: Backend<E>,
    {
        let n = batch_elems("Tokens::zeros", batch, S::DIMS, S::NUMEL)?;
        Ok(Tokens {
            buf: <D as Backend<E>>::zeros::<u32>(dev, n)?,
            host: crate::cpu::try_vec(n, 0)?,
            batch,
            dev: dev.clone(),
            _s: PhantomData,
        })
    }
    /// Replaces the ids (and the batch size), reusing the buffers.
    pub fn set<E: Elem>(&mut self, ids: &[u32]) -> Result<()>
    where
        D: Backend<E>,
    {
        if S::NUMEL == 0 || !ids.len().is_multiple_of(S::NUMEL) {
            return Err(Error::LengthMismatch {
                what: format!("Tokens<{}, {V}>::set", fmt_dims(S::DIMS)),
                expected: (ids.len() / S::NUMEL.max(1)) * S::NUMEL,
                shape: format!("a multiple of {} = {}", S::NUMEL, fmt_dims(S::DIMS)),
                got: ids.len(),
            });
        }
        for (i, &id) in ids.iter().enumerate() {
            if id as usize >= V {
                return Err(Error::TokenOutOfRange {
                    sample: i / S::NUMEL,
                    position: i % S::NUMEL,
                    id,
                    vocab: V,
                });
            }
        }
        self.host.clear();
        self.host.extend_from_slice(ids);
        self.batch = ids.len() / S::NUMEL;
        <D as Backend<E>>::resize(&self.dev, &mut self.buf, ids.len())?;
        <D as Backend<E>>::upload(&self.dev, ids, &mut self.buf)
    }
    /// Copies `src`'s ids (and batch size) into `self`, reusing the buffers
    /// (a generated network's tape keeps its token inputs this way). No
    /// range check: `src`'s ids were checked when they were put in.
    pub fn assign<E: Elem>(&mut self, src: &Self) -> Result<()>
    where
        D: Backend<E>,
    {
        self.host.clear();
        self.host.extend_from_slice(&src.host);
        self.batch = src.batch;
        <D as Backend<E>>::resize(&self.dev, &mut self.buf, self.host.len())?;
        <D as Backend<E>>::upload(&self.dev, &self.host, &mut self.buf)
    }
    /// Changes the number of samples, keeping capacity; new positions hold id 0.
    pub fn set_batch<E: Elem>(&mut self, batch: usize) -> Result<()>
    where
        D: Backend<E>,
    {
        if batch != self.batch {
            let n = batch_elems("Tokens::set_batch", batch, S::DIMS, S::NUMEL)?;
            crate::cpu::try_resize(&mut self.host, n, 0)?;
            <D as Backend<E>>::resize(&self.dev, &mut self.buf, n)?;
            self.batch = batch;
        }
        Ok(())
    }
    /// Number of samples.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Number of ids (`batch · S::NUMEL`).
    pub fn numel(&self) -> usize {
        self.batch * S::NUMEL
    }
    /// The ids on the host, row-major.
    pub fn as_slice(&self) -> &[u32] {
        &self.host
    }
    /// The device buffer.
    pub fn buf(&self) -> &D::Buf<u32> {
        &self.buf
    }
    /// The device holding the ids.
    pub fn device(&self) -> &D {
        &self.dev
    }
}

impl<S: Shape, const V: usize, D: Device> fmt::Debug for Tokens<S, V, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tokens<{}, {V}> {{ batch: {}, device: {} }}",
            fmt_dims(S::DIMS),
            self.batch,
            self.dev.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::{S1, S2};
    use crate::Cpu;

    #[test]
    fn labels_take_any_integer_type_and_keep_the_old_ones_on_error() {
        let mut l = Labels::<10>::new::<f32>(&Cpu, &[3u8, 9, 0]).unwrap();
        assert_eq!(l.as_slice(), &[3, 9, 0]);
        l.set::<f32>(&[7i64, 1]).unwrap();
        assert_eq!(l.as_slice(), &[7, 1]);
        l.set::<f32>(&[2usize]).unwrap();
        assert_eq!(l.as_slice(), &[2]);
        l.set::<f32>(&[4, 5]).unwrap(); // integer literals (i32)
        assert_eq!(l.as_slice(), &[4, 5]);
        let e = l.set::<f32>(&[1i32, -1]).unwrap_err();
        assert!(
            e.to_string().contains("label -1 at sample 1 is negative"),
            "{e}"
        );
        let e = l.set::<f32>(&[1u16, 10]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::LabelOutOfRange {
                    index: 1,
                    label: 10,
                    classes: 10
                }
            ),
            "{e}"
        );
        assert_eq!(l.as_slice(), &[4, 5], "a failed set keeps the labels");
        assert!(Labels::<10>::empty::<f32>(&Cpu).unwrap().is_empty());
    }

    #[test]
    fn from_slice_checks_length_and_keeps_batch() {
        let t = Tensor::<S2<2, 3>, f32>::from_slice(&Cpu, &[0.0; 12]).unwrap();
        assert_eq!(t.batch(), 2);
        assert_eq!(t.shape(), vec![2, 2, 3]);
        let e = Tensor::<S2<2, 3>, f32>::from_slice(&Cpu, &[0.0; 7]).unwrap_err();
        assert!(e.to_string().contains("got 7"), "{e}");
    }

    #[test]
    fn set_batch_reuses_capacity() {
        let mut t = Tensor::<S1<4>, f32>::zeros(&Cpu, 8).unwrap();
        let p = t.buf.as_ptr();
        t.set_batch(3).unwrap();
        t.set_batch(8).unwrap();
        assert_eq!(t.buf.as_ptr(), p);
        assert_eq!(t.numel(), 32);
    }

    #[test]
    fn labels_reject_out_of_range() {
        let e = Labels::<3>::new::<f32>(&Cpu, &[0, 2, 3]).err().unwrap();
        assert_eq!(
            e.to_string(),
            "label 3 at sample 2 is out of range for 3 classes"
        );
    }

    #[test]
    fn tokens_name_sample_position_and_value() {
        let t = Tokens::<S1<3>, 5>::new::<f32>(&Cpu, &[0, 4, 1, 2, 3, 4]).unwrap();
        assert_eq!((t.batch(), t.numel()), (2, 6));
        assert_eq!(t.as_slice(), &[0, 4, 1, 2, 3, 4]);
        assert_eq!(t.buf, vec![0, 4, 1, 2, 3, 4]);
        let e = Tokens::<S1<3>, 5>::new::<f32>(&Cpu, &[0, 1, 2, 3, 5, 1])
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "token id 5 at sample 1, position 1 is out of range for a vocabulary of 5"
        );
        let e = Tokens::<S1<3>, 5>::new::<f32>(&Cpu, &[0, 1]).err().unwrap();
        assert!(e.to_string().contains("got 2"), "{e}");
    }

    #[test]
    fn tokens_set_batch_reuses_capacity() {
        let mut t = Tokens::<S1<4>, 9>::zeros::<f32>(&Cpu, 8).unwrap();
        let p = t.buf.as_ptr();
        t.set_batch::<f32>(3).unwrap();
        t.set::<f32>(&[1; 20]).unwrap();
        t.set_batch::<f32>(8).unwrap();
        assert_eq!(t.buf.as_ptr(), p);
        assert_eq!((t.batch(), t.numel()), (8, 32));
    }

    #[test]
    fn tokens_assign_copies_ids_and_reuses_capacity() {
        let mut t = Tokens::<S1<2>, 9>::zeros::<f32>(&Cpu, 4).unwrap();
        let p = t.buf.as_ptr();
        let src = Tokens::<S1<2>, 9>::new::<f32>(&Cpu, &[8, 1, 2, 3]).unwrap();
        t.assign::<f32>(&src).unwrap();
        assert_eq!((t.batch(), t.as_slice()), (2, &[8, 1, 2, 3][..]));
        assert_eq!(t.buf, vec![8, 1, 2, 3]);
        assert_eq!(t.buf.as_ptr(), p);
    }
}
