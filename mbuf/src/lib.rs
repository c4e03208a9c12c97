//! Ferroplane mbuf (filled by its issue).
