//! The engine's error type.

/// Why the engine refused to run a model. Every variant renders as one line
/// naming what is wrong, so callers can print it as is. All of them are
/// detected before any computation starts, except a bad hook replacement,
/// which is detected when the hook returns it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// A tensor's data does not match its shape, or a shape is unusable.
    #[error("bad tensor: {0}")]
    Tensor(String),
    /// The input batch does not fit the model.
    #[error("bad input: {0}")]
    Input(String),
    /// The graph is malformed or a node's inputs do not fit its operation.
    #[error("node {node}: {reason}")]
    Node { node: String, reason: String },
    /// A forward hook returned a layer that cannot replace the node's own.
    #[error("hook at node {node}: {reason}")]
    Hook { node: String, reason: String },
}

impl EngineError {
    /// Shorthand for [`EngineError::Node`].
    pub(crate) fn node(node: &str, reason: impl Into<String>) -> Self {
        EngineError::Node {
            node: node.to_owned(),
            reason: reason.into(),
        }
    }
}
