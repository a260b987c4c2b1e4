//! The blobs of a run: each slot holds its value in NCHW or in the blocked
//! layout, converted in place when an operation needs the other one (a
//! conversion only moves values, so no bit changes).

use std::borrow::Cow;

use formats::Node;

use super::blocked::{Blocked, LANES};
use super::buffers::Buffers;
use super::{EngineError, Tensor};

/// A blob's value: NCHW (the graph's input is borrowed) or blocked.
#[derive(Debug)]
pub(crate) enum Value<'t> {
    Plain(Cow<'t, Tensor>),
    Blocked(Blocked),
}

impl Value<'_> {
    /// The values, in the value's own layout.
    pub(crate) fn values_mut(&mut self) -> &mut [f32] {
        match self {
            Value::Plain(tensor) => &mut tensor.to_mut().data,
            Value::Blocked(blocked) => &mut blocked.data,
        }
    }

    /// The value in NCHW, owned.
    pub(crate) fn into_plain(self, buffers: &mut Buffers) -> Tensor {
        match self {
            Value::Plain(tensor) => tensor.into_owned(),
            Value::Blocked(blocked) => {
                let tensor = blocked.to_plain(buffers);
                buffers.keep(blocked.data);
                tensor
            }
        }
    }

    /// Give an owned buffer back to `buffers`.
    fn recycle(self, buffers: &mut Buffers) {
        match self {
            Value::Plain(Cow::Owned(tensor)) => buffers.recycle(tensor),
            Value::Blocked(blocked) => buffers.keep(blocked.data),
            Value::Plain(Cow::Borrowed(_)) => {}
        }
    }
}

/// The value of every slot of a run (`None`: not computed yet, or freed).
pub(crate) struct Slots<'t>(Vec<Option<Value<'t>>>);

impl<'t> Slots<'t> {
    /// `count` empty slots but slot `input`, holding the borrowed `tensor`.
    pub(crate) fn new(count: usize, input: usize, tensor: &'t Tensor) -> Self {
        let mut slots: Vec<Option<Value>> = (0..count).map(|_| None).collect();
        slots[input] = Some(Value::Plain(Cow::Borrowed(tensor)));
        Slots(slots)
    }

    /// The value of `slot`.
    pub(crate) fn get(&self, slot: usize, node: &Node) -> Result<&Value<'t>, EngineError> {
        self.0[slot].as_ref().ok_or_else(|| missing(&node.name))
    }

    /// True if `slot` holds a blocked value.
    pub(crate) fn is_blocked(&self, slot: usize) -> bool {
        matches!(self.0[slot], Some(Value::Blocked(_)))
    }

    /// True if `slot` holds a blocked value in [`LANES`] lanes.
    pub(crate) fn is_blocked_16(&self, slot: usize) -> bool {
        matches!(&self.0[slot], Some(Value::Blocked(b)) if b.lanes == LANES)
    }

    /// Set `slot`'s value.
    pub(crate) fn put(&mut self, slot: usize, value: Value<'t>) {
        self.0[slot] = Some(value);
    }

    /// Take `slot`'s value out, leaving it empty.
    pub(crate) fn take(&mut self, slot: usize) -> Option<Value<'t>> {
        self.0[slot].take()
    }

    /// Free `slot`, giving its buffer back to `buffers`.
    pub(crate) fn free(&mut self, slot: usize, buffers: &mut Buffers) {
        if let Some(value) = self.0[slot].take() {
            value.recycle(buffers);
        }
    }

    /// Convert each of `slots` to NCHW, then return them all.
    pub(crate) fn plain(
        &mut self,
        slots: &[usize],
        buffers: &mut Buffers,
        node: &Node,
    ) -> Result<Vec<&Tensor>, EngineError> {
        for &slot in slots {
            if let Some(Value::Blocked(blocked)) = &self.0[slot] {
                let tensor = blocked.to_plain(buffers);
                self.free(slot, buffers);
                self.put(slot, Value::Plain(Cow::Owned(tensor)));
            }
        }
        slots
            .iter()
            .map(|&slot| match self.get(slot, node)? {
                Value::Plain(tensor) => Ok(tensor.as_ref()),
                Value::Blocked(_) => unreachable!("converted above"),
            })
            .collect()
    }

    /// `slot`'s value in the blocked layout, converted first if needed.
    pub(crate) fn blocked(
        &mut self,
        slot: usize,
        buffers: &mut Buffers,
        node: &Node,
    ) -> Result<&Blocked, EngineError> {
        if let Value::Plain(tensor) = self.get(slot, node)? {
            let blocked = Blocked::from_plain(tensor, buffers);
            self.free(slot, buffers);
            self.put(slot, Value::Blocked(blocked));
        }
        match self.get(slot, node)? {
            Value::Blocked(blocked) => Ok(blocked),
            Value::Plain(_) => unreachable!("converted above"),
        }
    }

    /// The value of `slot` for a node that transforms it in place: moved
    /// out if `last_reader` and owned, copied otherwise.
    pub(crate) fn take_or_copy(
        &mut self,
        slot: usize,
        last_reader: bool,
        buffers: &mut Buffers,
        node: &Node,
    ) -> Result<Value<'t>, EngineError> {
        match self.0[slot].take() {
            Some(Value::Plain(Cow::Owned(tensor))) if last_reader => {
                return Ok(Value::Plain(Cow::Owned(tensor)))
            }
            Some(Value::Blocked(blocked)) if last_reader => return Ok(Value::Blocked(blocked)),
            kept => self.0[slot] = kept,
        }
        Ok(match self.get(slot, node)? {
            Value::Plain(source) => {
                let mut copy = buffers.tensor(source.shape);
                copy.data.copy_from_slice(&source.data);
                Value::Plain(Cow::Owned(copy))
            }
            Value::Blocked(source) => {
                let mut copy = Blocked::uninit(source.shape, source.lanes, buffers);
                copy.data.copy_from_slice(&source.data);
                Value::Blocked(copy)
            }
        })
    }
}

/// A blob the plan promised is gone: an engine bug, reported rather than
/// panicking.
pub(crate) fn missing(name: &str) -> EngineError {
    EngineError::node(name, "internal error: an input blob was freed too early")
}
