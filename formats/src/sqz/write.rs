//! Serialising a [`SqzFile`] into `.sqz` bytes (see `SQZ.md`).
use super::breakdown::SizeBreakdown;
use super::container::{assemble, SectionKind};
use super::graph_codec::required_version;
use super::strings::StringTable;
use super::{layer_section, model_section, SqzFile};

/// Serialise `file` into the bytes of a `.sqz` file. Pure and deterministic.
///
/// Every file that passes [`SqzFile::validate`] reads back equal with
/// [`read_sqz`](super::read_sqz). Other files are still written without
/// panicking, but the reader rejects the result.
pub fn write_sqz(file: &SqzFile) -> Vec<u8> {
    encode(file).0
}

/// The file bytes and where they went.
pub(crate) fn encode(file: &SqzFile) -> (Vec<u8>, SizeBreakdown) {
    let strings = StringTable::for_file(file);
    let (model, parts) = model_section::encode(file, &strings);
    let mut sections = vec![(SectionKind::Model, model)];
    let mut layers = Vec::with_capacity(file.layers.len());
    for layer in &file.layers {
        let (body, bytes) = layer_section::encode(layer, strings.index(&layer.name));
        sections.push((SectionKind::Layer, body));
        layers.push(bytes);
    }
    let (bytes, entry_sizes) = assemble(&sections, required_version(&file.graph));
    for (layer, entry) in layers.iter_mut().zip(&entry_sizes[1..]) {
        layer.header += entry;
    }
    let layer_total: usize = layers.iter().map(|l| l.total()).sum();
    let container = bytes.len() - layer_total - parts.strings - parts.graph - parts.preprocess;
    let breakdown = SizeBreakdown {
        container,
        strings: parts.strings,
        graph: parts.graph,
        preprocess: parts.preprocess,
        layers,
    };
    (bytes, breakdown)
}
