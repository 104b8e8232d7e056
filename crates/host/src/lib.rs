//! Host-specific unsafe layer.
