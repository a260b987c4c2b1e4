//! ONNX import and export of CNN classifiers.
//!
//! # Reading ([`read_onnx`])
//! Standard-domain operators of opset 7 and later: `Conv` (with `group`:
//! grouped and depthwise convolutions), `BatchNormalization` (inference
//! mode; folded into the convolution before it where that is exact, else a
//! depthwise 1x1 convolution, see `crate::fold`), `Relu`, `Clip` (bounds
//! as attributes before opset 11, as constant scalar inputs from 11 on;
//! ReLU6 is `Clip(0, 6)`), `LRN`, `MaxPool`, `AveragePool` (both
//! `count_include_pad` values), `GlobalAveragePool`, `Concat` (channel
//! axis), `Dropout` (identity; training mode is refused), `Identity`
//! (imported as Dropout, the model type's identity), `Flatten` (axis 1),
//! `Reshape` (only flattening to `N x C` or `N x C x 1 x 1`, with a
//! constant shape), `Softmax` (channel axis), `Add`/`Sum` (no
//! broadcasting), `Gemm` (on a rank-2 input, `transA = 0`, any `transB`,
//! `alpha` and `beta` multiplied into weights and bias) and `MatMul` by a
//! constant `K x C` matrix on a rank-2 input, followed by an `Add` of a
//! constant bias (both become a 1x1 [`crate::Op::Conv`] on the engine's
//! `N x K x 1 x 1` tensor), and `Constant`. Initializers are FLOAT or
//! FLOAT16, in `raw_data` or the typed fields. Anything else — other
//! operators, unknown attributes, dilations, asymmetric padding (also
//! `auto_pad = SAME_*` whose padding comes out uneven, or depends on an
//! input size the model leaves open; with a fixed input size the reader
//! computes it), external data — is a [`crate::FormatError::Unsupported`]
//! naming the operator and node.
//!
//! The graph input must be one float `N x 3 x H x W` tensor; the output is
//! the single graph output, or the input of the Softmax producing it (see
//! [`crate::Graph::logits_blob`]). Layers are numbered in initializer
//! order and named after their weight initializer (a batch
//! normalization's: its scale) minus a `.weight` suffix.
//! A ReLU node named `<conv>/fused_relu` right after its convolution is
//! folded into it (see `relu_fusion`).
//!
//! # Writing ([`write_onnx`])
//! IR 7, opset 13, float32 initializers. Every engine op maps to the ONNX
//! op of the same semantics: pools keep `ceil_mode` and
//! `count_include_pad` (the engine counts symmetric padding but not the
//! ceil overhang, as onnxruntime does with that flag), a Flatten is
//! `Flatten` (`N x C`), a 1x1 convolution on such a tensor is `Gemm`
//! (`transB = 1`, 2-D weights), as the source formats have them (see
//! `crate::ranks`); a rank-2 tensor that an operation needs 4-D goes through
//! a `Reshape [0, -1, 1, 1]` named `<blob>/4d`. The graph input keeps the
//! source's name; the output is the logits blob, or, when a final Softmax
//! reads it, that Softmax's output, under the source's name, so a user's
//! code runs on the export unchanged. An `Add` of other than two inputs
//! becomes `Sum`, and a fused ReLU becomes a separate `Relu` node. With
//! `ceil_mode` and padding, the engine drops a last window that would
//! start in the padding (as Caffe and PyTorch do); onnxruntime 1.32 does
//! the same, although ONNX shape inference predicts one more output row.
//! Both pool conventions were checked against onnxruntime 1.32 on small
//! inputs, and `tests/onnxruntime_check.py` compares whole exported models
//! with reference logits.
//!
//! # Round trip
//! `read_onnx(write_onnx(m))` gives back `m` exactly — node, blob and
//! layer names, weights bit for bit, preprocessing — with three
//! exceptions: layers that no convolution uses are dropped, a layer whose
//! `<name>.weight` is already a blob name is stored as `<name>.weight#2`
//! and comes back under that name, and a `<blob>/4d` reshape comes back as
//! a Flatten node of its own.
//!
//! # Preprocessing metadata
//! See `metadata.rs` for the `sqz.preprocess.*` keys.

mod attributes;
mod metadata;
mod ops;
mod pieces;
pub mod proto;
mod read;
mod tensor;
mod write;

pub use read::{read_onnx, read_onnx_path, PreprocessSource, MIN_OPSET};
pub use write::{write_onnx, IR_VERSION, OPSET};
