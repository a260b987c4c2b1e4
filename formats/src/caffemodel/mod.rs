//! Caffe `.caffemodel` weights: reading them with their prototxt network
//! definition, and writing them with a matching prototxt.
//!
//! A `.caffemodel` is a binary `NetParameter` whose layers carry their
//! learned blobs; the topology comes from the deploy prototxt
//! ([`crate::caffe_net`]), and weights are matched to its convolutions by
//! layer name. Both the modern `layer` (field 100) and legacy `layers`
//! (field 2) entries are read; V0 layers nested in legacy entries are not.
//!
//! Round trip: `read_caffemodel(&write_caffemodel(m)?, &write_prototxt(m)?)`
//! gives back `m`'s graph and weights bit for bit, with Caffe's
//! preprocessing preset instead of `m`'s and convolution nodes named after
//! their layers (see [`write_prototxt`] for the limits).

mod net_text;
pub mod proto;
mod read;
mod write;

pub use net_text::write_prototxt;
pub use read::{read_caffemodel, read_caffemodel_path};
pub use write::write_caffemodel;
