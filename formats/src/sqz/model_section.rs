//! The model section (`SQZ.md`, "Model section"): string table, graph and
//! preprocessing preset, back to back.

use super::graph_codec::{self, GraphPlan};
use super::strings::StringTable;
use super::wire::Reader;
use super::{preprocess_codec, SqzFile};
use crate::model::{Graph, Preprocess};
use crate::Result;

/// Bytes of each part of an encoded model section.
pub(crate) struct ModelParts {
    pub strings: usize,
    pub graph: usize,
    pub preprocess: usize,
}

/// Encode the model section body of `file`, whose names `strings` holds.
pub(crate) fn encode(file: &SqzFile, strings: &StringTable) -> (Vec<u8>, ModelParts) {
    let mut out = Vec::new();
    strings.encode(&mut out);
    let strings_len = out.len();
    GraphPlan::new(&file.graph).encode(strings, &mut out);
    let graph_len = out.len() - strings_len;
    preprocess_codec::encode(&file.preprocess, &mut out);
    let preprocess_len = out.len() - strings_len - graph_len;
    (
        out,
        ModelParts {
            strings: strings_len,
            graph: graph_len,
            preprocess: preprocess_len,
        },
    )
}

/// Decode a model section body of a file of layout `version`.
pub(crate) fn decode(body: &[u8], version: u16) -> Result<(StringTable, Graph, Preprocess)> {
    let mut r = Reader::new(body, "model section");
    let strings = StringTable::decode(&mut r)?;
    let graph = graph_codec::decode(&mut r, &strings, version)?;
    let preprocess = preprocess_codec::decode(&mut r)?;
    r.finish()?;
    Ok((strings, graph, preprocess))
}
