//! The outer layer of a `.sqz` file (`SQZ.md`, "File layout"): a fixed
//! 20-byte header, a section directory and the section bodies, with CRC-32
//! checksums arranged so that every byte of the file is covered and each
//! checksum sits at a position already verified by another one. A flipped
//! bit anywhere is therefore always detected, and reported by section.

use super::wire::{put_varint, Reader};
use super::MAX_LAYERS;
use crate::{FormatError, Result};

/// The first four bytes of every `.sqz` file.
pub const MAGIC: [u8; 4] = *b"SQZ\0";
/// The newest layout version this crate writes and reads. A file is written
/// with the lowest version that can hold its graph (see
/// `graph_codec::required_version`), so files of version-1 networks stay
/// readable by version-1 readers.
pub const VERSION: u16 = 2;
/// The oldest layout version this crate reads.
pub const OLDEST_VERSION: u16 = 1;
/// Size of the fixed header that precedes the directory.
pub(crate) const HEADER_LEN: usize = 20;

/// What a section holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SectionKind {
    /// String table, graph and preprocessing; always section 0.
    Model = 1,
    /// One encoded layer; sections 1.. in layer order.
    Layer = 2,
}

/// A section whose checksum has been verified.
pub(crate) struct Section<'a> {
    pub kind: SectionKind,
    pub body: &'a [u8],
}

/// Human name of section `index`, used in checksum errors.
pub(crate) fn section_label(index: usize) -> String {
    match index {
        0 => "section 0 (model)".to_string(),
        i => format!("section {i} (layer {})", i - 1),
    }
}

/// Lay out `sections` behind a header of layout `version` and the
/// directory. Also returns the size of each section's directory entry, for
/// size breakdowns.
pub(crate) fn assemble(sections: &[(SectionKind, Vec<u8>)], version: u16) -> (Vec<u8>, Vec<usize>) {
    let mut directory = Vec::new();
    put_varint(&mut directory, sections.len() as u64);
    let mut entry_sizes = Vec::with_capacity(sections.len());
    for (kind, body) in sections {
        let start = directory.len();
        put_entry(&mut directory, *kind, body);
        entry_sizes.push(directory.len() - start);
    }
    let body_len: usize = sections.iter().map(|(_, b)| b.len()).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + directory.len() + body_len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    // A directory longer than 4 GiB cannot be read back (the limits keep it
    // under 64 KiB); saturate rather than wrap so the reader rejects it.
    out.extend_from_slice(
        &u32::try_from(directory.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&crc32fast::hash(&directory).to_le_bytes());
    let header_crc = crc32fast::hash(&out);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&directory);
    for (_, body) in sections {
        out.extend_from_slice(body);
    }
    (out, entry_sizes)
}

/// Append the directory entry of section `body`: kind, length, checksum.
fn put_entry(directory: &mut Vec<u8>, kind: SectionKind, body: &[u8]) {
    directory.push(kind as u8);
    put_varint(directory, body.len() as u64);
    directory.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
}

/// Bytes of the directory entry of a layer section `body`.
pub(crate) fn entry_len(body: &[u8]) -> usize {
    let mut entry = Vec::new();
    put_entry(&mut entry, SectionKind::Layer, body);
    entry.len()
}

/// Check magic, version, checksums and framing of `bytes`, and return the
/// layout version and the sections in file order. Nothing is allocated
/// beyond the (bounded) section list.
pub(crate) fn split(bytes: &[u8]) -> Result<(u16, Vec<Section<'_>>)> {
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(FormatError::invalid(
            "not a .sqz file: bad magic (expected \"SQZ\\0\")",
        ));
    }
    let mut header = Reader::new(bytes, "header");
    header.take(MAGIC.len() as u128, "magic")?;
    let version = header.u16("version")?;
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(FormatError::unsupported(format!(
            ".sqz format version {version} (this reader knows versions {OLDEST_VERSION} to {VERSION})"
        )));
    }
    let flags = header.u16("flags")?;
    let directory_len = header.u32("directory length")?;
    let directory_crc = header.u32("directory checksum")?;
    let header_crc = header.u32("header checksum")?;
    if crc32fast::hash(&bytes[..HEADER_LEN - 4]) != header_crc {
        return Err(FormatError::Checksum("header".to_string()));
    }
    if flags != 0 {
        return Err(FormatError::unsupported(format!(
            ".sqz header flags {flags:#06x} (none are defined)"
        )));
    }
    let mut rest = Reader::new(&bytes[HEADER_LEN..], "file");
    let directory = rest.take(u128::from(directory_len), "section directory")?;
    if crc32fast::hash(directory) != directory_crc {
        return Err(FormatError::Checksum("section directory".to_string()));
    }
    let entries = read_directory(directory)?;
    let needed = entries.iter().fold(0u128, |sum, e| sum + u128::from(e.len));
    let available = rest.remaining() as u128;
    if needed > available {
        return Err(FormatError::truncated(format!(
            "the sections need {needed} bytes after the directory but only {available} remain"
        )));
    }
    if needed < available {
        return Err(FormatError::invalid(format!(
            "{} trailing bytes after the last section",
            available - needed
        )));
    }
    let mut sections = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let body = rest.take(u128::from(entry.len), "section")?;
        if crc32fast::hash(body) != entry.crc {
            return Err(FormatError::Checksum(section_label(index)));
        }
        sections.push(Section {
            kind: entry.kind,
            body,
        });
    }
    Ok((version, sections))
}

/// One directory entry.
struct Entry {
    kind: SectionKind,
    len: u64,
    crc: u32,
}

/// Parse the (checksum-verified) directory: `varint count`, then per
/// section `u8 kind, varint length, u32 crc`.
fn read_directory(directory: &[u8]) -> Result<Vec<Entry>> {
    let mut r = Reader::new(directory, "section directory");
    let count = r.bounded("section count", MAX_LAYERS as u64 + 1)?;
    let mut entries = Vec::with_capacity(count);
    for index in 0..count {
        let kind = match r.u8("section kind")? {
            1 => SectionKind::Model,
            2 => SectionKind::Layer,
            other => {
                return Err(FormatError::unsupported(format!(
                    "section {index} has unknown kind {other}"
                )));
            }
        };
        let len = r.varint("section length")?;
        let crc = r.u32("section checksum")?;
        entries.push(Entry { kind, len, crc });
    }
    r.finish()?;
    Ok(entries)
}
