//! ONNX import and export of CNN classifiers.
//!
//! # Reading ([`read_onnx`])
//! Standard-domain operators of opset 7 and later: `Conv`, `Relu`,
//! `MaxPool`, `AveragePool`, `GlobalAveragePool`, `Concat` (channel axis),
//! `Dropout` (identity; training mode is refused), `Flatten` (axis 1),
//! `Reshape` (only flattening to `N x C` or `N x C x 1 x 1`, with a constant
//! shape), `Softmax` (channel axis), `Add`/`Sum` (no broadcasting), `Gemm`
//! (on a rank-2 input, `alpha = beta = 1`, `transA = 0`; becomes a 1x1
//! [`crate::Op::Conv`] on the engine's `N x K x 1 x 1` tensor) and
//! `Constant`. Initializers are FLOAT or FLOAT16, in `raw_data` or the typed
//! fields. Anything else — other operators, unknown attributes, groups,
//! dilations, asymmetric padding, `auto_pad = SAME_*` that depends on the
//! input size, external data — is a [`crate::FormatError::Unsupported`]
//! naming the operator and node.
//!
//! The graph input must be one float `N x 3 x H x W` tensor; the output is
//! the single graph output, or the input of the Softmax producing it (see
//! [`crate::Graph::logits_blob`]). Layers are numbered in initializer
//! order and named after their weight initializer minus a `.weight` suffix.
//! A ReLU node named `<conv>/fused_relu` right after its convolution is
//! folded into it (see `relu_fusion`).
//!
//! # Writing ([`write_onnx`])
//! IR 7, opset 13, float32 initializers. Every engine op maps to the ONNX
//! op of the same semantics: pools keep `ceil_mode`, average pools set
//! `count_include_pad = 1` (the engine and Caffe count symmetric padding
//! but not the ceil overhang, as onnxruntime does with that flag), Flatten
//! becomes `Reshape [0, -1, 1, 1]` (the engine's tensors stay 4-D) except
//! the Flatten producing the graph output, which becomes `Reshape [0, -1]`
//! so the output is `N x C` as the source's was (ONNX, Caffe and ncnn
//! flattens all give `N x C`; an output computed otherwise, e.g. by global
//! pooling, stays 4-D; a source's Gemm output or Reshape to `N x C x 1 x 1`
//! at the very end is not told apart and comes back 4-D resp. 2-D). The
//! graph input and output keep the source's blob names, an
//! `Add` of other than two inputs becomes `Sum`, and a fused ReLU becomes
//! a separate `Relu` node. With `ceil_mode` and padding, the engine drops a
//! last window that would start in the padding (as Caffe and PyTorch do);
//! onnxruntime 1.32 does the same, although ONNX shape inference predicts
//! one more output row. Both pool conventions were checked against
//! onnxruntime 1.32 on small inputs, and `tests/onnxruntime_check.py`
//! compares whole exported models with reference logits.
//!
//! # Round trip
//! `read_onnx(write_onnx(m))` gives back `m` exactly — node, blob and
//! layer names, weights bit for bit, preprocessing — with two exceptions:
//! layers that no convolution uses are dropped, and a layer whose
//! `<name>.weight` is already a blob name is stored as `<name>.weight#2`
//! and comes back under that name.
//!
//! # Preprocessing metadata
//! See `metadata.rs` for the `sqz.preprocess.*` keys.

mod attributes;
mod metadata;
mod ops;
pub mod proto;
mod read;
mod tensor;
mod write;

pub use read::{read_onnx, read_onnx_path, PreprocessSource, MIN_OPSET};
pub use write::{write_onnx, IR_VERSION, OPSET};
