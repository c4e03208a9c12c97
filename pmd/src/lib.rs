//! Ferroplane pmd (filled by its issue).
