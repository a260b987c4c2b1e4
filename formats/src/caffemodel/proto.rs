//! The subset of Caffe's `caffe.proto` (proto2) that carries learned
//! weights, as hand-written prost messages. Field numbers follow BVLC
//! Caffe's `src/caffe/proto/caffe.proto`; every other field (layer
//! parameters, solver state, ...) is skipped on decoding.

/// `V1LayerParameter.LayerType::CONVOLUTION`, for legacy files.
pub const V1_CONVOLUTION: i32 = 4;

/// A network, as saved in a `.caffemodel`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NetParameter {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Modern layers.
    #[prost(message, repeated, tag = "100")]
    pub layer: Vec<LayerParameter>,
    /// Legacy (V1) layers.
    #[prost(message, repeated, tag = "2")]
    pub layers: Vec<V1LayerParameter>,
}

/// A modern layer: name, type, connections and parameter blobs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LayerParameter {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub r#type: Option<String>,
    #[prost(string, repeated, tag = "3")]
    pub bottom: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub top: Vec<String>,
    /// Learned parameters: weights, then biases.
    #[prost(message, repeated, tag = "7")]
    pub blobs: Vec<BlobProto>,
}

/// A legacy layer (the `layers` field of old nets).
#[derive(Clone, PartialEq, prost::Message)]
pub struct V1LayerParameter {
    #[prost(string, repeated, tag = "2")]
    pub bottom: Vec<String>,
    #[prost(string, repeated, tag = "3")]
    pub top: Vec<String>,
    #[prost(string, optional, tag = "4")]
    pub name: Option<String>,
    /// A `V1LayerParameter.LayerType` value.
    #[prost(int32, optional, tag = "5")]
    pub r#type: Option<i32>,
    #[prost(message, repeated, tag = "6")]
    pub blobs: Vec<BlobProto>,
}

/// An array of numbers with its shape.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BlobProto {
    #[prost(message, optional, tag = "7")]
    pub shape: Option<BlobShape>,
    #[prost(float, repeated, tag = "5")]
    pub data: Vec<f32>,
    /// Declared only to refuse double-precision nets clearly.
    #[prost(double, repeated, tag = "8")]
    pub double_data: Vec<f64>,
    /// Legacy 4-D shape, used when `shape` is absent. Caffe declares these
    /// `int32`; `int64` decodes the same varints.
    #[prost(int64, optional, tag = "1")]
    pub num: Option<i64>,
    #[prost(int64, optional, tag = "2")]
    pub channels: Option<i64>,
    #[prost(int64, optional, tag = "3")]
    pub height: Option<i64>,
    #[prost(int64, optional, tag = "4")]
    pub width: Option<i64>,
}

/// Dimensions of a blob.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BlobShape {
    #[prost(int64, repeated, tag = "1")]
    pub dim: Vec<i64>,
}
