//! The algorithms of Deep Compression, on plain slices: magnitude pruning,
//! 1-D k-means weight sharing, Huffman and sparse-index coding, and
//! calibration-based reconstruction. No file I/O and no CLI: callers hand in
//! weights and activations and get numbers back.
