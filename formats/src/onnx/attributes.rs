//! Typed access to a node's attributes, for reading and writing.
//!
//! Each operator lists the attributes it understands; any other attribute
//! is refused, because silently ignoring one (say `group` on a Conv) would
//! change what the network computes.

use super::proto::{attribute_type, AttributeProto, TensorProto};
use crate::{FormatError, Result};

/// The attributes of one node.
pub(crate) struct Attributes<'a> {
    list: &'a [AttributeProto],
}

impl<'a> Attributes<'a> {
    /// Wrap `list`, refusing attributes not in `known`.
    pub(crate) fn new(list: &'a [AttributeProto], known: &[&str]) -> Result<Self> {
        if let Some(a) = list.iter().find(|a| !known.contains(&a.name.as_str())) {
            return Err(FormatError::unsupported(format!("attribute {}", a.name)));
        }
        Ok(Attributes { list })
    }

    /// The attribute called `name` of type `kind`, if present.
    fn get(&self, name: &str, kind: i32) -> Result<Option<&'a AttributeProto>> {
        let mut found = self.list.iter().filter(|a| a.name == name);
        let first = found.next();
        if found.next().is_some() {
            return Err(FormatError::invalid(format!(
                "attribute {name} is given twice"
            )));
        }
        match first {
            Some(a) if a.r#type != kind => Err(FormatError::invalid(format!(
                "attribute {name} has type {} instead of {kind}",
                a.r#type
            ))),
            other => Ok(other),
        }
    }

    /// An INT attribute.
    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>> {
        Ok(self.get(name, attribute_type::INT)?.map(|a| a.i))
    }

    /// An INTS attribute.
    pub(crate) fn ints(&self, name: &str) -> Result<Option<&'a [i64]>> {
        Ok(self
            .get(name, attribute_type::INTS)?
            .map(|a| a.ints.as_slice()))
    }

    /// A FLOAT attribute.
    pub(crate) fn float(&self, name: &str) -> Result<Option<f32>> {
        Ok(self.get(name, attribute_type::FLOAT)?.map(|a| a.f))
    }

    /// A STRING attribute (UTF-8).
    pub(crate) fn string(&self, name: &str) -> Result<Option<&'a str>> {
        self.get(name, attribute_type::STRING)?
            .map(|a| {
                std::str::from_utf8(&a.s)
                    .map_err(|_| FormatError::invalid(format!("attribute {name} is not UTF-8")))
            })
            .transpose()
    }

    /// A TENSOR attribute.
    pub(crate) fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>> {
        self.get(name, attribute_type::TENSOR)?
            .map(|a| {
                a.t.as_ref().ok_or_else(|| {
                    FormatError::invalid(format!("attribute {name} holds no tensor"))
                })
            })
            .transpose()
    }

    /// An INTS attribute of exactly two non-negative values (an `[h, w]`
    /// pair), `default` when absent.
    pub(crate) fn pair(&self, name: &str, default: [usize; 2]) -> Result<[usize; 2]> {
        match self.ints(name)? {
            None => Ok(default),
            Some(&[h, w]) => match (usize::try_from(h), usize::try_from(w)) {
                (Ok(h), Ok(w)) => Ok([h, w]),
                _ => Err(FormatError::invalid(format!(
                    "{name} [{h}, {w}] is negative"
                ))),
            },
            Some(other) => Err(FormatError::unsupported(format!(
                "{name} with {} values (only 2-D)",
                other.len()
            ))),
        }
    }
}

/// An INT attribute for writing.
pub(crate) fn int_attribute(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: attribute_type::INT,
        i: value,
        ..Default::default()
    }
}

/// A FLOAT attribute for writing.
pub(crate) fn float_attribute(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: attribute_type::FLOAT,
        f: value,
        ..Default::default()
    }
}

/// An INTS attribute for writing.
pub(crate) fn ints_attribute(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: attribute_type::INTS,
        ints: values.iter().map(|&v| v as i64).collect(),
        ..Default::default()
    }
}
