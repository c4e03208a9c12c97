//! Ferroplane nvme (filled by its issue).
