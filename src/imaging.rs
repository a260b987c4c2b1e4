//! Image loading and preprocessing into network input tensors.
