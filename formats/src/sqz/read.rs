//! Parsing and validating `.sqz` bytes (see `SQZ.md`).
use super::container::{split, SectionKind};
use super::{layer_section, model_section, SqzFile};
use crate::{FormatError, Result};

/// Parse a whole `.sqz` file from memory, checking magic, version,
/// checksums, bounds and consistency (see [`SqzFile::validate`]) before
/// allocating anything large. Never panics, whatever the input.
pub fn read_sqz(bytes: &[u8]) -> Result<SqzFile> {
    let (version, sections) = split(bytes)?;
    let Some((model, layers)) = sections.split_first() else {
        return Err(FormatError::invalid("the file has no sections"));
    };
    if model.kind != SectionKind::Model {
        return Err(FormatError::invalid("section 0 is not the model section"));
    }
    let (strings, graph, preprocess) = model_section::decode(model.body, version)?;
    let layers = layers
        .iter()
        .enumerate()
        .map(|(index, section)| match section.kind {
            SectionKind::Layer => layer_section::decode(section.body, &strings, index),
            SectionKind::Model => Err(FormatError::invalid(format!(
                "section {} is a second model section",
                index + 1
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    let file = SqzFile {
        graph,
        preprocess,
        layers,
    };
    file.validate()?;
    Ok(file)
}
