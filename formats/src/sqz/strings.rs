//! The string table of the model section (`SQZ.md`, "String table"): every
//! distinct name of the file (blobs, nodes, layers) stored once, sorted and
//! front-coded, so that the graph and the layer sections refer to names by
//! a one- or two-byte index.

use super::graph_codec::GraphPlan;
use super::wire::{put_varint, Reader};
use super::{SqzFile, MAX_NAME_BYTES, MAX_TEXT_BYTES};
use crate::Result;

/// Distinct names in strictly increasing byte order.
pub(crate) struct StringTable {
    strings: Vec<String>,
}

impl StringTable {
    /// The names the encoding of `file` refers to by string index: those
    /// of [`GraphPlan::names`] and the layer names.
    pub(crate) fn for_file(file: &SqzFile) -> Self {
        let plan = GraphPlan::new(&file.graph);
        let mut strings: Vec<&str> = plan
            .names()
            .chain(file.layers.iter().map(|l| l.name.as_str()))
            .collect();
        strings.sort_unstable();
        strings.dedup();
        StringTable {
            strings: strings.into_iter().map(str::to_string).collect(),
        }
    }

    /// Total bytes of all distinct names.
    pub(crate) fn text_bytes(&self) -> usize {
        self.strings.iter().map(String::len).sum()
    }

    /// Index of `name`, which must be one of the names [`for_file`](Self::for_file) saw.
    pub(crate) fn index(&self, name: &str) -> u64 {
        let found = self.strings.binary_search_by(|s| s.as_str().cmp(name));
        found.expect("the string table holds every name of the file it was collected from") as u64
    }

    /// Append the table: `varint count`, then per string `varint shared`
    /// (bytes in common with the previous string), `varint suffix length`,
    /// suffix bytes.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.strings.len() as u64);
        let mut previous: &[u8] = &[];
        for s in &self.strings {
            let s = s.as_bytes();
            let shared = previous.iter().zip(s).take_while(|(a, b)| a == b).count();
            put_varint(out, shared as u64);
            put_varint(out, (s.len() - shared) as u64);
            out.extend_from_slice(&s[shared..]);
            previous = s;
        }
    }

    /// Read a table written by [`encode`](Self::encode), enforcing UTF-8,
    /// strictly increasing order, [`MAX_NAME_BYTES`] per name and
    /// [`MAX_TEXT_BYTES`] in total.
    pub(crate) fn decode(r: &mut Reader) -> Result<Self> {
        let count = r.varint("string count")?;
        let mut strings: Vec<String> = Vec::new();
        let mut total = 0usize;
        for index in 0..count {
            let previous = strings.last().map_or(&[][..], |s| s.as_bytes());
            let shared = r.bounded("name prefix length", previous.len() as u64)?;
            let suffix_len = r.bounded("name suffix length", (MAX_NAME_BYTES - shared) as u64)?;
            total += shared + suffix_len;
            if total > MAX_TEXT_BYTES {
                return Err(r.invalid(format!("the string table exceeds {MAX_TEXT_BYTES} bytes")));
            }
            let mut bytes = previous[..shared].to_vec();
            bytes.extend_from_slice(r.take(suffix_len as u128, "name")?);
            let s = String::from_utf8(bytes)
                .map_err(|_| r.invalid(format!("string {index} is not UTF-8")))?;
            if strings.last().is_some_and(|p| *p >= s) {
                return Err(r.invalid(format!(
                    "string {index} is not after its predecessor in byte order"
                )));
            }
            strings.push(s);
        }
        Ok(StringTable { strings })
    }

    /// The string at `index`, or an error naming `what` refers to it.
    pub(crate) fn get(&self, r: &Reader, index: u64, what: &str) -> Result<&str> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.strings.get(i))
            .map(String::as_str)
            .ok_or_else(|| {
                r.invalid(format!(
                    "{what} refers to string {index} of {}",
                    self.strings.len()
                ))
            })
    }
}
