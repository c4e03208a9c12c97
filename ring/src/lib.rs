//! Ferroplane ring (filled by its issue).
