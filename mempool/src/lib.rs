//! Ferroplane mempool (filled by its issue).
